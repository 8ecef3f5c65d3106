import { GROUP, IMAGECAPTURE, VERSION, VMIMAGE } from "../api/group.ts";
import type { ImageCapture, VmImage } from "../api/types.ts";
import type { AzureClients } from "../azure/clients.ts";
import type { AzureConfig } from "../config.ts";
import { Controller } from "../runtime/controller.ts";
import { EventRecorder } from "../runtime/events.ts";
import { Informer } from "../runtime/informer.ts";
import type { KubeClient, ResourceRef } from "../runtime/kube-client.ts";
import type { Logger } from "../runtime/logger.ts";
import type { Manager } from "../runtime/manager.ts";
import type { Metrics } from "../runtime/metrics.ts";
import { specOrMetadataChanged } from "../runtime/predicates.ts";
import { ImageCaptureReconciler } from "./imagecapture/reconciler.ts";
import { NamespaceCredentials } from "./shared/credentials.ts";
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
  deps: { kube: KubeClient; azure: AzureClients; log: Logger; metrics: Metrics; azureConfig?: AzureConfig },
  settings: ControllerSettings,
): void {
  const scope = settings.namespace ? { namespace: settings.namespace } : {};
  const events = new EventRecorder(deps.kube, "azure-image-operator", deps.log);
  const credentials = deps.azureConfig ? new NamespaceCredentials(deps.kube, deps.azureConfig, deps.azure) : undefined;
  const ref: ResourceRef = { group: GROUP, version: VERSION, plural: VMIMAGE.plural, ...scope };
  // No periodic resync: each reconciler schedules its object's next drift check itself (nextPass).
  const informer = new Informer<VmImage>(deps.kube, ref, deps.log, { resyncPeriodMs: 0 });
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
    ...(credentials ? { credentials } : {}),
    events,
    driftCheckMs: settings.resyncPeriodMs,
    pollMs: settings.pollMs ?? 5_000,
    uploads,
    requeue: (key) => {
      controller.queue.add(key);
    },
  });
  manager.addInformer(informer);
  manager.addController(controller);

  const captureRef: ResourceRef = { group: GROUP, version: VERSION, plural: IMAGECAPTURE.plural, ...scope };
  const captureInformer = new Informer<ImageCapture>(deps.kube, captureRef, deps.log, { resyncPeriodMs: 0 });
  const captures = new ImageCaptureReconciler({
    kube: deps.kube,
    ref: captureRef,
    informer: captureInformer,
    azure: deps.azure,
    ...(credentials ? { credentials } : {}),
    events,
    driftCheckMs: settings.resyncPeriodMs,
    pollMs: settings.pollMs ?? 5_000,
  });
  manager.addInformer(captureInformer);
  manager.addController(
    new Controller<ImageCapture>({
      name: "imagecapture",
      informer: captureInformer,
      log: deps.log,
      workers: settings.workers,
      updatePredicates: specOrMetadataChanged,
      metrics: deps.metrics.forController("imagecapture"),
      reconcile: (req, ctx) => captures.reconcile(req, ctx),
    }),
  );
}
