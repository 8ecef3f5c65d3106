import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { FINALIZER, Reasons } from "../../api/group.ts";
import type { VmImage, VmImageStatus } from "../../api/types.ts";
import type { AzureClients } from "../../azure/clients.ts";
import { AzureError, classify, getOrUndefined } from "../../azure/errors.ts";
import { findCondition, READY, setHealth, type Health } from "../../runtime/conditions.ts";
import type { ReconcileContext, ReconcileRequest, ReconcileResult } from "../../runtime/controller.ts";
import type { EventRecorder } from "../../runtime/events.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { KubeClient, ResourceRef } from "../../runtime/kube-client.ts";
import { addFinalizer, removeFinalizer, updateStatus } from "../../runtime/objects.ts";
import { ensureTermsAccepted, resolveMarketplaceImage, SourceProblem, type ResolvedMarketplaceImage } from "./marketplace.ts";

export interface VmImageReconcilerDeps {
  kube: KubeClient;
  ref: ResourceRef;
  informer: Informer<VmImage>;
  azure: AzureClients;
  events: EventRecorder;
  /** How often a Ready image is observed again for drift (jittered by the caller's resync as well). */
  driftCheckMs: number;
  /** How soon to look again at a running Azure operation. */
  pollMs: number;
}

/** Tag set on every Azure resource the operator creates: the uid of the owning object. */
export const OWNER_TAG = "azureimages.dev-owner";

/** A verdict of one reconcile pass. */
interface Outcome {
  health: Health;
  requeueAfterMs?: number;
}

/** Azure names: letters, digits, `-`, `_`, `.`; deterministic from namespace, name and uid. */
export function managedImageName(obj: VmImage): string {
  const explicit = obj.spec.destination.managedImage?.name;
  if (explicit) return explicit;
  const base = `${obj.metadata?.namespace ?? "default"}-${obj.metadata?.name ?? ""}`.replace(/[^A-Za-z0-9_.-]/g, "-");
  const uid = (obj.metadata?.uid ?? "").slice(0, 8);
  return `${base.slice(0, 70)}-${uid}`;
}

/**
 * Makes Azure hold what a VmImage declares. Each pass observes Azure with GETs, starts at most the next
 * operation without waiting for it (requeueing to look again), and writes status once. Names are
 * deterministic, so a crash between "create sent" and "status written" is healed by the next GET, not
 * by a second resource.
 */
export class VmImageReconciler {
  private readonly d: VmImageReconcilerDeps;

  constructor(deps: VmImageReconcilerDeps) {
    this.d = deps;
  }

  readonly reconcile = async (req: ReconcileRequest, ctx: ReconcileContext): Promise<ReconcileResult | undefined> => {
    const obj = this.d.informer.get(req.key);
    if (!obj) return undefined;
    if (obj.metadata?.deletionTimestamp) return this.finalize(obj, ctx.log);
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) {
      await addFinalizer(this.d.kube, this.d.ref, obj, FINALIZER);
      return undefined;
    }

