// The operator side of the informer benchmark: a manager with one controller over VmImages and a
// reconciler that does nothing, so what is measured is the runtime itself. Prints one JSON line
// when every object has been reconciled, and another after idling.
import { KubeConfig } from "@kubernetes/client-node";
import type { VmImage } from "../src/api/types.ts";
import { Controller } from "../src/runtime/controller.ts";
import { Informer } from "../src/runtime/informer.ts";
import { KubeClient } from "../src/runtime/kube-client.ts";
import { createLogger } from "../src/runtime/logger.ts";
import { Manager } from "../src/runtime/manager.ts";
import { Metrics } from "../src/runtime/metrics.ts";
import { vmImages } from "../test/support/runtime-fixture.ts";

const [kubeconfigPath, expectedArg, idleArg] = process.argv.slice(2);
if (!kubeconfigPath) throw new Error("usage: sync-process.ts <kubeconfig> <objects> <idle seconds>");
const expected = Number(expectedArg);
const idleMs = Number(idleArg) * 1000;

const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const log = createLogger("warn");
const client = new KubeClient(kc);
const informer = new Informer<VmImage>(client, vmImages, log);
let reconciled = 0;
let done: () => void = () => undefined;
const allReconciled = new Promise<void>((resolve) => (done = resolve));
const controller = new Controller<VmImage>({
  name: "vmimage",
  informer,
  log,
  workers: 2,
  reconcile: () => {
    if (++reconciled === expected) done();
    return Promise.resolve(undefined);
  },
});
const manager = new Manager({ client, log, metrics: new Metrics() });
manager.addInformer(informer);
manager.addController(controller);

const sinceStart = () => Math.round(performance.now());
await manager.start();
await informer.waitForSync();
const syncedMs = sinceStart();
await allReconciled;
const reconciledMs = sinceStart();
const { rss: rssAfterSync, heapUsed: heapUsedAfterSync } = process.memoryUsage();
process.stdout.write(
  JSON.stringify({ phase: "synced", objects: informer.keys().length, syncedMs, reconciledMs, rssAfterSync, heapUsedAfterSync }) + "\n",
);

const cpuBefore = process.cpuUsage();
await new Promise((r) => setTimeout(r, idleMs));
const cpu = process.cpuUsage(cpuBefore);
const idleCpuSeconds = (cpu.user + cpu.system) / 1e6;
process.stdout.write(
  JSON.stringify({ phase: "idle", idleSeconds: idleMs / 1000, idleCpuSeconds, rssAfterIdle: process.memoryUsage().rss }) + "\n",
);
await manager.stop();
