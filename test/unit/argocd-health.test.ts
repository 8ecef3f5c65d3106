import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { load } from "js-yaml";

// The Argo CD health checks (deploy/argocd/<group>/<kind>/health.lua), run by a real Lua 5.1 interpreter
// (Debian's lua5.1; Argo CD embeds Lua 5.1 through gopher-lua) over the fixtures their health_test.yaml
// lists, the way Argo CD's own tests of resource_customizations do.

const root = fileURLToPath(new URL("../../deploy/argocd/", import.meta.url));
const group = "azureimages.dev";

/** A Lua table constructor for a JSON-like value. */
function lua(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `{${value.map(lua).join(", ")}}`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `[${JSON.stringify(k)}] = ${lua(v)}`)
    .join(", ")}}`;
}

async function runHealth(script: string, obj: unknown): Promise<{ status: string; message: string }> {
  const program = `local obj = ${lua(obj)}\nlocal function health(obj)\n${script}\nend\nlocal hs = health(obj)\nio.write(hs.status, "\\n", hs.message or "")\n`;
  const { stdout } = await promisify(execFile)("lua5.1", ["-e", program]);
  const [status = "", ...rest] = stdout.split("\n");
  return { status, message: rest.join("\n") };
}

interface HealthTests {
  tests: Array<{ healthStatus: { status: string; message: string }; inputPath: string }>;
}

describe("Argo CD health checks (Lua 5.1)", async () => {
  const kinds = (await readdir(join(root, group))).sort();

  it("cover both kinds", () => {
    assert.deepEqual(kinds, ["ImageCapture", "VmImage"]);
  });

  for (const kind of kinds) {
    const dir = join(root, group, kind);
    const script = await readFile(join(dir, "health.lua"), "utf8");
    const { tests } = load(await readFile(join(dir, "health_test.yaml"), "utf8")) as HealthTests;

    it(`${kind}: fixtures for Healthy, Progressing and Degraded`, () => {
      const statuses = new Set(tests.map((t) => t.healthStatus.status));
      for (const s of ["Healthy", "Progressing", "Degraded"]) assert.ok(statuses.has(s), `${kind} has a ${s} fixture`);
    });

    for (const t of tests) {
      it(`${kind}: ${t.inputPath} -> ${t.healthStatus.status}`, async () => {
        const obj = load(await readFile(join(dir, t.inputPath), "utf8"));
        assert.deepEqual(await runHealth(script, obj), t.healthStatus);
      });
    }

    it(`${kind}: the argocd-cm patch carries health.lua unchanged`, async () => {
      const cm = load(await readFile(join(root, "argocd-cm-patch.yaml"), "utf8")) as { data: Record<string, string> };
      assert.equal(cm.data[`resource.customizations.health.${group}_${kind}`], script);
    });
  }

  it("a script error fails the run (the harness can fail)", async () => {
    await assert.rejects(runHealth("return obj.status.conditions[1].type", { metadata: {} }));
  });
});
