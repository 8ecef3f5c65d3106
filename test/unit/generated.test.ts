import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { apiDocsPath, generatedTypesPath, loadCrds, renderDocs, renderTypes } from "../../scripts/generate-api.ts";

// The CRDs are the source of truth; the TypeScript types and the API reference are generated from them.
describe("files generated from the CRDs", async () => {
  const crds = await loadCrds();

  it("src/api/generated.ts is what `npm run generate` writes", async () => {
    assert.equal(await readFile(generatedTypesPath, "utf8"), renderTypes(crds), "the CRDs changed: run npm run generate");
  });

  it("docs/api.md is what `npm run generate` writes", async () => {
    assert.equal(await readFile(apiDocsPath, "utf8"), renderDocs(crds), "the CRDs changed: run npm run generate");
  });

  it("a change to a CRD changes the generated types (the check can fail)", () => {
    const changed = structuredClone(crds);
    const spec = changed[0]?.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec;
    assert.ok(spec?.properties);
    spec.properties.newField = { type: "string", description: "A field the types do not have yet." };
    assert.notEqual(renderTypes(changed), renderTypes(crds));
    assert.match(renderTypes(changed), /newField\?: string;/);
    assert.match(renderDocs(changed), /\| `spec\.newField` \| string \|/);
  });
});
