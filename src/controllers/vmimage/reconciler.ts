import type { Logger } from "pino";
import { FINALIZER, Reasons } from "../../api/group.ts";
import { vmImageChangeProblems, vmImageFingerprints, vmImageSpecProblems } from "../../api/validation.ts";
import type { TransferStatus, VmImage, VmImageStatus } from "../../api/types.ts";
import type { AzureClients } from "../../azure/clients.ts";
import { AzureError, classify, getOrUndefined } from "../../azure/errors.ts";
import { parseDuration } from "../../config.ts";
import { findCondition, READY, setHealth, timestamp, type Health } from "../../runtime/conditions.ts";
import { compareVersions } from "../shared/versions.ts";
import type { ReconcileContext, ReconcileRequest, ReconcileResult } from "../../runtime/controller.ts";
import type { EventRecorder } from "../../runtime/events.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { KubeClient, ResourceRef } from "../../runtime/kube-client.ts";
import { removeFinalizer, updateStatus } from "../../runtime/objects.ts";
import { acceptObject, nextPass, reportStalled } from "../shared/accept.ts";
import { currentAzure, withCredentials, type NamespaceCredentials } from "../shared/credentials.ts";
import { ensureGalleryVersion, ensureResourceGroup, forgetResourceGroups, submit, type GalleryDeps, type Outcome } from "../shared/gallery.ts";
import { ensureManagedImage } from "../shared/managed-image.ts";
import { azureName, OWNER_TAG } from "../shared/names.ts";
import { resolveGalleryImage, type ResolvedGalleryImage } from "./gallery-source.ts";
import { displayUrl, probeSource, SourceError, type ProbedSource } from "../../vhd/source.ts";
import { ensureTermsAccepted, resolveMarketplaceImage, SourceProblem, type ResolvedMarketplaceImage } from "./marketplace.ts";
import { BlobMeta, type UploadTask, type UploadTasks } from "./uploads.ts";
import { ContainerClient, PageBlobClient } from "@azure/storage-blob";

export interface VmImageReconcilerDeps {
  kube: KubeClient;
  ref: ResourceRef;
  informer: Informer<VmImage>;
  azure: AzureClients;
  /** Clients from an object's spec.credentialsRef; without it every object uses `azure`. */
  credentials?: NamespaceCredentials;
  events: EventRecorder;
  /** How often a Ready image is observed again for drift (jittered by the caller's resync as well). */
  driftCheckMs: number;
  /** How soon to look again at a running Azure operation. */
  pollMs: number;
  uploads: UploadTasks;
  /** Puts an object's key back on the work queue (a background upload finished). */
  requeue: (key: string) => void;
}

/** The managed image's name: the one the spec gives, or one derived from namespace, name and uid. */
export function managedImageName(obj: VmImage): string {
  return obj.spec.destination?.managedImage?.name || azureName(obj.metadata);
}

/**
 * Makes Azure hold what a VmImage declares. Each pass observes Azure with GETs, starts at most the next
 * operation without waiting for it (requeueing to look again), and writes status once. Names are
 * deterministic, so a crash between "create sent" and "status written" is healed by the next GET, not
 * by a second resource.
 */
export class VmImageReconciler {
  private readonly d: VmImageReconcilerDeps;
  private readonly probes = new Map<string, ProbedSource>();
  /** The last transfer progress of each disk being imported, by object uid and LUN. */
  private readonly transfers = new Map<string, TransferStatus>();

  /** The Azure clients of the object being reconciled (its credentialsRef, or the operator's). */
  private get azure(): AzureClients {
    return currentAzure(this.d.azure);
  }

  constructor(deps: VmImageReconcilerDeps) {
    this.d = deps;
  }

  readonly reconcile = async (req: ReconcileRequest, ctx: ReconcileContext): Promise<ReconcileResult | undefined> => {
    const obj = this.d.informer.get(req.key);
    if (!obj) return undefined;
    return withCredentials(
      this.d.credentials,
      obj,
      "Delete",
      async (problem) => {
        await this.recordTransition(obj, { state: "stalled", reason: problem.reason, message: problem.message }, true);
        return reportStalled(this.d.kube, this.d.ref, obj, problem.reason, problem.message, Math.min(this.d.driftCheckMs, 60_000));
      },
      () => this.reconcileObject(obj, ctx),
    );
  };

  private readonly reconcileObject = async (obj: VmImage, ctx: ReconcileContext): Promise<ReconcileResult | undefined> => {
    if (obj.metadata?.deletionTimestamp) return this.finalize(obj, ctx.log);
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) {
      await acceptObject(this.d.kube, this.d.ref, obj, "VmImage");
      return undefined;
    }

