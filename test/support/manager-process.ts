// A manager process for leader-election tests: reconciles VmImages with a recording reconciler and
// prints one JSON line per reconcile and per leadership change on stdout.
import { hostname } from "node:os";
import type { VmImage } from "../../src/api/types.ts";
import { Controller } from "../../src/runtime/controller.ts";
import { Informer } from "../../src/runtime/informer.ts";
import { KubeClient } from "../../src/runtime/kube-client.ts";
import { runUntilStopped } from "../../src/runtime/lifecycle.ts";
import { createLogger } from "../../src/runtime/logger.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { KubeConfig } from "@kubernetes/client-node";
import { vmImages } from "./runtime-fixture.ts";

const [kubeconfigPath, identity = `${hostname()}-${process.pid}`] = process.argv.slice(2);
if (!kubeconfigPath) throw new Error("usage: manager-process.ts <kubeconfig> [identity]");
const kc = new KubeConfig();
kc.loadFromFile(kubeconfigPath);
const log = createLogger("info");
const client = new KubeClient(kc);
const informer = new Informer<VmImage>(client, vmImages, log);
const controller = new Controller<VmImage>({
  name: "vmimage",
  informer,
  log,
  reconcile: (req) => {
    process.stdout.write(JSON.stringify({ reconciled: req.key, identity }) + "\n");
    return Promise.resolve(undefined);
  },
});
const manager = new Manager({
  client,
  log,
  metrics: new Metrics(),
  leaderElection: {
    namespace: "default",
    name: "azure-image-operator-test",
    identity,
    // Tests of lease loss may shorten client-go's timings; the handover tests use the defaults.
    ...(process.env.TEST_LEASE_TIMINGS === "short"
      ? { leaseDurationMs: 4_000, renewDeadlineMs: 3_000, retryPeriodMs: 1_000 }
      : {}),
  },
});
manager.addInformer(informer);
manager.addController(controller);
await manager.start();
process.exitCode = await runUntilStopped(manager, log, { shutdownTimeoutMs: 10_000 });
