import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { V1JSONSchemaProps } from "@kubernetes/client-node";
import { CATEGORY, GROUP, IMAGECAPTURE, VERSION, VMIMAGE } from "../../src/api/group.ts";
import { readCrds } from "../../src/localstack/crds.ts";

/** Paths of schema nodes below `path` that have no description (what `kubectl explain` prints). */
function undescribed(schema: V1JSONSchemaProps, path: string): string[] {
  const missing: string[] = [];
  const isEnvelope = path === "metadata";
  if (!schema.description && !isEnvelope) missing.push(path);
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    missing.push(...undescribed(child, path ? `${path}.${name}` : name));
  }
  if (schema.items && !Array.isArray(schema.items)) {
    const items = schema.items as V1JSONSchemaProps;
    for (const [name, child] of Object.entries(items.properties ?? {})) {
      missing.push(...undescribed(child, `${path}[].${name}`));
    }
  }
  return missing;
}

describe("CRDs in crds/", async () => {
  const crds = await readCrds();
  const byKind = new Map(crds.map((c) => [c.spec.names.kind, c]));

  it("define VmImage and ImageCapture in the operator's group", () => {
    assert.deepEqual([...byKind.keys()].sort(), [IMAGECAPTURE.kind, VMIMAGE.kind]);
    for (const crd of crds) {
      assert.equal(crd.spec.group, GROUP);
      assert.equal(crd.metadata?.name, `${crd.spec.names.plural}.${GROUP}`);
      assert.deepEqual(
        crd.spec.versions.map((v) => v.name),
        [VERSION],
      );
    }
  });

  it("use the short names and category users type", () => {
    assert.deepEqual(byKind.get(VMIMAGE.kind)?.spec.names.shortNames, [VMIMAGE.shortName]);
    assert.deepEqual(byKind.get(IMAGECAPTURE.kind)?.spec.names.shortNames, [IMAGECAPTURE.shortName]);
    for (const crd of crds) {
      assert.equal(crd.spec.names.plural, crd.spec.names.kind.toLowerCase() + "s");
      assert.deepEqual(crd.spec.names.categories, [CATEGORY]);
    }
  });

  it("serve a status subresource and a Ready printer column", () => {
    for (const crd of crds) {
      const version = crd.spec.versions[0];
      assert.ok(version?.subresources?.status, `${crd.spec.names.kind} has no status subresource`);
      const ready = version.additionalPrinterColumns?.find((c) => c.name === "Ready");
      assert.equal(ready?.jsonPath, '.status.conditions[?(@.type=="Ready")].status');
    }
  });

  it("describe every field, for kubectl explain", () => {
    for (const crd of crds) {
      const schema = crd.spec.versions[0]?.schema?.openAPIV3Schema;
      assert.ok(schema, `${crd.spec.names.kind} has no schema`);
      assert.deepEqual(undescribed(schema, ""), [], `${crd.spec.names.kind} fields without a description`);
    }
  });
});

describe("readCrds", () => {
  it("refuses a CRD that client-node's model would not send whole", async () => {
    const dir = await mkdtemp(join(tmpdir(), "aio-crds-"));
    try {
      const crd = [
        "apiVersion: apiextensions.k8s.io/v1",
        "kind: CustomResourceDefinition",
        "metadata: {name: things.example.dev}",
        "spec:",
        "  group: example.dev",
        "  scope: Namespaced",
        "  names: {kind: Thing, plural: things}",
        "  versions:",
        "    - name: v1",
        "      served: true",
        "      storage: true",
        "      schema:",
        "        openAPIV3Schema:",
        "          type: object",
        "          x-not-a-kubernetes-field: true",
      ].join("\n");
      await writeFile(join(dir, "thing.yaml"), crd);
      await assert.rejects(readCrds(dir), /thing\.yaml: client-node's CustomResourceDefinition model does not carry/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
