// Generates src/api/generated.ts (TypeScript types) and docs/api.md (API reference) from the CRD
// schemas in crds/, which are the source of truth. `npm run generate` writes both files; a unit test
// fails when either is not what this script would write.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { load } from "js-yaml";

export interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minProperties?: number;
  maxProperties?: number;
  "x-kubernetes-validations"?: Array<{ rule: string; message?: string }>;
}

export interface Crd {
  spec: {
    names: { kind: string; plural: string; shortNames?: string[] };
    versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }>;
  };
}

const root = fileURLToPath(new URL("../", import.meta.url));
export const generatedTypesPath = join(root, "src/api/generated.ts");
export const apiDocsPath = join(root, "docs/api.md");

export async function loadCrds(dir = join(root, "crds")): Promise<Crd[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
  return Promise.all(files.map(async (f) => load(await readFile(join(dir, f), "utf8")) as Crd));
}

function tsType(s: Schema, indent: string): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  switch (s.type) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "array":
      return `Array<${s.items ? tsType(s.items, indent) : "unknown"}>`;
    case "object": {
      if (s.properties) return objectType(s, indent);
      if (typeof s.additionalProperties === "object") return `Record<string, ${tsType(s.additionalProperties, indent)}>`;
      return "Record<string, unknown>";
    }
    default:
      return "unknown";
  }
}

function comment(text: string | undefined, indent: string): string {
  if (!text) return "";
  const clean = text.trim().replace(/\*\//g, "*\\/").replace(/\s+/g, " ");
  return `${indent}/** ${clean} */\n`;
}

function objectType(s: Schema, indent: string): string {
  const inner = `${indent}  `;
  const required = new Set(s.required ?? []);
  const fields = Object.entries(s.properties ?? {}).map(
    ([name, prop]) => `${comment(prop.description, inner)}${inner}${name}${required.has(name) ? "" : "?"}: ${tsType(prop, inner)};`,
  );
  return `{\n${fields.join("\n")}\n${indent}}`;
}

/** The TypeScript module: `<Kind>Spec` and `<Kind>Status` for every CRD. */
export function renderTypes(crds: Crd[]): string {
  const out = [
    "// Generated from the CRD schemas in crds/ by `npm run generate` (scripts/generate-api.ts). Do not edit:",
    "// change the CRD and generate again. A unit test fails when this file is out of date.",
    "",
  ];
  for (const crd of crds) {
    const kind = crd.spec.names.kind;
    const schema = crd.spec.versions[0]?.schema.openAPIV3Schema;
    for (const part of ["spec", "status"] as const) {
      const s = schema?.properties?.[part];
      if (!s) continue;
      out.push(`${comment(s.description, "")}export interface ${kind}${part === "spec" ? "Spec" : "Status"} ${objectType(s, "")}`, "");
    }
  }
  return out.join("\n");
}

function docType(s: Schema): string {
  if (s.enum) return s.enum.map((v) => `\`${String(v)}\``).join(" \\| ");
  if (s.type === "array") return `[]${s.items ? docType(s.items) : "unknown"}`;
  if (s.type === "object" && !s.properties && typeof s.additionalProperties === "object") return `map[string]${docType(s.additionalProperties)}`;
  return s.format ? `${s.type ?? "any"} (${s.format})` : (s.type ?? "any");
}

function docRows(s: Schema, path: string, rows: string[]): void {
  const required = new Set(s.required ?? []);
  for (const [name, prop] of Object.entries(s.properties ?? {})) {
    const p = path ? `${path}.${name}` : name;
    const sentence = (t: string) => (/[.!?]$/.test(t) ? t : `${t}.`);
    const notes = [
      prop.description ? sentence(prop.description.trim().replace(/\s+/g, " ")) : "",
      prop.default !== undefined ? `Default \`${JSON.stringify(prop.default)}\`.` : "",
      prop.pattern ? `Pattern \`${prop.pattern}\`.` : "",
      prop.minimum !== undefined ? `Minimum ${prop.minimum}.` : "",
      prop.maximum !== undefined ? `Maximum ${prop.maximum}.` : "",
      prop.maxLength !== undefined ? `At most ${prop.maxLength} characters.` : "",
      ...[...(prop["x-kubernetes-validations"] ?? []), ...(prop.items?.["x-kubernetes-validations"] ?? [])].map((r) => `Rule: ${sentence(r.message ?? r.rule)}`),
    ];
    const text = notes.filter(Boolean).join(" ").replace(/\|/g, "\\|");
    rows.push(`| \`${p}\` | ${docType(prop)} | ${required.has(name) ? "yes" : ""} | ${text} |`);
    const child = prop.type === "array" ? prop.items : prop;
    if (child?.properties) docRows(child, prop.type === "array" ? `${p}[]` : p, rows);
  }
}

/** The API reference: one table per kind and part, every field with its type, default and description. */
export function renderDocs(crds: Crd[]): string {
  const out = [
    "# API reference",
    "",
    "Generated from the CRD schemas in [`crds/`](../crds/) by `npm run generate`; a unit test fails when it is",
    "out of date. `kubectl explain vmimage.spec` and `kubectl explain imagecapture.spec` print the same text.",
    "",
  ];
  for (const crd of crds) {
    const { kind, shortNames } = crd.spec.names;
    const version = crd.spec.versions[0];
    const schema = version?.schema.openAPIV3Schema;
    out.push(`## ${kind} (\`azureimages.dev/${version?.name ?? ""}\`, short name \`${shortNames?.join(", ") ?? ""}\`)`, "");
    if (schema?.description) out.push(schema.description.trim().replace(/\s+/g, " "), "");
    for (const part of ["spec", "status"] as const) {
      const s = schema?.properties?.[part];
      if (!s) continue;
      out.push(`### ${part}`, "");
      if (s.description) out.push(s.description.trim().replace(/\s+/g, " "), "");
      const rules = s["x-kubernetes-validations"] ?? [];
      if (rules.length) out.push(...rules.map((r) => `- Rule: ${r.message ?? ""} (\`${r.rule}\`)`), "");
      const rows = ["| field | type | required | description |", "|---|---|---|---|"];
      docRows(s, part, rows);
      out.push(...rows, "");
    }
  }
  return out.join("\n");
}

if (import.meta.main) {
  const crds = await loadCrds();
  await writeFile(generatedTypesPath, renderTypes(crds));
  await writeFile(apiDocsPath, renderDocs(crds));
  process.stdout.write(`wrote ${generatedTypesPath} and ${apiDocsPath}\n`);
}
