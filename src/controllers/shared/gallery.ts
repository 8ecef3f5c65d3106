import { isDeepStrictEqual } from "node:util";
import type { GalleryImageVersion, TargetRegion as AzureTargetRegion } from "@azure/arm-compute";
import type { V1ObjectMeta } from "@kubernetes/client-node";
import type { DestinationSpec, DestinationStatus } from "../../api/types.ts";
import type { AzureClients } from "../../azure/clients.ts";
import { AzureError, classify, getOrUndefined } from "../../azure/errors.ts";
import type { Health } from "../../runtime/conditions.ts";
import { Remembered } from "./remembered.ts";
import { compareVersions, normalizeRegion } from "./versions.ts";

/** A verdict of one reconcile pass. */
export interface Outcome {
  health: Health;
  requeueAfterMs?: number;
  /** A failure being dealt with (its clean-up under way): shown in status.lastError, its Event a Warning. */
  lastError?: { code: string; message: string };
}

/** Where a new version's bytes come from (imageId: a managed image or another gallery version). */
export type VersionSource =
  | { imageId: string }
  | { diskId: string }
  | { blob: { uri: string; storageAccountId: string } }
  /** Disks or blobs: the OS disk and, for a VM image, data disks by LUN. */
  | { disks: { os: DiskRef; data: Array<{ lun: number } & DiskRef> } };

type DiskRef = { id: string } | { uri: string; storageAccountId: string };

/** Annotation that asks, like spec.adopt, to take over outputs that exist without an owner. */
export const ADOPT_ANNOTATION = "azureimages.dev/adopt";

/**
 * Whether existing outputs that no object owns may be taken over (spec.adopt, or the annotation). An
 * output owned by another object is never taken.
 */
export function adopting(obj: ImageTarget): boolean {
  return obj.spec.adopt === true || obj.metadata?.annotations?.[ADOPT_ANNOTATION] === "true";
}

/** The object that owns the outputs: a VmImage, or an ImageCapture seen through its captured VM. */
export interface ImageTarget {
  kind?: string;
  metadata?: V1ObjectMeta;
  spec: DestinationSpec;
}

export interface GalleryDeps {
  azure: AzureClients;
  ownerTag: string;
  pollMs: number;
  driftCheckMs: number;
  event: (type: "Normal" | "Warning", reason: string, message: string) => Promise<void>;
}

/** Sends the first request of a long-running operation and returns without waiting for it. */
export async function submit(poller: { submitted(): Promise<void> }): Promise<void> {
  try {
    await poller.submitted();
  } catch (err) {
    throw classify(err);
  }
}

/** The publishing profile the spec asks for, in Azure's terms. */
function desiredProfile(obj: ImageTarget): { targetRegions: AzureTargetRegion[]; excludeFromLatest: boolean; endOfLifeDate?: Date } {
  const g = obj.spec.destination?.gallery;
  const regions = g?.targetRegions?.length ? g.targetRegions : [{ name: obj.spec.location }];
  return {
    targetRegions: regions.map((r) => ({
      name: normalizeRegion(r.name),
      regionalReplicaCount: r.replicaCount ?? 1,
      storageAccountType: r.storageAccountType ?? "Standard_LRS",
    })),
    excludeFromLatest: g?.excludeFromLatest ?? false,
    ...(g?.endOfLifeDate ? { endOfLifeDate: new Date(g.endOfLifeDate) } : {}),
  };
}

function comparableProfile(p: { targetRegions?: AzureTargetRegion[]; excludeFromLatest?: boolean; endOfLifeDate?: Date }): unknown {
  return {
    regions: (p.targetRegions ?? [])
      .map((t) => [normalizeRegion(t.name), t.regionalReplicaCount ?? 1, t.storageAccountType ?? "Standard_LRS"])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    excludeFromLatest: p.excludeFromLatest ?? false,
    endOfLifeDate: p.endOfLifeDate ? new Date(p.endOfLifeDate).toISOString() : undefined,
  };
}

/**
 * Makes an Azure Compute Gallery image version exist as the spec says: the gallery and the image
 * definition are created when missing (an existing definition must match the image's OS type, OS
 * state and Hyper-V generation), the version is created from `source` (asked for only then), and
 * publishing settings (target regions, replica counts, excludeFromLatest, end of life) are brought in
 * line by an update when they differ. `auto` picks the next patch version once and pins it in status.
 */