    const status: VmImageStatus = structuredClone(obj.status ?? {});
    let outcome: Outcome;
    const invalid = vmImageSpecProblems(obj.spec);
    const changed = vmImageChangeProblems(status.specFingerprints, obj.spec);
    try {
      if (invalid.length > 0 || changed.length > 0) {
        // What CEL refuses on newer clusters, refused here for the others.
        const reason = invalid.length > 0 ? Reasons.InvalidSpec : "SpecImmutable";
        throw new SourceProblem(reason, [...invalid, ...changed].join("; "));
      }
      status.specFingerprints ??= vmImageFingerprints(obj.spec);
      status.source = describeSource(obj.spec);
      status.destination = describeDestination(obj.spec);
      outcome = await this.apply(obj, status, ctx.log);
      if (outcome.lastError) status.lastError = outcome.lastError;
      else delete status.lastError;
    } catch (err) {
      if (err instanceof SourceProblem) {
        outcome = { health: { state: "stalled", reason: err.reason, message: err.message } };
      } else {
        const azureErr = classify(err);
        forgetResourceGroups({ azure: this.azure }, azureErr);
        status.lastError = { code: azureErr.code, message: azureErr.message };
        outcome = azureErr.kind === "Terminal"
          ? { health: { state: "stalled", reason: azureErr.code, message: azureErr.message } }
          : { health: { state: "reconciling", reason: azureErr.code, message: azureErr.message }, requeueAfterMs: this.retryDelay(azureErr) };
      }
    }
    const generation = obj.metadata.generation;
    status.observedGeneration = generation;
    status.conditions = setHealth(status.conditions, outcome.health, generation);
    await this.recordTransition(obj, outcome.health, status.lastError !== undefined);
    await updateStatus(this.d.kube, this.d.ref, obj, status);
    let requeueAfterMs = outcome.requeueAfterMs;
    if (requeueAfterMs !== undefined && obj.spec.latestCheckInterval && outcome.health.state === "ready") {
      requeueAfterMs = Math.min(requeueAfterMs, parseDuration(obj.spec.latestCheckInterval));
    }
    return nextPass(outcome.health, requeueAfterMs, this.d.driftCheckMs);
  };

  private retryDelay(err: AzureError): number {
    return Math.max(err.retryAfterMs ?? 0, 10_000);
  }

  /** One pass towards the declared state; returns the verdict and fills `status`. */
  private async apply(obj: VmImage, status: VmImageStatus, log: Logger): Promise<Outcome> {
    const spec = obj.spec;
    const market = spec.source.marketplace;
    const vhd = spec.source.vhd;
    if (vhd) return this.ensureDestinations(obj, status, () => this.prepareVhdDisks(obj, status));
    const gallerySource = spec.source.gallery;
    if (gallerySource) {
      // The source cannot change (specFingerprints), so a version resolved once stays pinned across generations.
      const pinnedVersion = status.resolvedVersion;
      const resolved = await resolveGalleryImage(this.azure, spec.location, gallerySource, pinnedVersion);
      status.resolvedVersion = resolved.version;
      const galleryId = gallerySource.sharedGalleryImageId ?? gallerySource.communityGalleryImageId;
      const galleryLatest = galleryId !== undefined && !/\/Versions\/(?!latest$)[^/]+$/i.test(galleryId);
      await this.checkLatest(obj, status, galleryLatest, async () => (await resolveGalleryImage(this.azure, spec.location, gallerySource, undefined)).version);
      return this.ensureDestinations(
        obj,
        status,
        () => this.prepareImageDisk(obj, { galleryImageReference: resolved.reference }, resolved.version, spec.hyperVGeneration),
        spec.hyperVGeneration,
        resolved.ownVersionId,
      );
    }
    if (!market) {
      // Refused earlier (vmImageSpecProblems); here for the type checker.
      throw new SourceProblem(Reasons.InvalidSpec, "spec.source must name exactly one of marketplace, gallery or vhd");
    }

    // Resolve the source; a resolved `latest` stays pinned until the spec changes.
    const hasDestination = Boolean(spec.destination?.managedImage ?? spec.destination?.gallery);
    const wantsLatest = (market.version ?? "latest").toLowerCase() === "latest";
    if (hasDestination && isSteady(obj) && status.resolvedVersion) {
      // Ready and pinned: the Marketplace is consulted again only if the outputs must be remade, or to
      // look for a newer version when the user asked for that.
      await this.checkLatest(obj, status, wantsLatest, async () => (await resolveMarketplaceImage(this.azure, spec.location, { ...market, version: "latest" })).version);
      const pinnedVersion = status.resolvedVersion;
      return this.ensureDestinations(obj, status, async () =>
        this.prepareMarketplaceDisk(obj, await resolveMarketplaceImage(this.azure, spec.location, { ...market, version: pinnedVersion })),
      );
    }
    const pinned = status.resolvedVersion;
    const resolved = await resolveMarketplaceImage(this.azure, spec.location, { ...market, version: pinned ?? market.version ?? "latest" });
    if (resolved.version !== status.resolvedVersion) {
      log.info({ version: resolved.version }, "resolved Marketplace image");
      if (status.resolvedVersion) await this.event(obj, "Normal", "VersionResolved", `Source version changed from ${status.resolvedVersion} to ${resolved.version}.`);
    }
    status.resolvedVersion = resolved.version;
    await this.checkLatest(obj, status, wantsLatest, () => Promise.resolve(resolved.version));
    if (resolved.plan) {
      status.plan = resolved.plan;
      if (await ensureTermsAccepted(this.azure, resolved.plan, market.acceptTerms === true)) {
        await this.event(obj, "Normal", "TermsAccepted", `Accepted the terms of plan ${resolved.plan.publisher}/${resolved.plan.product}/${resolved.plan.name}.`);
      }
    } else {
      delete status.plan;
    }
    if (!hasDestination) {
      status.imageReference = { publisher: market.publisher, offer: market.offer, sku: market.sku, version: resolved.version };
      return { health: { state: "ready", reason: Reasons.Available, message: `Marketplace image ${resolved.version} is available.` }, requeueAfterMs: this.d.driftCheckMs };
    }
    return this.ensureDestinations(obj, status, () => this.prepareMarketplaceDisk(obj, resolved), resolved.hyperVGeneration);
  }

  /**
   * The managed image and/or gallery image version, from the managed disk `prepareDisk` brings into
   * being. With both, the version is made from the image; with a gallery only, from the disk. The disk
   * is removed once what was made from it exists.
   */
  private async ensureDestinations(
    obj: VmImage,
    status: VmImageStatus,
    prepareDisk: () => Promise<Outcome | PreparedSource>,
    sourceHyperVGeneration?: string,
    /** A gallery version the destination version can be made from directly, without a disk. */
    sourceVersionId?: string,
  ): Promise<Outcome> {
    const dest = obj.spec.destination ?? {};
    const vhdSource = obj.spec.source.vhd;
    // A Ready object is observed with reads of its outputs only; the rest is checked when something is missing.
    const steady = isSteady(obj);
    const gallery = this.destinationDeps(obj);
    if (!steady) await ensureResourceGroup(gallery, obj.spec.resourceGroup, obj.spec.location, obj.metadata?.uid ?? "");
    const target = { kind: "VmImage", ...obj };
    if (dest.managedImage) {
      const image = await this.ensureManagedImage(obj, status, prepareDisk, sourceHyperVGeneration);
      if (image.health.state !== "ready" || !dest.gallery) return image;
      const imageId = status.imageId ?? "";
      return ensureGalleryVersion(gallery, target, status, () => Promise.resolve({ imageId }));
    }
    const version = await ensureGalleryVersion(gallery, target, status, async () => {
      if (sourceVersionId) return { imageId: sourceVersionId };
      const disk = await prepareDisk();
      if ("health" in disk) return disk;
      const blobs = [disk, ...(disk.dataDisks ?? [])].some((d) => "blobUri" in d);
      if (blobs && !vhdSource?.storageAccountId) {
        throw new SourceProblem(Reasons.InvalidSpec, "a gallery version made straight from a blob needs spec.source.vhd.storageAccountId (or add a managedImage destination)");
      }
      const storageAccountId = vhdSource?.storageAccountId ?? "";
      const ref = (d: { diskId: string } | { blobUri: string }) => ("diskId" in d ? { id: d.diskId } : { uri: d.blobUri, storageAccountId });
      return { disks: { os: ref(disk), data: (disk.dataDisks ?? []).map((d) => ({ lun: d.lun, ...ref(d) })) } };
    });
    if (version.health.state === "ready" && !steady) await this.removeSourceDisk(obj);
    return version;
  }

  /** Deletes the temporary source disks (OS and data), if this object made them and they are still there. */
  private async removeSourceDisk(obj: VmImage): Promise<void> {
    const { compute } = this.azure;
    const rg = obj.spec.resourceGroup;
    for (const lun of [undefined, ...this.dataLuns(obj)]) {
      const diskName = this.sourceDiskName(obj, lun);
      const leftover = await getOrUndefined(compute.disks.get(rg, diskName));
      if (leftover && leftover.tags?.[OWNER_TAG] === obj.metadata?.uid && leftover.provisioningState?.toLowerCase() !== "deleting") {
        await submit(compute.disks.delete(rg, diskName));
      }
    }
  }

  /** Deterministic name of the temporary managed disk an image is made from (OS disk, or the data disk at `lun`). */
  private sourceDiskName(obj: VmImage, lun?: number): string {
    return `${managedImageName(obj)}${lun === undefined ? "" : `-lun${lun}`}-source`.slice(0, 80);
  }

  /** The LUNs of the image's data disks (a VHD source's dataDisks). */
  private dataLuns(obj: VmImage): number[] {
    return (obj.spec.source.vhd?.dataDisks ?? []).map((d) => d.lun);
  }

  private tags(obj: VmImage): Record<string, string> {
    return { ...obj.spec.tags, [OWNER_TAG]: obj.metadata?.uid ?? "" };
  }

  /**
   * A managed image made from a managed disk that `prepareDisk` brings into being: once the image
   * exists, the disk has served its purpose and is removed.
   */
  private async ensureManagedImage(
    obj: VmImage,
    status: VmImageStatus,
    prepareDisk: () => Promise<Outcome | PreparedSource>,
    sourceHyperVGeneration?: string,
  ): Promise<Outcome> {
    const spec = obj.spec;
    const outcome = await ensureManagedImage(this.destinationDeps(obj), { kind: "VmImage", ...obj }, status, managedImageName(obj), async () => {
      const disk = await prepareDisk();
      if ("health" in disk) return disk;
      return {
        hyperVGeneration: spec.hyperVGeneration ?? sourceHyperVGeneration ?? "V2",
        storageProfile: {
          osDisk: {
            osType: spec.osType,
            osState: spec.osState ?? "Generalized",
            ...("diskId" in disk ? { managedDisk: { id: disk.diskId } } : { blobUri: disk.blobUri }),
          },
          dataDisks: (disk.dataDisks ?? []).map((d) => ({ lun: d.lun, ...("diskId" in d ? { managedDisk: { id: d.diskId } } : { blobUri: d.blobUri }) })),
        },
      };
    });
    if (outcome.health.state === "ready" && !isSteady(obj)) await this.removeSourceDisk(obj);
    return outcome;
  }

  private destinationDeps(obj: VmImage): GalleryDeps {
    return {
      azure: this.azure,
      ownerTag: OWNER_TAG,
      pollMs: this.d.pollMs,
      driftCheckMs: this.d.driftCheckMs,
      event: (type: "Normal" | "Warning", reason: string, message: string) => this.event(obj, type, reason, message),
    };
  }

  /** The Marketplace image's OS disk, materialized as a managed disk (createOption FromImage). */
  private prepareMarketplaceDisk(obj: VmImage, resolved: ResolvedMarketplaceImage): Promise<Outcome | { diskId: string }> {
    return this.prepareImageDisk(
      obj,
      { imageReference: { id: resolved.id } },
      resolved.version,
      resolved.hyperVGeneration,
    );
  }

  /** An OS disk made from a platform or gallery image (createOption FromImage), or imported from a blob (Import). */
  private async prepareImageDisk(
    obj: VmImage,
    reference:
      | { imageReference: { id: string } }
      | { galleryImageReference: ResolvedGalleryImage["reference"] }
      | { createOption: "Import"; sourceUri: string; storageAccountId: string },
    label: string,
    hyperVGeneration?: string,
    osType?: "Linux" | "Windows",
    lun?: number,
  ): Promise<Outcome | { diskId: string }> {
    const { compute } = this.azure;
    const rg = obj.spec.resourceGroup;
    const diskName = this.sourceDiskName(obj, lun);
    const what = lun === undefined ? "OS disk" : `Data disk (LUN ${lun})`;
    const disk = await getOrUndefined(compute.disks.get(rg, diskName));
    if (!disk) {
      await submit(
        compute.disks.createOrUpdate(rg, diskName, {
          location: obj.spec.location,
          tags: this.tags(obj),
          creationData: { createOption: "FromImage", ...reference },
          ...(hyperVGeneration ? { hyperVGeneration } : {}),
          ...(osType ? { osType } : {}),
        }),
      );
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `Creating ${what} '${diskName}' from ${label}.` }, requeueAfterMs: this.d.pollMs };
    }
    const state = (disk.provisioningState ?? "").toLowerCase();
    if (state === "failed") throw new AzureError("Retryable", "DiskCreationFailed", `Azure reports disk '${diskName}' as Failed.`);
    if (state !== "succeeded") {
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `${what} '${diskName}' is ${disk.provisioningState ?? ""}.` }, requeueAfterMs: this.d.pollMs };
    }
    return { diskId: disk.id ?? "" };
  }

  /**
   * The disks of a VHD source: the OS disk and each data disk, prepared side by side (uploads run in
   * parallel). `status.transfer` adds up the uploads.
   */
  private async prepareVhdDisks(obj: VmImage, status: VmImageStatus): Promise<Outcome | PreparedSource> {
    const vhd = obj.spec.source.vhd ?? {};
    const slots: VhdSlot[] = [
      { url: vhd.url, blobUri: vhd.blobUri, format: vhd.format, checksum: vhd.checksum },
      ...(vhd.dataDisks ?? []).map((d) => ({ lun: d.lun, url: d.url, blobUri: d.blobUri, format: d.format, checksum: d.checksum })),
    ];
    // The last progress of each disk is kept, so the sum stays whole while some disks are done.
    const key = (slot: VhdSlot) => `${obj.metadata?.uid ?? ""}/${slot.lun ?? "os"}`;
    const results = await Promise.all(slots.map((slot) => this.prepareVhdDisk(obj, slot, (t) => this.transfers.set(key(slot), t))));
    const transfers = slots.map((slot) => this.transfers.get(key(slot))).filter((t): t is TransferStatus => t !== undefined);
    if (transfers.length > 0) status.transfer = addTransfers(transfers);
    const pending = results.find((r): r is Outcome => "health" in r);
    if (pending) return pending;
    const [os, ...data] = results as PreparedDisk[];
    if (!os) throw new Error("no OS disk");
    return { ...os, dataDisks: data.map((d, i) => ({ lun: slots[i + 1]?.lun ?? 0, ...d })) };
  }

  private prepareVhdDisk(obj: VmImage, slot: VhdSlot, report: (t: TransferStatus) => void): Promise<Outcome | PreparedDisk> {
    const vhd = obj.spec.source.vhd ?? {};
    const container = vhd.uploadContainerUrl;
    if (slot.url) return container ? this.prepareUploadedBlob(obj, slot, slot.url, container, report) : this.prepareUploadedDisk(obj, slot, slot.url, report);
    const blobUri = slot.blobUri ?? "";
    if (vhd.copy && vhd.storageAccountId) {
      // Copied into a managed disk first (Azure's Import), so the outputs do not depend on the blob.
      const reference = { createOption: "Import" as const, sourceUri: blobUri, storageAccountId: vhd.storageAccountId };
      return this.prepareImageDisk(obj, reference, displayUrl(blobUri), obj.spec.hyperVGeneration ?? "V2", slot.lun === undefined ? obj.spec.osType : undefined, slot.lun);
    }
    // An existing page blob is registered in place; Azure checks it is a fixed VHD of whole MiB.
    return Promise.resolve({ blobUri });
  }

  /**
   * A VHD streamed from a URL into an upload disk: the source is probed (size, format), a disk of the
   * exact size is created, a background task writes the converted fixed VHD into it, and once access is
   * revoked the disk is complete. An upload interrupted by a restart is started over on a fresh disk.
   */
  private async prepareUploadedDisk(obj: VmImage, slot: VhdSlot, url: string, report: (t: TransferStatus) => void): Promise<Outcome | { diskId: string }> {
    const { compute } = this.azure;
    const rg = obj.spec.resourceGroup;
    const diskName = this.sourceDiskName(obj, slot.lun);
    const uid = this.uploadKey(obj, slot.lun);
    const poll = { requeueAfterMs: this.d.pollMs };
    let task = this.currentUpload(obj, uid);
    if (task?.state === "failed" && task.failure) {
      const failure = task.failure;
      const disk = await getOrUndefined(compute.disks.get(rg, diskName));
      if (disk) {
        // Nothing half-imported stays behind.
        if (disk.diskState === "ActiveUpload") await submit(compute.disks.revokeAccess(rg, diskName));
        else if (disk.provisioningState?.toLowerCase() !== "deleting") await submit(compute.disks.delete(rg, diskName));
        return {
          health: { state: "reconciling", reason: failure.reason, message: `Removing the partial upload: ${failure.message}` },
          lastError: { code: failure.reason, message: failure.message },
          ...poll,
        };
      }
      if (!failure.retryable) throw new SourceProblem(failure.reason, failure.message);
      this.d.uploads.forget(uid);
      throw new AzureError("Retryable", failure.reason, failure.message);
    }

    const disk = await getOrUndefined(compute.disks.get(rg, diskName));
    if (!disk) {
      const probed = await this.probe(url, slot.format);
      await submit(
        compute.disks.createOrUpdate(rg, diskName, {
          location: obj.spec.location,
          tags: this.tags(obj),
          ...(slot.lun === undefined ? { osType: obj.spec.osType, hyperVGeneration: obj.spec.hyperVGeneration ?? "V2" } : {}),
          creationData: { createOption: "Upload", uploadSizeBytes: probed.layout.vhdSize },
        }),
      );
      report({ bytesTotal: probed.layout.vhdSize, bytesDone: 0, bytesSkippedZero: 0, percent: 0 });
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `Creating upload disk '${diskName}' for ${displayUrl(url)}.` }, ...poll };
    }
    const provisioning = (disk.provisioningState ?? "").toLowerCase();
    if (provisioning !== "succeeded") {
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `Upload disk '${diskName}' is ${disk.provisioningState ?? ""}.` }, ...poll };
    }
    if (disk.diskState === "ReadyToUpload" && !task) {
      const probed = await this.probe(url, slot.format);
      task = this.d.uploads.start(
        uid,
        { azure: this.azure, destination: { kind: "disk", resourceGroup: rg, diskName }, url, layout: probed.layout, checksum: slot.checksum, concurrency: 8, compression: probed.compression, rangeSupported: probed.rangeSupported },
        obj.metadata?.generation,
        () => {
          this.d.requeue(objectKeyOf(obj));
        },
      );
      const compressed = probed.compression === "none" ? "" : `${probed.compression}-compressed `;
      await this.event(obj, "Normal", "Uploading", `Streaming ${displayUrl(url)} (${compressed}${probed.layout.format}, ${probed.layout.vhdSize} bytes) into disk '${diskName}'.`);
    }
    if (task) {
      await this.reportResumes(obj, task);
      const t = transferStatus(task);
      report(t);
      if (task.state === "running" || disk.diskState === "ActiveUpload" || disk.diskState === "ReadyToUpload") {
        return { health: { state: "reconciling", reason: Reasons.Uploading, message: `Uploaded ${t.percent ?? 0}% of ${t.bytesTotal ?? 0} bytes.` }, ...poll };
      }
    } else if (disk.diskState === "ActiveUpload") {
      // The operator restarted mid-upload: the write access is gone with the old process, so start over.
      await submit(compute.disks.revokeAccess(rg, diskName));
      await submit(compute.disks.delete(rg, diskName));
      await this.event(obj, "Warning", "UploadRestarted", "The upload was interrupted (operator restart); it starts over.");
      return { health: { state: "reconciling", reason: Reasons.Uploading, message: "Restarting the interrupted upload." }, ...poll };
    }
    if (task) report(transferStatus(task));
    this.d.uploads.forget(uid);
    return { diskId: disk.id ?? "" };
  }

  /** An Event for each time the task's transfer was interrupted (the download broke off, a write stalled) and continued with a Range request. */
  private async reportResumes(obj: VmImage, task: UploadTask): Promise<void> {
    while (task.resumesReported < task.resumes.length) {
      const r = task.resumes[task.resumesReported++];
      if (r) await this.event(obj, "Warning", "DownloadResumed", `The transfer was interrupted (${r.message}); it continues at byte ${r.offset} with a Range request.`);
    }
  }

  /** The background upload of a disk (the OS disk, or the data disk at `lun`) is kept under this key. */
  private uploadKey(obj: VmImage, lun: number | undefined): string {
    return `${obj.metadata?.uid ?? ""}${lun === undefined ? "" : `/lun${lun}`}`;
  }

  /** The background upload of a disk, if one runs or ended for the object's current generation. */
  private currentUpload(obj: VmImage, key: string): UploadTask | undefined {
    const task = this.d.uploads.get(key);
    if (task && task.generation !== obj.metadata?.generation) {
      this.d.uploads.forget(key);
      return undefined;
    }
    return task;
  }

  /** The page blob a VHD (the OS disk's, or the data disk's at `lun`) is uploaded into when the user names a container. */
  private uploadBlobUrl(obj: VmImage, lun?: number): string | undefined {
    const container = obj.spec.source.vhd?.uploadContainerUrl;
    return container ? `${container.replace(/\/+$/, "")}/${azureName(obj.metadata, lun === undefined ? ".vhd" : `-lun${lun}.vhd`)}` : undefined;
  }

  /**
   * A VHD streamed from a URL into a page blob in the user's container, with the operator's identity.
   * The blob records in its metadata who owns it, how far the upload is confirmed and when it is
   * complete, so after an operator restart the upload resumes from the confirmed offset with a Range
   * request (a fixed or raw source on a server with Range support, no checksum to compute); otherwise
   * it starts over, said in an Event. The complete blob is kept for the object's lifetime: outputs
   * deleted out of band are remade from it without downloading again.
   */
  private async prepareUploadedBlob(obj: VmImage, slot: VhdSlot, url: string, containerUrl: string, report: (t: TransferStatus) => void): Promise<Outcome | { blobUri: string }> {
    const owner = obj.metadata?.uid ?? "";
    const uid = this.uploadKey(obj, slot.lun);
    const blobUrl = this.uploadBlobUrl(obj, slot.lun) ?? "";
    const poll = { requeueAfterMs: this.d.pollMs };
    const blob = new PageBlobClient(blobUrl, this.azure.credential);
    let task = this.currentUpload(obj, uid);
    if (task?.state === "failed" && task.failure) {
      const failure = task.failure;
      this.d.uploads.forget(uid);
      if (!failure.retryable) {
        // Nothing half-imported stays behind.
        await blob.deleteIfExists().catch((err: unknown) => {
          throw classify(err);
        });
        throw new SourceProblem(failure.reason, failure.message);
      }
      throw new AzureError("Retryable", failure.reason, failure.message);
    }
    if (task) await this.reportResumes(obj, task);
    if (task?.state === "running") {
      const t = transferStatus(task);
      report(t);
      return { health: { state: "reconciling", reason: Reasons.Uploading, message: `Uploaded ${t.percent ?? 0}% of ${t.bytesTotal ?? 0} bytes.` }, ...poll };
    }
    if (task?.state === "succeeded") {
      report(transferStatus(task));
      this.d.uploads.forget(uid);
      return { blobUri: blobUrl };
    }

    const props = await blob.getProperties().catch((err: unknown) => {
      const c = classify(err);
      if (c.kind === "NotFound") return undefined;
      throw c;
    });
    let startOffset = 0;
    const probed = props?.metadata?.[BlobMeta.complete] === "true" ? undefined : await this.probe(url, slot.format);
    if (props) {
      if (props.metadata?.[BlobMeta.owner] !== owner) {
        throw new AzureError("Terminal", "ResourceNotOwned", `Blob ${displayUrl(blobUrl)} exists and was not uploaded for this VmImage.`);
      }
      if (!probed) return { blobUri: blobUrl };
      const confirmed = Number(props.metadata[BlobMeta.confirmed] ?? 0);
      const resumable = probed.rangeSupported && probed.compression === "none" && probed.layout.format !== "dynamic" && !slot.checksum && props.contentLength === probed.layout.vhdSize;
      if (resumable && confirmed > 0 && confirmed < probed.layout.vhdSize) {
        startOffset = confirmed;
        await this.event(obj, "Normal", "UploadResumed", `Resuming the interrupted upload at byte ${confirmed} of ${probed.layout.vhdSize}.`);
      } else {
        const why = !probed.rangeSupported ? "the source does not support Range requests" : slot.checksum ? "the checksum covers the whole source" : "this source cannot be read from the middle";
        await this.event(obj, "Warning", "UploadRestarted", `The interrupted upload starts over: ${why}.`);
      }
    } else {
      await new ContainerClient(containerUrl, this.azure.credential).createIfNotExists().catch((err: unknown) => {
        throw classify(err);
      });
    }
    if (!probed) throw new Error("unreachable: an incomplete upload has been probed");
    task = this.d.uploads.start(
      uid,
      {
        azure: this.azure,
        destination: { kind: "blob", blobUrl, ownerUid: owner, startOffset },
        url,
        layout: probed.layout,
        checksum: slot.checksum,
        concurrency: 8,
        compression: probed.compression,
        rangeSupported: probed.rangeSupported,
      },
      obj.metadata?.generation,
      () => {
        this.d.requeue(objectKeyOf(obj));
      },
    );
    if (startOffset === 0) await this.event(obj, "Normal", "Uploading", `Streaming ${displayUrl(url)} (${probed.layout.format}, ${probed.layout.vhdSize} bytes) into ${displayUrl(blobUrl)}.`);
    report(transferStatus(task));
    return { health: { state: "reconciling", reason: Reasons.Uploading, message: `Uploading into ${displayUrl(blobUrl)}.` }, ...poll };
  }

  /**
   * With spec.latestCheckInterval, a source given as `latest` is resolved again once per interval; a
   * version newer than the one the image was built from is reported once (an Event, status.latestCheck)
   * and not used: rebuilding is the user's decision.
   */
  private async checkLatest(obj: VmImage, status: VmImageStatus, wantsLatest: boolean, resolveLatest: () => Promise<string>): Promise<void> {
    const interval = obj.spec.latestCheckInterval;
    const pinned = status.resolvedVersion;
    if (!wantsLatest || !interval || !pinned) return;
    const last = Date.parse(status.latestCheck?.time ?? "");
    if (Number.isFinite(last) && Date.now() - last < parseDuration(interval)) return;
    const previous = status.latestCheck?.version;
    const newest = await resolveLatest();
    status.latestCheck = { time: timestamp(Date.now()), version: newest };
    if (compareVersions(newest, pinned) > 0 && newest !== previous) {
      await this.event(obj, "Normal", "NewerVersionAvailable", `Source version ${newest} is available; this image is built from ${pinned}. Create a new VmImage (or recreate this one) to build from it.`);
    }
  }

  private async probe(url: string, format: "auto" | "vhd" | "raw" | undefined): Promise<ProbedSource> {
    // A compressed source is read whole to be probed; the result is kept for the upload that follows.
    const key = `${format ?? "auto"} ${url}`;
    const known = this.probes.get(key);
    if (known) return known;
    try {
      const probed = await probeSource(url, format ?? "auto");
      if (probed.compression !== "none") {
        if (this.probes.size > 100) this.probes.clear();
        this.probes.set(key, probed);
      }
      return probed;
    } catch (err) {
      if (err instanceof SourceError) {
        if (err.retryable) throw new AzureError("Retryable", err.reason, err.message);
        throw new SourceProblem(err.reason, err.message);
      }
      throw err;
    }
  }

  /** Deletion: remove what we created if the policy says so, then let the object go. */
  private async finalize(obj: VmImage, log: Logger): Promise<ReconcileResult | undefined> {
    for (const k of this.transfers.keys()) if (k.startsWith(`${obj.metadata?.uid ?? ""}/`)) this.transfers.delete(k);
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) return undefined;
    if ((obj.spec.deletionPolicy ?? "Delete") === "Delete") {
      const { compute } = this.azure;
      const rg = obj.spec.resourceGroup;
      const name = managedImageName(obj);
      const g = obj.spec.destination?.gallery;
      const version = obj.status?.galleryImageVersion;
      try {
        for (const [kind, getIt, del] of [
          ...(g && version
            ? [["gallery image version", () => compute.galleryImageVersions.get(rg, g.galleryName, g.imageDefinition, version), () => compute.galleryImageVersions.delete(rg, g.galleryName, g.imageDefinition, version)] as const]
            : []),
          ["image", () => compute.images.get(rg, name), () => compute.images.delete(rg, name)],
          ...[undefined, ...this.dataLuns(obj)].map(
            (lun) => ["disk", () => compute.disks.get(rg, this.sourceDiskName(obj, lun)), () => compute.disks.delete(rg, this.sourceDiskName(obj, lun))] as const,
          ),
        ] as const) {
          const found = await getOrUndefined<{ tags?: Record<string, string>; provisioningState?: string }>(getIt());
          if (!found || found.tags?.[OWNER_TAG] !== obj.metadata.uid) continue;
          if (found.provisioningState?.toLowerCase() !== "deleting") {
            await del().submitted();
            log.info({ kind }, "deleting Azure resource");
          }
          return { requeueAfterMs: this.d.pollMs };
        }
      } catch (err) {
        const c = classify(err);
        if (c.kind !== "NotFound") throw c;
      }
      for (const lun of [undefined, ...this.dataLuns(obj)]) {
        const blobUrl = this.uploadBlobUrl(obj, lun);
        if (!blobUrl) break;
        const blob = new PageBlobClient(blobUrl, this.azure.credential);
        const props = await blob.getProperties().catch(() => undefined);
        if (props?.metadata?.[BlobMeta.owner] === obj.metadata.uid) {
          this.d.uploads.forget(this.uploadKey(obj, lun));
          await blob.deleteIfExists().catch((err: unknown) => {
            throw classify(err);
          });
        }
      }
      await this.event(obj, "Normal", "Deleted", "Deleted the Azure resources this VmImage created.");
    }
    await removeFinalizer(this.d.kube, this.d.ref, obj, FINALIZER);
    return undefined;
  }

  /** An Event when Ready or its reason changes: a Warning when stalled or when the pass met a failure. */
  private async recordTransition(obj: VmImage, health: Health, failing: boolean): Promise<void> {
    const before = findCondition(obj.status?.conditions, READY);
    const ready = health.state === "ready" ? "True" : "False";
    if (before?.status === ready && before.reason === health.reason) return;
    const type = health.state === "stalled" || failing ? "Warning" : "Normal";
    await this.event(obj, type, health.reason, health.message);
  }

  private event(obj: VmImage, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    return this.d.events.record(obj, type, reason, message);
  }
}

