import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { VmImage, VmImageStatus } from "../../src/api/types.ts";
import { setHealth } from "../../src/runtime/conditions.ts";
import { Controller } from "../../src/runtime/controller.ts";
import { EventRecorder } from "../../src/runtime/events.ts";
import { Informer } from "../../src/runtime/informer.ts";
import {
  isConflict,
  isPatchTestFailed,
  MERGE_PATCH,
  objectPath,
  type KubeClient,
  type ObjectList,
} from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { addFinalizer, removeFinalizer, setAnnotations, updateStatus } from "../../src/runtime/objects.ts";
import { specOrMetadataChanged } from "../../src/runtime/predicates.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { clientFor, createVmImage, eventually, testLogger, vmImages } from "../support/runtime-fixture.ts";

interface CoreEvent {
  reason: string;
  message: string;
  count: number;
  type: string;
  involvedObject: { uid?: string; name?: string };
}

describe("object helpers against a real API server", () => {
  let cp: ControlPlane;
  let client: KubeClient;
  const get = (name: string) => client.get<VmImage>(objectPath(vmImages, "default", name));

  before(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp.kubeConfig());
    client = clientFor(cp);
  });

  after(async () => {
    client.close();
    await cp.stop();
  });

  it("writes status only when it changed, to /status, and refuses a stale write with 409", async () => {
    const obj = await createVmImage(client, "status-a");
    const status: VmImageStatus = {
      observedGeneration: 1,
      conditions: setHealth([], { state: "reconciling", reason: "Creating", message: "creating" }, 1),
    };
    const written = await updateStatus(client, vmImages, obj, status);
    assert.ok(written, "first write sent");
    assert.deepEqual(written.status, status);
    assert.equal(written.metadata?.generation, 1, "a status write does not bump the generation");

    assert.equal(await updateStatus(client, vmImages, written, status), undefined, "no change, nothing sent");

    // A status computed from the first read, written after someone else changed the object
    const stale = obj;
    await client.patch(objectPath(vmImages, "default", "status-a"), { metadata: { labels: { x: "y" } } }, MERGE_PATCH);
    const ready: VmImageStatus = {
      ...status,
      conditions: setHealth(status.conditions, { state: "ready", reason: "Available", message: "" }, 1),
    };
    await assert.rejects(updateStatus(client, vmImages, { ...stale, status }, ready), (err) => isConflict(err));
    assert.equal((await get("status-a")).status?.conditions?.[0]?.reason, "Creating", "nothing overwritten");
  });

  it("removes status fields the new status no longer has", async () => {
    const obj = await createVmImage(client, "status-b");
    const first = await updateStatus<VmImageStatus, VmImage>(client, vmImages, obj, { resolvedVersion: "1.0.0", imageId: "/x" });
    assert.ok(first);
    const second = await updateStatus<VmImageStatus, VmImage>(client, vmImages, first, { imageId: "/x" });
    assert.deepEqual(second?.status, { imageId: "/x" });
  });

  it("guards finalizer changes with the resourceVersion: the loser of a race fails loudly", async () => {
    const obj = await createVmImage(client, "fin");
    // Two writers read the same version and each adds its own finalizer
    const first = await addFinalizer(client, vmImages, obj, "azureimages.dev/one");
    assert.deepEqual(first?.metadata?.finalizers, ["azureimages.dev/one"]);
    await assert.rejects(addFinalizer(client, vmImages, obj, "azureimages.dev/two"), (err) => isPatchTestFailed(err));
    assert.deepEqual((await get("fin")).metadata?.finalizers, ["azureimages.dev/one"], "the winner's finalizer kept");

    // Retrying on a fresh read succeeds, and removal is guarded the same way
    const both = await addFinalizer(client, vmImages, await get("fin"), "azureimages.dev/two");
    assert.deepEqual(both?.metadata?.finalizers, ["azureimages.dev/one", "azureimages.dev/two"]);
    assert.ok(both);
    await client.patch(objectPath(vmImages, "default", "fin"), { metadata: { labels: { moved: "on" } } }, MERGE_PATCH);
    await assert.rejects(removeFinalizer(client, vmImages, both, "azureimages.dev/one"), (err) => isPatchTestFailed(err));
    const removed = await removeFinalizer(client, vmImages, await get("fin"), "azureimages.dev/one");
    assert.deepEqual(removed?.metadata?.finalizers, ["azureimages.dev/two"]);
    assert.equal(await addFinalizer(client, vmImages, removed, "azureimages.dev/two"), undefined);
    await removeFinalizer(client, vmImages, await get("fin"), "azureimages.dev/two");
  });

  it("sets and removes annotations in one guarded patch", async () => {
    const obj = await createVmImage(client, "ann");
    const set = await setAnnotations(client, vmImages, obj, { "azureimages.dev/poller": "token", other: "1" });
    assert.equal(set?.metadata?.annotations?.["azureimages.dev/poller"], "token");
    assert.equal(await setAnnotations(client, vmImages, set, { other: "1" }), undefined, "no change, no write");
    const cleared = await setAnnotations(client, vmImages, set, { "azureimages.dev/poller": undefined });
    assert.deepEqual(cleared?.metadata?.annotations, { other: "1" });
  });

  it("a controller retries a status conflict until its write lands", async () => {
    const log = testLogger();
    const informer = new Informer<VmImage>(client, vmImages, log);
    let attempts = 0;
    let conflicts = 0;
    const controller = new Controller<VmImage>({
      name: "status-writer",
      informer,
      log,
      updatePredicates: specOrMetadataChanged,
      reconcile: async (req) => {
        const obj = informer.get(req.key);
        if (req.name !== "conflict" || !obj) return undefined;
        attempts++;
        if (attempts === 1) {
          // Someone else writes while this reconcile works
          await client.patch(objectPath(vmImages, "default", "conflict"), { metadata: { labels: { a: "b" } } }, MERGE_PATCH);
        }
        try {
          await updateStatus<VmImageStatus, VmImage>(client, vmImages, obj, { resolvedVersion: "2.0.0" });
        } catch (err) {
          if (isConflict(err)) conflicts++;
          throw err;
        }
        return undefined;
      },
    });
    const manager = new Manager({ client: clientFor(cp), log, metrics: new Metrics() });
    manager.addInformer(informer);
    manager.addController(controller);
    await manager.start();
    try {
      await createVmImage(client, "conflict");
      await eventually("status written", async () => (await get("conflict")).status?.resolvedVersion === "2.0.0");
      assert.ok(conflicts >= 1, "the first write conflicted");
      assert.ok(attempts >= 2, "and was retried");
    } finally {
      await manager.stop();
    }
  });

  it("aggregates repeated Events into one with a count", async () => {
    const obj = await createVmImage(client, "evented");
    const recorder = new EventRecorder(client, "azure-image-operator", testLogger());
    for (let i = 0; i < 3; i++) await recorder.record(obj, "Warning", "QuotaExceeded", "quota exceeded in westeurope");
    await recorder.record(obj, "Normal", "Created", "image created");
    const events = await client.get<ObjectList<CoreEvent>>("/api/v1/namespaces/default/events");
    const mine = events.items.filter((e) => e.involvedObject.uid === obj.metadata?.uid);
    assert.deepEqual(
      mine.map((e) => [e.type, e.reason, e.count]).sort(),
      [["Normal", "Created", 1], ["Warning", "QuotaExceeded", 3]],
    );
  });

  it("serves /healthz, /readyz and /metrics with controller-runtime's metric names", async () => {
    const log = testLogger();
    const metrics = new Metrics();
    const informer = new Informer<VmImage>(client, vmImages, log);
    const controller = new Controller<VmImage>({
      name: "vmimage",
      informer,
      log,
      metrics: metrics.forController("vmimage"),
      reconcile: () => Promise.resolve(undefined),
    });
    const manager = new Manager({
      client: clientFor(cp),
      log,
      metrics,
      healthProbeAddress: "127.0.0.1:0",
      metricsAddress: "127.0.0.1:0",
    });
    manager.addInformer(informer);
    manager.addController(controller);
    await manager.start();
    try {
      const probe = `http://${manager.addresses.healthProbe ?? ""}`;
      assert.equal((await fetch(`${probe}/healthz`)).status, 200);
      await eventually("ready", async () => (await fetch(`${probe}/readyz`)).status === 200);
      await eventually("reconciled", async () => {
        const text = await (await fetch(`http://${manager.addresses.metrics ?? ""}/metrics`)).text();
        return /controller_runtime_reconcile_total\{controller="vmimage",result="success"\} [1-9]/.test(text);
      });
      const text = await (await fetch(`http://${manager.addresses.metrics ?? ""}/metrics`)).text();
      for (const name of [
        "controller_runtime_reconcile_time_seconds_bucket",
        "controller_runtime_max_concurrent_reconciles",
        "workqueue_depth",
        "workqueue_adds_total",
        "workqueue_queue_duration_seconds_bucket",
        "workqueue_work_duration_seconds_bucket",
        "process_resident_memory_bytes",
        "nodejs_eventloop_lag_seconds",
      ]) {
        assert.ok(text.includes(name), `${name} exported`);
      }
    } finally {
      await manager.stop();
    }
  });
});
