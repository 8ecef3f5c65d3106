import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { ControlPlane } from "../src/localstack/control-plane.ts";
import { installCrds } from "../src/localstack/crds.ts";
import { clientFor, createVmImages } from "../test/support/runtime-fixture.ts";

export interface SyncBenchmarkResult {
  objects: number;
  apiServer: string;
  createSeconds: number;
  /** From operator process start to its cache holding every object. */
  initialSyncSeconds: number;
  /** From operator process start to every object reconciled once. */
  allReconciledSeconds: number;
  rssAfterSyncMiB: number;
  heapUsedAfterSyncMiB: number;
  idleSeconds: number;
  idleCpuSeconds: number;
  idleCpuPercent: number;
}

const operator = fileURLToPath(new URL("./sync-process.ts", import.meta.url));
// The operator runs with a small young generation (package.json, Dockerfile); measure it the same way.
const operatorNodeFlags = ["--max-semi-space-size=4"];
const nodeFlags = process.env.BENCH_NODE_FLAGS === undefined ? operatorNodeFlags : process.env.BENCH_NODE_FLAGS.split(" ").filter(Boolean);

/**
 * Fills a real API server with `objects` VmImages, then starts an operator process (manager, informer,
 * a controller with a no-op reconciler) and measures its initial sync, its memory after sync and its
 * CPU use while idle.
 */
export async function runSyncBenchmark(objects: number, idleSeconds: number): Promise<SyncBenchmarkResult> {
  const cp = await ControlPlane.start();
  const client = clientFor(cp);
  try {
    await installCrds(cp.kubeConfig());
    const createStart = performance.now();
    await createVmImages(client, "bench", objects, 32);
    const createSeconds = (performance.now() - createStart) / 1000;

    const child = spawn(process.execPath, [...nodeFlags, operator, cp.kubeconfigPath, String(objects), String(idleSeconds)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const phases: Record<string, Record<string, number>> = {};
    for await (const line of createInterface({ input: child.stdout })) {
      const parsed = JSON.parse(line) as { phase: string } & Record<string, number>;
      phases[parsed.phase] = parsed;
    }
    const synced = phases.synced;
    const idle = phases.idle;
    if (!synced || !idle) throw new Error("the operator process did not report both phases");
    if (synced.objects !== objects) throw new Error(`operator cached ${synced.objects} of ${objects} objects`);
    const num = (v: number | undefined) => v ?? Number.NaN;
    return {
      objects,
      apiServer: await cp.version(),
      createSeconds: round(createSeconds),
      initialSyncSeconds: round(num(synced.syncedMs) / 1000),
      allReconciledSeconds: round(num(synced.reconciledMs) / 1000),
      rssAfterSyncMiB: round(num(synced.rssAfterSync) / 2 ** 20),
      heapUsedAfterSyncMiB: round(num(synced.heapUsedAfterSync) / 2 ** 20),
      idleSeconds: num(idle.idleSeconds),
      idleCpuSeconds: round(num(idle.idleCpuSeconds)),
      idleCpuPercent: round((num(idle.idleCpuSeconds) / num(idle.idleSeconds)) * 100),
    };
  } finally {
    client.close();
    await cp.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const objects = Number(process.argv[2] ?? 10_000);
  const idleSeconds = Number(process.argv[3] ?? 60);
  const result = await runSyncBenchmark(objects, idleSeconds);
  process.stdout.write(JSON.stringify(result, null, 2) + "\n");
}
