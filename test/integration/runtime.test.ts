import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { VmImage } from "../../src/api/types.ts";
import { Backoff } from "../../src/runtime/backoff.ts";
import { Controller, TerminalError, type ReconcileResult } from "../../src/runtime/controller.ts";
import { Informer } from "../../src/runtime/informer.ts";
import { MERGE_PATCH, objectPath, type KubeClient } from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { specOrMetadataChanged } from "../../src/runtime/predicates.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import {
  clientFor,
  createVmImage,
  createVmImages,
  eventually,
  testLogger,
  vmImages,
} from "../support/runtime-fixture.ts";
import { TcpProxy } from "../support/tcp-proxy.ts";

/** Records every reconcile per key and how many ran at once for one key. */
class Recorder {
  readonly count = new Map<string, number>();
  private readonly running = new Map<string, number>();
  maxConcurrentPerKey = 0;
  total = 0;

  async around(key: string, work: () => Promise<void>): Promise<void> {
    const now = (this.running.get(key) ?? 0) + 1;
    this.running.set(key, now);
    this.maxConcurrentPerKey = Math.max(this.maxConcurrentPerKey, now);
    try {
      await work();
    } finally {
      this.running.set(key, (this.running.get(key) ?? 1) - 1);
      this.count.set(key, (this.count.get(key) ?? 0) + 1);
      this.total++;
    }
  }

  seen(key: string): boolean {
    return (this.count.get(key) ?? 0) > 0;
  }
}

interface Harness {
  manager: Manager;
  informer: Informer<VmImage>;
  controller: Controller<VmImage>;
  recorder: Recorder;
  metrics: Metrics;
}

async function startController(
  client: KubeClient,
  reconcile: (key: string, informer: Informer<VmImage>) => Promise<ReconcileResult | undefined> = () =>
    Promise.resolve(undefined),
  opts: { workers?: number; watchTimeoutSeconds?: number; health?: boolean; backoff?: Backoff } = {},
): Promise<Harness> {
  const log = testLogger();
  const metrics = new Metrics();
  const informer = new Informer<VmImage>(client, vmImages, log, {
    watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 300,
    ...(opts.backoff ? { backoff: opts.backoff } : {}),
  });
  const recorder = new Recorder();
  const controller = new Controller<VmImage>({
    name: "vmimage-test",
    informer,
    log,
    workers: opts.workers ?? 2,
    updatePredicates: specOrMetadataChanged,
    metrics: metrics.forController("vmimage-test"),
    reconcile: async (req) => {
      let result: ReconcileResult | undefined;
      await recorder.around(req.key, async () => {
        result = await reconcile(req.key, informer);
      });
      return result;
    },
  });
  const manager = new Manager({
    client,
    log,
    metrics,
    ...(opts.health ? { healthProbeAddress: "127.0.0.1:0", metricsAddress: "127.0.0.1:0" } : {}),
  });
  manager.addInformer(informer);
  manager.addController(controller);
  await manager.start();
  await informer.waitForSync();
  return { manager, informer, controller, recorder, metrics };
}

