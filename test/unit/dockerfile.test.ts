import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

// No Docker engine runs on the test machines, so the Dockerfile is checked statically: parsed into
// stages and instructions, then held to what the image must be.

const root = fileURLToPath(new URL("../../", import.meta.url));

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  from: string;
  name: string | undefined;
  body: Instruction[];
}

/** Instructions with line continuations joined and comments dropped, grouped by stage. */
function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (!current && (line.trimStart().startsWith("#") || line.trim() === "")) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push((current + line).trim());
    current = "";
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\w+)\s+([\s\S]*)$/.exec(l);
    if (!m?.[1]) continue;
    const op = m[1].toUpperCase();
    const args = m[2] ?? "";
    if (op === "FROM") {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args.trim());
      stages.push({ from: f?.[1] ?? args, name: f?.[2], body: [] });
    } else {
      stages.at(-1)?.body.push({ op, args });
    }
  }
  return stages;
}

describe("Dockerfile (static checks)", async () => {
  const text = await readFile(`${root}Dockerfile`, "utf8");
  const stages = parseDockerfile(text);
  const final = stages.at(-1);
  const pkg = JSON.parse(await readFile(`${root}package.json`, "utf8")) as { version: string; license: string; devDependencies: Record<string, string> };

  it("is multi-stage, and every base image is pinned by digest", () => {
    assert.ok(stages.length >= 2, "a build stage and a runtime stage");
    const names = new Set(stages.map((s) => s.name).filter(Boolean));
    for (const s of stages) {
      if (names.has(s.from)) continue;
      assert.match(s.from, /^[\w./:-]+@sha256:[0-9a-f]{64}$/, `${s.from} is pinned by digest`);
    }
  });

  it("builds on Node 24 and runs on a distroless, non-root Node 24", () => {
    const nodeMajor = /(\d+)/.exec(pkg.devDependencies.node ?? "")?.[1];
    assert.equal(nodeMajor, "24");
    assert.match(stages[0]?.from ?? "", /^node:24[-@]/);
    assert.match(final?.from ?? "", /^gcr\.io\/distroless\/nodejs24-debian12:nonroot@/);
    const users = final?.body.filter((i) => i.op === "USER").map((i) => i.args.trim()) ?? [];
    assert.ok(users.length > 0, "the runtime stage sets USER");
    assert.ok(!["root", "0", "0:0"].includes(users.at(-1) ?? "root"), `runs as ${users.at(-1) ?? "root"}`);
  });

  it("installs with npm ci and ships production dependencies and compiled JavaScript only", () => {
    const build = stages[0]?.body ?? [];
    const runs = build.filter((i) => i.op === "RUN").map((i) => i.args);
    assert.ok(runs.some((r) => /\bnpm ci\b/.test(r)), "npm ci");
    // The last install leaves production dependencies only, and the runtime stage copies that node_modules.
    const installs = runs.filter((r) => /\bnpm (ci|install)\b/.test(r));
    assert.match(installs.at(-1) ?? "", /npm ci\b[^&]*--omit=dev/, "dev dependencies are removed with npm ci --omit=dev");
    const copies = final?.body.filter((i) => i.op === "COPY").map((i) => i.args) ?? [];
    for (const c of copies) {
      assert.match(c, /^--from=build \/src\/(package\.json|node_modules|dist) /, `runtime copies only package.json, node_modules and dist: ${c}`);
    }
    assert.ok(copies.some((c) => c.includes("/src/dist ")), "the compiled code is copied");
    assert.ok(!final?.body.some((i) => i.op === "RUN"), "nothing runs in the distroless stage");
  });

  it("starts the compiled operator", async () => {
    const entry = final?.body.find((i) => i.op === "ENTRYPOINT");
    assert.ok(entry, "ENTRYPOINT");
    const argv = JSON.parse(entry.args) as string[];
    assert.equal(argv[0], "/nodejs/bin/node");
    assert.equal(argv.at(-1), "dist/main.js");
    // tsconfig.build.json compiles src/ into dist/, so src/main.ts becomes dist/main.js.
    const build = JSON.parse(await readFile(`${root}tsconfig.build.json`, "utf8")) as { compilerOptions: { outDir: string; rootDir: string } };
    assert.deepEqual([build.compilerOptions.rootDir, build.compilerOptions.outDir], ["src", "dist"]);
    await readFile(`${root}src/main.ts`);
  });

  it("carries OCI labels", () => {
    const labels = final?.body.filter((i) => i.op === "LABEL").map((i) => i.args).join(" ") ?? "";
    for (const key of ["title", "description", "licenses", "version", "revision", "created"]) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), key);
    }
    assert.match(labels, new RegExp(`licenses="${pkg.license}"`));
  });

  it("keeps the build context small (.dockerignore)", async () => {
    const ignored = (await readFile(`${root}.dockerignore`, "utf8")).split("\n").map((l) => l.trim());
    for (const p of ["node_modules", ".git", "test", "bench", "dist"]) assert.ok(ignored.includes(p), `${p} is ignored`);
  });

  it("the parser sees what it checks (a broken Dockerfile fails)", () => {
    const bad = parseDockerfile("FROM node:24\nCOPY . .\nUSER root\n");
    assert.doesNotMatch(bad[0]?.from ?? "", /@sha256:/);
    assert.equal(bad[0]?.body.find((i) => i.op === "USER")?.args, "root");
  });
});