export async function ensureGalleryVersion(
  d: GalleryDeps,
  obj: ImageTarget,
  status: DestinationStatus,
  source: () => Promise<Outcome | VersionSource>,
): Promise<Outcome> {
  const g = obj.spec.destination?.gallery;
  if (!g) throw new Error("no gallery destination");
  const { compute } = d.azure;
  const spec = obj.spec;
  const rg = spec.resourceGroup;
  const uid = obj.metadata?.uid ?? "";
  const tags = { ...spec.tags, [d.ownerTag]: uid };
  const poll = { requeueAfterMs: d.pollMs };
  const reconciling = (reason: string, message: string): Outcome => ({ health: { state: "reconciling", reason, message }, ...poll });

  const gallery = await getOrUndefined(compute.galleries.get(rg, g.galleryName));
  if (!gallery) {
    await submit(compute.galleries.createOrUpdate(rg, g.galleryName, { location: spec.location, tags }));
    await d.event("Normal", "CreatingGallery", `Creating gallery '${g.galleryName}'.`);
    return reconciling("CreatingGallery", `Creating gallery '${g.galleryName}'.`);
  }
  if ((gallery.provisioningState ?? "Succeeded").toLowerCase() !== "succeeded") {
    return reconciling("CreatingGallery", `Gallery '${g.galleryName}' is ${gallery.provisioningState ?? ""}.`);
  }

  const osState = spec.osState ?? "Generalized";
  const hyperVGeneration = spec.hyperVGeneration ?? "V2";
  const definition = await getOrUndefined(compute.galleryImages.get(rg, g.galleryName, g.imageDefinition));
  if (!definition) {
    await submit(
      compute.galleryImages.createOrUpdate(rg, g.galleryName, g.imageDefinition, {
        location: spec.location,
        tags,
        osType: spec.osType,
        osState,
        hyperVGeneration,
        ...(spec.features?.length ? { features: spec.features.map((f) => ({ name: f.name, value: f.value })) } : {}),
        identifier: {
          publisher: g.identifier?.publisher ?? obj.metadata?.namespace ?? "default",
          offer: g.identifier?.offer ?? g.imageDefinition,
          sku: g.identifier?.sku ?? obj.metadata?.name ?? "image",
        },
      }),
    );
    return reconciling("CreatingImageDefinition", `Creating image definition '${g.imageDefinition}'.`);
  }
  const compared: Array<[string, string | undefined, string]> = [
    ["osType", definition.osType, spec.osType],
    ["osState", definition.osState, osState],
    ["hyperVGeneration", definition.hyperVGeneration ?? "V1", hyperVGeneration],
  ];
  const mismatch = compared.filter(([, have, want]) => have?.toLowerCase() !== want.toLowerCase());
  for (const f of spec.features ?? []) {
    const have = definition.features?.find((x) => x.name?.toLowerCase() === f.name.toLowerCase())?.value;
    if (have?.toLowerCase() !== f.value.toLowerCase()) mismatch.push([`feature ${f.name}`, have, f.value]);
  }
  if (mismatch.length > 0) {
    throw new AzureError(
      "Terminal",
      "ImageDefinitionMismatch",
      `Image definition '${g.imageDefinition}' exists with ${mismatch.map(([k, have, want]) => `${k} ${have ?? "(unset)"} (this image: ${want})`).join(", ")}; use another definition or change the spec.`,
    );
  }
  if ((definition.provisioningState ?? "Succeeded").toLowerCase() !== "succeeded") {
    return reconciling("CreatingImageDefinition", `Image definition '${g.imageDefinition}' is ${definition.provisioningState ?? ""}.`);
  }

  const versionName = await chooseVersion(d, obj, status);
  status.galleryImageVersion = versionName;
  const version = await getOrUndefined(compute.galleryImageVersions.get(rg, g.galleryName, g.imageDefinition, versionName, { expand: "ReplicationStatus" }));
  const profile = desiredProfile(obj);
  if (!version) {
    const src = await source();
    if ("health" in src) return src;
    const storageProfile =
      "imageId" in src
        ? { source: { id: src.imageId } }
        : "diskId" in src
          ? { osDiskImage: { source: { id: src.diskId } } }
          : "blob" in src
            ? { osDiskImage: { source: { uri: src.blob.uri, storageAccountId: src.blob.storageAccountId } } }
            : {
                osDiskImage: { source: src.disks.os },
                ...(src.disks.data.length ? { dataDiskImages: src.disks.data.map(({ lun, ...source }) => ({ lun, source })) } : {}),
              };
    await submit(compute.galleryImageVersions.createOrUpdate(rg, g.galleryName, g.imageDefinition, versionName, {
      location: spec.location,
      tags,
      publishingProfile: profile,
      storageProfile,
    }));
    await d.event("Normal", "PublishingVersion", `Publishing gallery image version ${versionName} to ${profile.targetRegions.map((t) => t.name).join(", ")}.`);
    return reconciling("PublishingVersion", `Publishing gallery image version ${versionName}.`);
  }
  if (version.tags?.[d.ownerTag] !== uid) {
    if (!adopting(obj) || version.tags?.[d.ownerTag]) {
      throw new AzureError(
        "Terminal",
        "ResourceNotOwned",
        `Gallery image version ${versionName} of '${g.imageDefinition}' exists and was not created for this ${obj.kind ?? "object"}; choose another version${version.tags?.[d.ownerTag] ? " (it belongs to another object)" : ", or set spec.adopt: true to take it over"}.`,
      );
    }
    // Adopted: from now on it is this object's, and deleted with it only under deletionPolicy Delete.
    await submit(compute.galleryImageVersions.update(rg, g.galleryName, g.imageDefinition, versionName, { tags: { ...version.tags, [d.ownerTag]: uid } }));
    await d.event("Normal", "Adopted", `Adopted the existing gallery image version ${versionName}.`);
    return reconciling("Adopting", `Adopting gallery image version ${versionName}.`);
  }
  recordReplication(status, version);
  status.galleryImageVersionId = version.id;
  const state = (version.provisioningState ?? "Succeeded").toLowerCase();
  if (state === "failed") throw new AzureError("Terminal", "VersionFailed", `Azure reports gallery image version ${versionName} as Failed.`);
  if (state !== "succeeded") {
    const done = status.replication?.filter((r) => r.state === "Completed").length ?? 0;
    return reconciling("Replicating", `Replicating ${versionName}: ${done} of ${status.replication?.length ?? 0} regions done.`);
  }
  if (!isDeepStrictEqual(comparableProfile(version.publishingProfile ?? {}), comparableProfile(profile))) {
    await submit(compute.galleryImageVersions.update(rg, g.galleryName, g.imageDefinition, versionName, { publishingProfile: profile }));
    await d.event("Normal", "UpdatingVersion", `Updating the publishing settings of ${versionName}.`);
    return reconciling("UpdatingVersion", `Updating the publishing settings of ${versionName}.`);
  }
  status.imageReference = { id: version.id };
  return { health: { state: "ready", reason: "Available", message: `Gallery image version ${versionName} is replicated to ${status.replication?.length ?? 0} regions.` }, requeueAfterMs: d.driftCheckMs };
}