describe("controller runtime against a real API server", () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  const unhandled: unknown[] = [];
  const onUnhandled = (err: unknown) => unhandled.push(err);

  before(async () => {
    process.on("unhandledRejection", onUnhandled);
    // Without the watch cache, watches are served by etcd, so compacting etcd makes an old
    // resourceVersion answer 410 Gone exactly as a long disconnection does in a real cluster.
    cp = await ControlPlane.start({ apiServerArgs: ["--watch-cache=false"] });
    await installCrds(cp.kubeConfig());
    admin = clientFor(cp);
  });

  after(async () => {
    process.off("unhandledRejection", onUnhandled);
    admin.close();
    await cp.stop();
    assert.deepEqual(unhandled, [], "no unhandled promise rejections");
  });

  it("relists after 410 Gone and reconciles what was created while it was cut off", async (t) => {
    const proxy = await TcpProxy.start(Number(new URL(cp.server).port));
    const h = await startController(clientFor(cp, proxy.port));
    try {
      await createVmImage(admin, "gone-a");
      await eventually("gone-a reconciled", () => h.recorder.seen("default/gone-a"));
      const listsBefore = h.informer.stats.lists;

      // Given the operator is cut off from the API server
      proxy.cut();
      // When objects are created meanwhile and etcd compacts the history the watch would resume from
      // (a watch may start at the compaction revision itself, so two writes put it out of reach)
      await createVmImage(admin, "gone-b");
      await createVmImage(admin, "gone-c");
      const revision = await cp.compactEtcd();
      proxy.restore();

      // Then the watch gets 410, the informer relists, and the new object is reconciled
      await eventually("gone-b and gone-c reconciled", () => h.recorder.seen("default/gone-b") && h.recorder.seen("default/gone-c"), 60_000);
      assert.ok(h.informer.stats.expired >= 1, `410 seen (stats ${JSON.stringify(h.informer.stats)})`);
      assert.ok(h.informer.stats.lists > listsBefore, "relisted");
      t.diagnostic(`compacted at revision ${revision}; informer ${JSON.stringify(h.informer.stats)}`);
    } finally {
      await h.manager.stop();
      await proxy.stop();
    }
  });

  it("survives an API server restart: reconnects with backoff and reconciles new objects", async (t) => {
    // A shorter reconnect backoff than the default 1-30 s keeps the test quick; the behaviour is the same.
    const h = await startController(clientFor(cp), undefined, { backoff: new Backoff(200, 2_000) });
    try {
      await createVmImage(admin, "restart-a");
      await eventually("restart-a reconciled", () => h.recorder.seen("default/restart-a"));

      // When the API server goes away for a few seconds and comes back
      await cp.stopApiServer();
      await sleep(1_000);
      await cp.restartApiServer();

      // Then objects created after the restart are reconciled
      await createVmImage(admin, "restart-b");
      await eventually("restart-b reconciled", () => h.recorder.seen("default/restart-b"), 60_000);
      assert.ok(h.informer.stats.errors >= 1, "the outage was noticed");
      t.diagnostic(`informer after restart: ${JSON.stringify(h.informer.stats)}`);
    } finally {
      await h.manager.stop();
    }
  });

  it("serialises reconciles of one key under 200 rapid updates and coalesces them", async (t) => {
    const h = await startController(clientFor(cp), async () => {
      await sleep(100);
      return undefined;
    });
    try {
      await createVmImage(admin, "rapid");
      await eventually("first reconcile", () => h.recorder.seen("default/rapid"));
      const path = objectPath(vmImages, "default", "rapid");
      for (let i = 0; i < 200; i++) {
        await admin.patch(path, { spec: { tags: { n: String(i) } } }, MERGE_PATCH);
      }
      await eventually("the last update seen by the cache", () => h.informer.get("default/rapid")?.spec.tags?.n === "199");
      await eventually("queue idle", () => h.controller.queue.len() === 0 && !h.controller.queue.isProcessing("default/rapid"));
      const count = h.recorder.count.get("default/rapid") ?? 0;
      t.diagnostic(`200 updates -> ${count} reconciles, max concurrent per key ${h.recorder.maxConcurrentPerKey}`);
      assert.equal(h.recorder.maxConcurrentPerKey, 1);
      assert.ok(count < 60, `reconciles coalesced (${count})`);
    } finally {
      await h.manager.stop();
    }
  });

  it("reconciles every one of 500 objects with 4 workers", async (t) => {
    const h = await startController(clientFor(cp), () => Promise.resolve(undefined), { workers: 4 });
    try {
      const started = Date.now();
      await createVmImages(admin, "many", 500);
      await eventually("all 500 reconciled", () => {
        for (let i = 0; i < 500; i++) if (!h.recorder.seen(`default/many-${i}`)) return false;
        return true;
      }, 120_000);
      t.diagnostic(`500 created and reconciled in ${Date.now() - started} ms; ${h.recorder.total} reconciles`);
      assert.equal(h.recorder.maxConcurrentPerKey, 1);
    } finally {
      await h.manager.stop();
    }
  });

  it("retries a reconcile that throws, and stops retrying on a terminal error", async () => {
    let attempts = 0;
    const h = await startController(clientFor(cp), (key) => {
      if (key === "default/flaky") {
        attempts++;
        if (attempts < 3) throw new Error("transient");
      }
      if (key === "default/broken") throw new TerminalError("spec is invalid");
      return Promise.resolve(undefined);
    });
    try {
      await createVmImage(admin, "flaky");
      await createVmImage(admin, "broken");
      await eventually("flaky succeeded on the third attempt", () => attempts === 3);
      await eventually("broken tried once", () => h.recorder.seen("default/broken"));
      await sleep(500);
      assert.equal(h.recorder.count.get("default/broken"), 1, "terminal errors are not retried");
      const text = await h.metrics.registry.metrics();
      assert.match(text, /controller_runtime_reconcile_errors_total\{controller="vmimage-test"\} 3/);
      assert.match(text, /controller_runtime_terminal_reconcile_errors_total\{controller="vmimage-test"\} 1/);
    } finally {
      await h.manager.stop();
    }
  });
});
