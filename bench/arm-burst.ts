// Many VmImages applied at once against ARM's real throttling buckets: how long until all are Ready,
// how many requests of each class that costs, whether ARM ever answered 429, and what a Ready object
// costs afterwards (drift checks only).
import { GROUP, VERSION, VMIMAGE } from "../src/api/group.ts";
import type { VmImage } from "../src/api/types.ts";
import { ArmRateLimiter } from "../src/azure/rate-limit.ts";
import { OperatorEnv, readyCondition } from "../test/support/operator-fixture.ts";

export interface ArmBurstResult {
  objects: number;
  /** From the first create to every object Ready. */
  allReadySeconds: number;
  /** ARM requests while becoming Ready, by class (the emulator's counters). */
  requests: { reads: number; writes: number; deletes: number };
  throttled: number;
  limiterWaits: number;
  limiterWaitedSeconds: number;
  /** Drift checks once Ready: the window observed and what it cost. */
  steady: { windowSeconds: number; driftPeriodSeconds: number; reads: number; writes: number; readsPerObjectPerPeriod: number };
}

type Counts = ArmBurstResult["requests"] & { throttled: number };

/** The emulator's counters as request classes: its operations are named `<type>/read|write|delete|action <status>`. */
function classes(counters: Map<string, number>): Counts {
  const c: Counts = { reads: 0, writes: 0, deletes: 0, throttled: 0 };
  for (const [key, n] of counters) {
    if (key.startsWith("admin/") || key.startsWith("token ")) continue;
    const [operation = "", status = ""] = key.split(" ");
    if (status === "429") c.throttled += n;
    if (operation.endsWith("/read")) c.reads += n;
    else if (operation.endsWith("/delete")) c.deletes += n;
    else c.writes += n;
  }
  return c;
}

function minus(a: Counts, b: Counts): Counts {
  return { reads: a.reads - b.reads, writes: a.writes - b.writes, deletes: a.deletes - b.deletes, throttled: a.throttled - b.throttled };
}

const round = (n: number) => Math.round(n * 100) / 100;

/**
 * Creates `objects` Marketplace VmImages (latest resolved, a managed image each) at once, with the
 * emulator enforcing ARM's buckets (reads 250 at 25/s, writes 200 at 10/s per subscription and principal)
 * and the operator's default client-side limiter; waits until all are Ready, then watches
 * `steadySeconds` of drift checks every `driftSeconds`.
 */
export async function runArmBurst(objects: number, driftSeconds: number, steadySeconds: number): Promise<ArmBurstResult> {
  const limiter = new ArmRateLimiter();
  const env = await OperatorEnv.start({ throttling: true, operationDurationMs: 2_000 }, limiter, { workers: 4, pollMs: 5_000, resyncPeriodMs: driftSeconds * 1000 });
  try {
    const started = performance.now();
    const names = Array.from({ length: objects }, (_, i) => `burst-${String(i).padStart(5, "0")}`);
    const list = `/apis/${GROUP}/${VERSION}/namespaces/default/${VMIMAGE.plural}`;
    const spec = {
      location: "westeurope",
      resourceGroup: "rg-burst",
      osType: "Linux",
      source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" } },
      destination: { managedImage: {} },
    };
    for (let i = 0; i < names.length; i += 32) {
      await Promise.all(names.slice(i, i + 32).map((name) => env.kube.create(list, { apiVersion: `${GROUP}/${VERSION}`, kind: VMIMAGE.kind, metadata: { name }, spec })));
    }
    for (;;) {
      const items = (await env.kube.get<{ items: VmImage[] }>(list)).items;
      if (items.length === objects && items.every((o) => readyCondition(o)?.status === "True")) break;
      await new Promise((r) => setTimeout(r, 2_000));
    }
    const allReadySeconds = (performance.now() - started) / 1000;
    const atReady = classes(env.emu.counters);
    const waits = { ...limiter.stats };

    await new Promise((r) => setTimeout(r, steadySeconds * 1000));
    const steady = minus(classes(env.emu.counters), atReady);
    return {
      objects,
      allReadySeconds: round(allReadySeconds),
      requests: { reads: atReady.reads, writes: atReady.writes, deletes: atReady.deletes },
      throttled: atReady.throttled + steady.throttled,
      limiterWaits: waits.waited,
      limiterWaitedSeconds: round(waits.waitedMs / 1000),
      steady: {
        windowSeconds: steadySeconds,
        driftPeriodSeconds: driftSeconds,
        reads: steady.reads,
        writes: steady.writes + steady.deletes,
        readsPerObjectPerPeriod: round(steady.reads / objects / (steadySeconds / driftSeconds)),
      },
    };
  } finally {
    await env.stop();
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const objects = Number(process.argv[2] ?? 1000);
  const driftSeconds = Number(process.argv[3] ?? 120);
  const steadySeconds = Number(process.argv[4] ?? driftSeconds * 2);
  process.stdout.write(JSON.stringify(await runArmBurst(objects, driftSeconds, steadySeconds)) + "\n");
}
