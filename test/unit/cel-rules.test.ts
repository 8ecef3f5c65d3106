import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { evaluate, parse } from "@marcbachmann/cel-js";
import type { ImageCaptureSpec, VmImageSpec } from "../../src/api/generated.ts";
import { imageCaptureSpecProblems, vmImageChangeProblems, vmImageFingerprints, vmImageSpecProblems } from "../../src/api/validation.ts";
import { loadCrds, type Schema } from "../../scripts/generate-api.ts";

// The test API server (Kubernetes 1.20) ignores x-kubernetes-validations, so the CRDs' CEL rules are
// evaluated here with a CEL implementation, at the place in the object where the API server would
// evaluate them, after the schema's defaults are applied, as the API server does.

interface Rule {
  kind: string;
  path: string[];
  rule: string;
  message: string;
}

function collectRules(kind: string, schema: Schema, path: string[], out: Rule[]): void {
  for (const r of schema["x-kubernetes-validations"] ?? []) out.push({ kind, path, rule: r.rule, message: r.message ?? r.rule });
  for (const [name, prop] of Object.entries(schema.properties ?? {})) collectRules(kind, prop, [...path, name], out);
  if (schema.items) collectRules(kind, schema.items, [...path, "[]"], out);
}

function withDefaults(schema: Schema, value: unknown): unknown {
  if (Array.isArray(value)) return (value as unknown[]).map((v) => (schema.items ? withDefaults(schema.items, v) : v));
  if (!value || typeof value !== "object" || !schema.properties) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, prop] of Object.entries(schema.properties)) {
    if (out[name] === undefined && prop.default !== undefined) out[name] = structuredClone(prop.default);
    if (out[name] !== undefined) out[name] = withDefaults(prop, out[name]);
  }
  return out;
}

/** The values at `path` ("[]" steps into every item of a list), as the API server visits them. */
function at(value: unknown, path: string[]): unknown[] {
  let values = [value];
  for (const k of path) {
    values = values.flatMap((v) => {
      if (k === "[]") return Array.isArray(v) ? (v as unknown[]) : [];
      const next = v && typeof v === "object" ? (v as Record<string, unknown>)[k] : undefined;
      return next === undefined ? [] : [next];
    });
  }
  return values;
}

const crds = await loadCrds();
const schemas = new Map(crds.map((c) => [c.spec.names.kind, c.spec.versions[0]?.schema.openAPIV3Schema ?? {}]));
const rules: Rule[] = [];
for (const [kind, schema] of schemas) collectRules(kind, schema, [], rules);

/** The messages of the rules an object (an update when `old` is given) breaks, as the API server would list them. */
function celRefusals(kind: string, object: unknown, old?: unknown): string[] {
  const refused: string[] = [];
  for (const r of rules.filter((x) => x.kind === kind)) {
    const transition = /\boldSelf\b/.test(r.rule);
    if (transition && r.path.includes("[]")) throw new Error(`transition rule inside a list is not evaluated here: ${r.rule}`);
    for (const self of at(object, r.path)) {
      const oldSelf = old === undefined ? undefined : at(old, r.path)[0];
      if (transition && oldSelf === undefined) continue; // transition rules run on updates only
      const ok: unknown = evaluate(r.rule, transition ? { self, oldSelf } : { self });
      assert.equal(typeof ok, "boolean", `${r.rule} evaluates to a bool`);
      if (ok !== true) refused.push(r.message);
    }
  }
  return refused.sort();
}

const vmImage = (spec: Record<string, unknown>) => withDefaults(schemas.get("VmImage") ?? {}, { spec }) as { spec: VmImageSpec };
const capture = (spec: Record<string, unknown>) => withDefaults(schemas.get("ImageCapture") ?? {}, { spec }) as { spec: ImageCaptureSpec };

const market = { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } };
const base = { location: "westeurope", resourceGroup: "images", osType: "Linux", source: market, destination: { managedImage: {} } };
const vm = { virtualMachine: { resourceGroup: "build", name: "vm1" }, destination: { managedImage: {} } };
const referenceOnly = { location: "westeurope", resourceGroup: "images", osType: "Linux", source: market };

