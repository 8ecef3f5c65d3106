import { GROUP, VERSION, VMIMAGE } from "../api/group.ts";
import type { VmImage } from "../api/types.ts";
import type { AzureClients } from "../azure/clients.ts";
import { Controller } from "../runtime/controller.ts";
import { EventRecorder } from "../runtime/events.ts";
import { Informer } from "../runtime/informer.ts";
import type { KubeClient, ResourceRef } from "../runtime/kube-client.ts";
import type { Logger } from "../runtime/logger.ts";
import type { Manager } from "../runtime/manager.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { specOrMetadataChanged } from "../runtime/predicates.ts";
import { VmImageReconciler } from "./vmimage/reconciler.ts";
import { UploadTasks } from "./vmimage/uploads.ts";

export interface ControllerSettings {
  namespace: string;
  workers: number;
  resyncPeriodMs: number;
  /** How soon to look again at a running Azure operation (default 5 s). */
  pollMs?: number;
}

/** Registers the operator's informers and controllers on `manager`. */
export function registerControllers(
  manager: Manager,
  deps: { kube: KubeClient; azure: AzureClients; log: Logger; metrics: Metrics },
  settings: ControllerSettings,
): void {
  const ref: ResourceRef = { group: GROUP, version: VERSION, plural: VMIMAGE.plural, ...(settings.namespace ? { namespace: settings.namespace } : {}) };
  const informer = new Informer<VmImage>(deps.kube, ref, deps.log, { resyncPeriodMs: settings.resyncPeriodMs });
  const uploads = new UploadTasks();
  manager.onStop(() => {
    uploads.abortAll();
  });
  const controller: Controller<VmImage> = new Controller<VmImage>({
    name: "vmimage",
    informer,
    log: deps.log,
    workers: settings.workers,
    updatePredicates: specOrMetadataChanged,
    metrics: deps.metrics.forController("vmimage"),
    reconcile: (req, ctx) => reconciler.reconcile(req, ctx),
  });
  const reconciler = new VmImageReconciler({
    kube: deps.kube,
    ref,
    informer,
    azure: deps.azure,
    events: new EventRecorder(deps.kube, "azure-image-operator", deps.log),
    driftCheckMs: settings.resyncPeriodMs,
    pollMs: settings.pollMs ?? 5_000,
    uploads,
    requeue: (key) => {
      controller.queue.add(key);
    },
  });
  manager.addInformer(informer);
  manager.addController(controller);
}
