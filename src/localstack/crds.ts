import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import {
  ApiextensionsV1Api,
  ApiException,
  dumpYaml,
  loadYaml,
  type KubeConfig,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { load as fromYaml } from "js-yaml";

export const crdDir = fileURLToPath(new URL("../../crds/", import.meta.url));

/**
 * The CRDs shipped in crds/ (top level only; samples live below it, kustomize's file beside them), as
 * client-node models.
 *
 * client-node's typed APIs serialize through its generated models, which rename some schema keys
 * (`default` is `_default`, `enum` is `_enum`) and drop keys they do not know. A plain object parsed
 * from YAML would silently lose its defaults and enums on the way to the server, so the files are
 * loaded into the models and the round trip is checked to lose nothing.
 */
export async function readCrds(dir = crdDir): Promise<V1CustomResourceDefinition[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
  return Promise.all(
    files.map(async (f) => {
      const text = await readFile(join(dir, f), "utf8");
      const crd = loadYaml<V1CustomResourceDefinition>(text);
      if (!isDeepStrictEqual(fromYaml(dumpYaml(crd)), fromYaml(text))) {
        throw new Error(`${f}: client-node's CustomResourceDefinition model does not carry every field of the file`);
      }
      return crd;
    }),
  );
}

/**
 * Creates or replaces the CRDs with plain API calls and waits until they are Established. Plain
 * create/update (not server-side apply) lets the same files, which carry CEL rules, install on API
 * servers that predate CEL: those accept the rules and ignore them.
 */
export async function installCrds(kc: KubeConfig, dir = crdDir): Promise<string[]> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  const names: string[] = [];
  for (const crd of await readCrds(dir)) {
    const name = crd.metadata?.name ?? "";
    try {
      await api.createCustomResourceDefinition({ body: crd });
    } catch (err) {
      if (!(err instanceof ApiException) || err.code !== 409) throw err;
      const existing = await api.readCustomResourceDefinition({ name });
      crd.metadata = { ...crd.metadata, resourceVersion: existing.metadata?.resourceVersion };
      await api.replaceCustomResourceDefinition({ name, body: crd });
    }
    names.push(name);
  }
  for (const name of names) {
    for (let i = 0; ; i++) {
      const crd = await api.readCustomResourceDefinition({ name });
      const established = crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
      if (established) break;
      if (i > 100) throw new Error(`CRD ${name} did not become Established`);
      await sleep(100);
    }
  }
  return names;
}