const M = {
  oneSource: "spec.source must name exactly one of marketplace, gallery or vhd",
  oneGallery: "spec.source.gallery needs exactly one of id, sharedGalleryImageId or communityGalleryImageId",
  oneVhd: "spec.source.vhd needs exactly one of url or blobUri",
  destination: "spec.destination needs a managedImage, a gallery, or both",
  destinationRequired: "spec.destination is required unless the source is a Marketplace image (then status.imageReference names the pinned version)",
  sourceImmutable: "spec.source is immutable (except marketplace.acceptTerms); create a new VmImage for a different source",
  placeImmutable: "spec.location and spec.resourceGroup are immutable; create a new VmImage for another place",
  dataDisk: "each of spec.source.vhd.dataDisks needs exactly one of url or blobUri",
  copy: "spec.source.vhd.copy needs blobUri and storageAccountId",
  trustedLaunch: "Trusted Launch and confidential VM images need hyperVGeneration V2",
  vmRef: "give either virtualMachine.id or virtualMachine.resourceGroup and virtualMachine.name",
  script: "generalize.script is used only with mode RunCommand",
  captureImmutable: "the spec of an ImageCapture is immutable; create a new ImageCapture instead",
};

const vmImageCases: Array<{ name: string; spec: Record<string, unknown>; old?: Record<string, unknown>; refused: string[] }> = [
  { name: "a Marketplace image", spec: base, refused: [] },
  { name: "a VHD URL into a gallery", spec: { ...base, source: { vhd: { url: "https://example.com/d.vhd" } }, destination: { gallery: { galleryName: "g", imageDefinition: "d" } } }, refused: [] },
  { name: "a shared gallery image", spec: { ...base, source: { gallery: { sharedGalleryImageId: "/SharedGalleries/x/Images/y" } } }, refused: [] },
  { name: "two sources", spec: { ...base, source: { ...market, vhd: { url: "https://example.com/d.vhd" } } }, refused: [M.oneSource] },
  { name: "a VHD with url and blobUri", spec: { ...base, source: { vhd: { url: "https://a/d.vhd", blobUri: "https://b/c/d.vhd" } } }, refused: [M.oneVhd] },
  { name: "a VHD with neither url nor blobUri", spec: { ...base, source: { vhd: { format: "raw" } } }, refused: [M.oneVhd] },
  { name: "a gallery source named twice", spec: { ...base, source: { gallery: { id: "/subscriptions/s/x", communityGalleryImageId: "/CommunityGalleries/c/Images/i" } } }, refused: [M.oneGallery] },
  { name: "no destination", spec: { ...base, destination: {} }, refused: [M.destination] },
  { name: "a Marketplace image pinned for reference only (no destination)", spec: referenceOnly, refused: [] },
  { name: "a VHD without a destination", spec: { ...referenceOnly, source: { vhd: { url: "https://a/d.vhd" } } }, refused: [M.destinationRequired] },
  { name: "a blob copied first", spec: { ...base, source: { vhd: { blobUri: "https://a/c/d.vhd", storageAccountId: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/a", copy: true } } }, refused: [] },
  { name: "a VM image with two data disks", spec: { ...base, source: { vhd: { url: "https://a/os.vhd", dataDisks: [{ lun: 0, url: "https://a/d0.vhd" }, { lun: 1, blobUri: "https://b/c/d1.vhd" }] } } }, refused: [] },
  { name: "a data disk with url and blobUri", spec: { ...base, source: { vhd: { url: "https://a/os.vhd", dataDisks: [{ lun: 0, url: "https://a/d0.vhd", blobUri: "https://b/c/d1.vhd" }] } } }, refused: [M.dataDisk] },
  { name: "a copy without its storage account", spec: { ...base, source: { vhd: { blobUri: "https://a/c/d.vhd", copy: true } } }, refused: [M.copy] },
  { name: "Trusted Launch on V2", spec: { ...base, features: [{ name: "SecurityType", value: "TrustedLaunch" }] }, refused: [] },
  { name: "Trusted Launch on V1", spec: { ...base, hyperVGeneration: "V1", features: [{ name: "SecurityType", value: "TrustedLaunchSupported" }] }, refused: [M.trustedLaunch] },
  { name: "an update of tags and target regions", old: base, spec: { ...base, tags: { team: "a" } }, refused: [] },
  { name: "accepting a plan's terms", old: base, spec: { ...base, source: { marketplace: { ...market.marketplace, acceptTerms: true } } }, refused: [] },
  { name: "an update of a VHD source", old: { ...base, source: { vhd: { url: "https://a/1.vhd" } } }, spec: { ...base, source: { vhd: { url: "https://a/2.vhd" } } }, refused: [M.sourceImmutable] },
  { name: "an update of the source", old: base, spec: { ...base, source: { marketplace: { ...market.marketplace, sku: "minimal" } } }, refused: [M.sourceImmutable] },
  { name: "an update of the location", old: base, spec: { ...base, location: "northeurope" }, refused: [M.placeImmutable] },
];

const captureCases: Array<{ name: string; spec: Record<string, unknown>; old?: Record<string, unknown>; refused: string[] }> = [
  { name: "a VM by group and name", spec: vm, refused: [] },
  { name: "a VM by ID with a script (mode defaults to RunCommand)", spec: { ...vm, virtualMachine: { id: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v" }, generalize: { script: ["echo hi"] } }, refused: [] },
  { name: "a VM by ID and by name", spec: { ...vm, virtualMachine: { id: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v", resourceGroup: "r", name: "v" } }, refused: [M.vmRef] },
  { name: "a VM by name alone", spec: { ...vm, virtualMachine: { name: "v" } }, refused: [M.vmRef] },
  { name: "a script without Run Command", spec: { ...vm, generalize: { mode: "AlreadyGeneralized", script: ["echo hi"] } }, refused: [M.script] },
  { name: "no destination", spec: { ...vm, destination: {} }, refused: [M.destination] },
  { name: "an unchanged update", old: vm, spec: vm, refused: [] },
  { name: "any change", old: vm, spec: { ...vm, includeDataDisks: false }, refused: [M.captureImmutable] },
];

describe("CEL rules in the CRDs", () => {
  it("every rule compiles", () => {
    assert.ok(rules.length >= 9, `found ${rules.length} rules`);
    for (const r of rules) assert.doesNotThrow(() => parse(r.rule), `${r.kind} ${r.path.join(".")}: ${r.rule}`);
  });

  for (const c of vmImageCases) {
    it(`VmImage: ${c.name} -> ${c.refused.length ? "refused" : "accepted"}`, () => {
      const obj = vmImage(c.spec);
      const old = c.old ? vmImage(c.old) : undefined;
      assert.deepEqual(celRefusals("VmImage", obj, old), [...c.refused].sort(), "CEL");
      // The controller refuses the same, for clusters without CEL (against the first applied spec's fingerprints).
      const controller = [...vmImageSpecProblems(obj.spec), ...vmImageChangeProblems(old ? vmImageFingerprints(old.spec) : undefined, obj.spec)];
      assert.deepEqual(controller.sort(), [...c.refused].sort(), "controller");
    });
  }

  for (const c of captureCases) {
    it(`ImageCapture: ${c.name} -> ${c.refused.length ? "refused" : "accepted"}`, () => {
      const obj = capture(c.spec);
      const old = c.old ? capture(c.old) : undefined;
      assert.deepEqual(celRefusals("ImageCapture", obj, old), [...c.refused].sort(), "CEL");
      // Spec changes after the start are refused by the controller from metadata.generation (integration test
      // "refuses a spec change after the capture started"); the other rules are checked here.
      const expected = c.refused.filter((m) => m !== M.captureImmutable);
      assert.deepEqual(imageCaptureSpecProblems(obj.spec).sort(), expected.sort(), "controller");
    });
  }

  it("every rule is exercised by a case that breaks it and one that keeps it", () => {
    const broken = new Set([...vmImageCases, ...captureCases].flatMap((c) => c.refused));
    for (const r of rules) assert.ok(broken.has(r.message), `no case breaks: ${r.message}`);
  });
});