function objectKeyOf(obj: VmImage): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

function transferStatus(task: UploadTask): NonNullable<VmImageStatus["transfer"]> {
  const p = task.progress;
  const seconds = (Date.now() - task.startedAt.getTime()) / 1000;
  return {
    bytesTotal: p.bytesTotal,
    bytesDone: p.bytesDone,
    bytesSkippedZero: p.bytesSkippedZero,
    percent: p.bytesTotal > 0 ? Math.floor((p.bytesDone / p.bytesTotal) * 100) : 0,
    startedAt: timestamp(task.startedAt.getTime()),
    ...(seconds > 0 ? { bytesPerSecond: Math.round(p.bytesDone / seconds) } : {}),
  };
}

/** Ready for the current generation: the last pass found everything in place. */
function isSteady(obj: VmImage): boolean {
  const ready = findCondition(obj.status?.conditions, READY);
  return ready?.status === "True" && ready.observedGeneration === obj.metadata?.generation;
}

/** One disk of an image: a managed disk, or a page blob registered in place. */
type PreparedDisk = { diskId: string } | { blobUri: string };

/** What an image or version is made from: its OS disk, and the data disks of a VM image. */
type PreparedSource = PreparedDisk & { dataDisks?: Array<{ lun: number } & PreparedDisk> };