function recordReplication(status: DestinationStatus, version: GalleryImageVersion): void {
  const summary = version.replicationStatus?.summary ?? [];
  status.replication = summary.map((s) => ({ region: s.region ?? "", state: s.state ?? "Unknown", ...(s.progress !== undefined ? { progress: s.progress } : {}) }));
}

/** The version to publish: explicit, pinned, one this object already made, or the next patch version. */
async function chooseVersion(d: GalleryDeps, obj: ImageTarget, status: DestinationStatus): Promise<string> {
  const g = obj.spec.destination?.gallery;
  if (!g) throw new Error("no gallery destination");
  if (g.version && g.version !== "auto") return g.version;
  if (status.galleryImageVersion) return status.galleryImageVersion;
  const names: string[] = [];
  try {
    for await (const v of d.azure.compute.galleryImageVersions.listByGalleryImage(obj.spec.resourceGroup, g.galleryName, g.imageDefinition)) {
      // A version this object created before its status could record it (a crash) is adopted, not duplicated.
      if (v.tags?.[d.ownerTag] === obj.metadata?.uid && v.name) return v.name;
      if (v.name) names.push(v.name);
    }
  } catch (err) {
    const c = classify(err);
    if (c.kind !== "NotFound") throw c;
  }
  const highest = names.sort(compareVersions).at(-1);
  if (!highest) return "1.0.0";
  const [major = 0, minor = 0, patch = 0] = highest.split(".").map(Number);
  return `${major}.${minor}.${patch + 1}`;
}

/**
 * Resource groups seen to exist in the last minute: a burst of objects in one group reads it about
 * once a minute, not once per object and pass. A group deleted meanwhile shows as
 * ResourceGroupNotFound on the next write; `forgetResourceGroups` then makes the next pass look again
 * (and create it).
 */
const seenGroups = new Remembered<true>(60_000);

export function forgetResourceGroups(d: { azure: { resources: object } }, err: { code: string }): void {
  if (err.code === "ResourceGroupNotFound") seenGroups.forget(d.azure.resources);
}

/** Creates resource group `rg` in `location` when it does not exist (tagged with the owner), with an Event. */
export async function ensureResourceGroup(d: GalleryDeps, rg: string, location: string, ownerUid: string): Promise<void> {
  const { resources } = d.azure;
  const key = rg.toLowerCase();
  if (seenGroups.get(resources, key)) return;
  if (!(await getOrUndefined(resources.resourceGroups.get(rg)))) {
    await resources.resourceGroups.createOrUpdate(rg, { location, tags: { [d.ownerTag]: ownerUid } }).catch((err: unknown) => {
      throw classify(err);
    });
    await d.event("Normal", "ResourceGroupCreated", `Created resource group '${rg}'.`);
  }
  seenGroups.set(resources, key, true);
}