    const status: VmImageStatus = structuredClone(obj.status ?? {});
    let outcome: Outcome;
    try {
      outcome = await this.apply(obj, status, ctx.log);
      delete status.lastError;
    } catch (err) {
      if (err instanceof SourceProblem) {
        outcome = { health: { state: "stalled", reason: err.reason, message: err.message } };
      } else {
        const azureErr = classify(err);
        status.lastError = { code: azureErr.code, message: azureErr.message };
        outcome = azureErr.kind === "Terminal"
          ? { health: { state: "stalled", reason: azureErr.code, message: azureErr.message } }
          : { health: { state: "reconciling", reason: azureErr.code, message: azureErr.message }, requeueAfterMs: this.retryDelay(azureErr) };
      }
    }
    const generation = obj.metadata.generation;
    status.observedGeneration = generation;
    status.conditions = setHealth(status.conditions, outcome.health, generation);
    await this.recordTransition(obj, outcome.health);
    await updateStatus(this.d.kube, this.d.ref, obj, status);
    return outcome.requeueAfterMs === undefined ? undefined : { requeueAfterMs: outcome.requeueAfterMs };
  };

  private retryDelay(err: AzureError): number {
    return Math.max(err.retryAfterMs ?? 0, 10_000);
  }

  /** One pass towards the declared state; returns the verdict and fills `status`. */
  private async apply(obj: VmImage, status: VmImageStatus, log: Logger): Promise<Outcome> {
    const spec = obj.spec;
    const sources = Object.keys(spec.source).filter((k) => spec.source[k as keyof typeof spec.source] !== undefined);
    if (sources.length !== 1) {
      throw new SourceProblem(Reasons.InvalidSpec, `spec.source must name exactly one of marketplace, gallery or vhd (found ${sources.length}).`);
    }
    const market = spec.source.marketplace;
    if (!market) {
      throw new SourceProblem(
        Reasons.SourceNotSupported,
        `spec.source.${sources[0] ?? ""} is not supported by this version of the operator; only marketplace sources are.`,
      );
    }
    if (spec.destination.gallery) {
      throw new SourceProblem(Reasons.DestinationNotSupported, "spec.destination.gallery is not supported by this version of the operator; only managedImage is.");
    }

    // Resolve the source; a resolved `latest` stays pinned until the spec changes.
    const pinned = status.observedGeneration === obj.metadata?.generation ? status.resolvedVersion : undefined;
    const resolved = await resolveMarketplaceImage(this.d.azure, spec.location, { ...market, version: pinned ?? market.version ?? "latest" });
    if (resolved.version !== status.resolvedVersion) {
      log.info({ version: resolved.version }, "resolved Marketplace image");
      if (status.resolvedVersion) await this.event(obj, "Normal", "VersionResolved", `Source version changed from ${status.resolvedVersion} to ${resolved.version}.`);
    }
    status.resolvedVersion = resolved.version;
    if (resolved.plan) {
      status.plan = resolved.plan;
      if (await ensureTermsAccepted(this.d.azure, resolved.plan, market.acceptTerms === true)) {
        await this.event(obj, "Normal", "TermsAccepted", `Accepted the terms of plan ${resolved.plan.publisher}/${resolved.plan.product}/${resolved.plan.name}.`);
      }
    } else {
      delete status.plan;
    }
    if (!spec.destination.managedImage) {
      status.imageReference = { publisher: market.publisher, offer: market.offer, sku: market.sku, version: resolved.version };
      return { health: { state: "ready", reason: Reasons.Available, message: `Marketplace image ${resolved.version} is available.` }, requeueAfterMs: this.d.driftCheckMs };
    }
    return this.ensureManagedImage(obj, status, resolved);
  }

  /**
   * A managed image from a Marketplace image: the image's OS disk is materialized as a managed disk
   * (createOption FromImage), the image is made from that disk, then the disk is removed.
   */
  private async ensureManagedImage(obj: VmImage, status: VmImageStatus, resolved: ResolvedMarketplaceImage): Promise<Outcome> {
    const { compute, resources } = this.d.azure;
    const spec = obj.spec;
    const rg = spec.resourceGroup;
    const name = managedImageName(obj);
    const diskName = `${name}-source`.slice(0, 80);
    const tags = { ...spec.tags, [OWNER_TAG]: obj.metadata?.uid ?? "" };
    const poll = { requeueAfterMs: this.d.pollMs };

    const image = await getOrUndefined(compute.images.get(rg, name));
    if (image) {
      if (image.tags?.[OWNER_TAG] !== obj.metadata?.uid) {
        throw new AzureError("Terminal", "ResourceNotOwned", `Managed image '${name}' in resource group '${rg}' exists and was not created for this VmImage; choose another spec.destination.managedImage.name.`);
      }
      const state = (image.provisioningState ?? "Succeeded").toLowerCase();
      if (state === "failed") {
        throw new AzureError("Terminal", "ImageCreationFailed", `Azure reports managed image '${name}' as Failed.`);
      }
      if (state !== "succeeded") {
        return { health: { state: "reconciling", reason: Reasons.CreatingImage, message: `Managed image '${name}' is ${image.provisioningState ?? ""}.` }, ...poll };
      }
      status.imageId = image.id;
      status.imageReference = { id: image.id };
      // The source disk has served its purpose.
      const leftover = await getOrUndefined(compute.disks.get(rg, diskName));
      if (leftover && leftover.tags?.[OWNER_TAG] === obj.metadata?.uid && leftover.provisioningState?.toLowerCase() !== "deleting") {
        await compute.disks.delete(rg, diskName).submitted().catch((err: unknown) => {
          throw classify(err);
        });
      }
      if (!isDeepStrictEqual(withoutOwner(image.tags), spec.tags ?? {})) {
        await compute.images.update(rg, name, { tags }).submitted().catch((err: unknown) => {
          throw classify(err);
        });
      }
      return { health: { state: "ready", reason: Reasons.Available, message: `Managed image '${name}' exists.` }, requeueAfterMs: this.d.driftCheckMs };
    }

    if (!(await getOrUndefined(resources.resourceGroups.get(rg)))) {
      await resources.resourceGroups.createOrUpdate(rg, { location: spec.location, tags: { [OWNER_TAG]: obj.metadata?.uid ?? "" } }).catch((err: unknown) => {
        throw classify(err);
      });
      await this.event(obj, "Normal", "ResourceGroupCreated", `Created resource group '${rg}'.`);
    }
    const disk = await getOrUndefined(compute.disks.get(rg, diskName));
    if (!disk) {
      await compute.disks
        .createOrUpdate(rg, diskName, {
          location: spec.location,
          tags,
          creationData: { createOption: "FromImage", imageReference: { id: resolved.id } },
          ...(resolved.hyperVGeneration ? { hyperVGeneration: resolved.hyperVGeneration } : {}),
        })
        .submitted()
        .catch((err: unknown) => {
          throw classify(err);
        });
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `Creating OS disk '${diskName}' from ${resolved.version}.` }, ...poll };
    }
    const diskState = (disk.provisioningState ?? "").toLowerCase();
    if (diskState === "failed") throw new AzureError("Retryable", "DiskCreationFailed", `Azure reports disk '${diskName}' as Failed.`);
    if (diskState !== "succeeded") {
      return { health: { state: "reconciling", reason: Reasons.CreatingDisk, message: `OS disk '${diskName}' is ${disk.provisioningState ?? ""}.` }, ...poll };
    }
    await compute.images
      .createOrUpdate(rg, name, {
        location: spec.location,
        tags,
        hyperVGeneration: spec.hyperVGeneration ?? (resolved.hyperVGeneration as "V1" | "V2" | undefined) ?? "V2",
        storageProfile: {
          osDisk: {
            osType: spec.osType,
            osState: spec.osState ?? "Generalized",
            managedDisk: { id: disk.id ?? "" },
          },
        },
      })
      .submitted()
      .catch((err: unknown) => {
        throw classify(err);
      });
    await this.event(obj, "Normal", "CreatingImage", `Creating managed image '${name}'.`);
    return { health: { state: "reconciling", reason: Reasons.CreatingImage, message: `Creating managed image '${name}'.` }, ...poll };
  }

  /** Deletion: remove what we created if the policy says so, then let the object go. */
  private async finalize(obj: VmImage, log: Logger): Promise<ReconcileResult | undefined> {
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) return undefined;
    if ((obj.spec.deletionPolicy ?? "Delete") === "Delete" && obj.spec.destination.managedImage) {
      const { compute } = this.d.azure;
      const rg = obj.spec.resourceGroup;
      const name = managedImageName(obj);
      try {
        for (const [kind, getIt, del] of [
          ["image", () => compute.images.get(rg, name), () => compute.images.delete(rg, name)],
          ["disk", () => compute.disks.get(rg, `${name}-source`.slice(0, 80)), () => compute.disks.delete(rg, `${name}-source`.slice(0, 80))],
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
      await this.event(obj, "Normal", "Deleted", `Deleted managed image '${name}'.`);
    }
    await removeFinalizer(this.d.kube, this.d.ref, obj, FINALIZER);
    return undefined;
  }

  private async recordTransition(obj: VmImage, health: Health): Promise<void> {
    const before = findCondition(obj.status?.conditions, READY);
    const ready = health.state === "ready" ? "True" : "False";
    if (before?.status === ready && before.reason === health.reason) return;
    const type = health.state === "stalled" || (health.state === "reconciling" && obj.status?.lastError) ? "Warning" : "Normal";
    await this.event(obj, type, health.reason, health.message);
  }

  private event(obj: VmImage, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    return this.d.events.record(obj, type, reason, message);
  }
}

function withoutOwner(tags: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(tags ?? {}).filter(([k]) => k !== OWNER_TAG));
}