/** One VHD of a VHD source: the OS disk (no lun) or a data disk. */
interface VhdSlot {
  lun?: number;
  url?: string;
  blobUri?: string;
  format?: "auto" | "vhd" | "raw";
  checksum?: string;
}

/** The transfers of several disks as one. */
function addTransfers(ts: TransferStatus[]): TransferStatus {
  const sum = (k: "bytesTotal" | "bytesDone" | "bytesSkippedZero" | "bytesPerSecond") => ts.reduce((n, t) => n + (t[k] ?? 0), 0);
  const bytesTotal = sum("bytesTotal");
  const bytesDone = sum("bytesDone");
  const startedAt = ts.map((t) => t.startedAt).filter((x): x is string => x !== undefined).sort()[0];
  return {
    bytesTotal,
    bytesDone,
    bytesSkippedZero: sum("bytesSkippedZero"),
    percent: bytesTotal > 0 ? Math.floor((bytesDone / bytesTotal) * 100) : 0,
    ...(startedAt ? { startedAt } : {}),
    ...(ts.some((t) => t.bytesPerSecond !== undefined) ? { bytesPerSecond: sum("bytesPerSecond") } : {}),
  };
}

/** The source in one line, for a printer column. */
export function describeSource(spec: VmImage["spec"]): string {
  const { marketplace, gallery, vhd } = spec.source;
  if (marketplace) return `marketplace ${marketplace.publisher}:${marketplace.offer}:${marketplace.sku}`;
  if (gallery) return `gallery ${(gallery.id ?? gallery.sharedGalleryImageId ?? gallery.communityGalleryImageId ?? "").split("/").slice(-3).join("/")}`;
  const disks = (vhd?.dataDisks?.length ?? 0) > 0 ? ` +${vhd?.dataDisks?.length ?? 0} data` : "";
  return `vhd ${displayUrl(vhd?.url ?? vhd?.blobUri ?? "").split("/").pop() ?? ""}${disks}`;
}

/** The destinations in one line, for a printer column. */
export function describeDestination(spec: VmImage["spec"]): string {
  const g = spec.destination?.gallery;
  return [spec.destination?.managedImage ? "image" : "", g ? `gallery ${g.galleryName}/${g.imageDefinition}` : "", spec.destination ? "" : "reference"].filter(Boolean).join("+");
}
