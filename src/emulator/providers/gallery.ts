import { ArmError, enumValue, invalidParameter, missingProperty, normalizeLocation, operationNotAllowed } from "../arm.ts";
import type { Emulator } from "../emulator.ts";
import type { ArmRequest } from "../http.ts";
import type { StoredResource } from "../store.ts";
import {
  acceptDelete,
  acceptPut,
  bodyObject,
  COMPUTE,
  exists,
  get,
  immutable,
  isObject,
  list,
  pathId,
  props,
  requireLocation,
  requireResource,
  requireResourceGroup,
  tagsOf,
  view,
  type Json,
} from "./common.ts";
import { checkVhdBlob, DISK, IMAGE, SNAPSHOT, VM, type VmInternal } from "./compute.ts";

export const GALLERY = "Microsoft.Compute/galleries";
export const GALLERY_IMAGE = "Microsoft.Compute/galleries/images";
export const GALLERY_VERSION = "Microsoft.Compute/galleries/images/versions";

const STORAGE_TYPES = ["Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS"];

interface VersionInternal {
  /** Replication start time per region (ms). */
  replicationStart: Record<string, number>;
}

function parentOf(id: string): string {
  return id.split("/").slice(0, -2).join("/");
}

function parentNotFound(name: string): ArmError {
  return new ArmError(404, "ParentResourceNotFound", `Can not perform requested operation on nested resource. Parent resource '${name}' not found.`);
}

/** The OS state a version source carries, when it can be known. */
function sourceOsState(emu: Emulator, id: string): string | undefined {
  const src = emu.store.get(id);
  if (!src) return undefined;
  if (src.type === IMAGE) return String(((props(view(src)).storageProfile as Json).osDisk as Json).osState);
  if (src.type === VM) return (src.internal as unknown as VmInternal).generalized ? "Generalized" : "Specialized";
  if (src.type === GALLERY_VERSION) {
    const def = emu.store.get(parentOf(src.id));
    return def ? String(props(view(def)).osState) : undefined;
  }
  return undefined;
}

function replicationStatus(emu: Emulator, v: StoredResource): Json {
  const internal = v.internal as unknown as VersionInternal;
  const regions = ((props(view(v)).publishingProfile as Json).targetRegions as Json[]).map((t) => normalizeLocation(String(t.name)));
  const now = Date.now();
  const failed = String(props(view(v)).provisioningState) === "Failed";
  const summary = regions.map((region, i) => {
    const start = internal.replicationStart[region] ?? now;
    // Regions finish one after another, the last when the replication time is up.
    const duration = (emu.opts.replicationDurationMs * (i + 1)) / regions.length;
    const progress = duration <= 0 ? 100 : Math.max(0, Math.min(100, Math.floor(((now - start) / duration) * 100)));
    const state = failed ? "Failed" : progress >= 100 ? "Completed" : "Replicating";
    return { region: region, state, details: "", progress };
  });
  const aggregatedState = summary.some((s) => s.state === "Failed")
    ? "Failed"
    : summary.every((s) => s.state === "Completed")
      ? "Completed"
      : "InProgress";
  return { aggregatedState, summary };
}

export function registerGallery(emu: Emulator): void {
  const r = emu.router;
  const rg = (req: ArmRequest) => req.params.resourceGroupName ?? "";
  const G = `${COMPUTE}/galleries/{gallery}`;
  const GI = `${G}/images/{image}`;
  const GV = `${GI}/versions/{version}`;

  // Galleries.
  r.add("PUT", G, "Microsoft.Compute/galleries/write", (req) => {
    requireResourceGroup(emu, req.params);
    const body = bodyObject(req);
    const location = requireLocation(body);
    const name = req.params.gallery ?? "";
    if (!/^[A-Za-z0-9][A-Za-z0-9._]{0,78}[A-Za-z0-9]$/.test(name)) {
      throw invalidParameter("galleryName", `The gallery name '${name}' is invalid. It may contain letters, digits, dots and underscores, and must start and end with a letter or digit.`);
    }
    const existing = emu.store.get(pathId(req));
    if (existing && existing.location !== location) immutable("location", existing.location, location);
    const p = props(body);
    const tags = tagsOf(body) ?? existing?.tags;
    const gallery: StoredResource = {
      id: existing?.id ?? pathId(req),
      name,
      type: GALLERY,
      location,
      ...(tags ? { tags } : {}),
      body: {
        properties: {
          ...(typeof p.description === "string" ? { description: p.description } : {}),
          identifier: { uniqueName: `${req.params.subscriptionId ?? ""}-${name.toUpperCase()}` },
          ...(isObject(p.sharingProfile) ? { sharingProfile: p.sharingProfile } : {}),
        },
      },
      internal: {},
    };
    return acceptPut(emu, req, gallery, { style: "gallery", existed: Boolean(existing), transient: existing ? "Updating" : "Creating" });
  });
  r.add("GET", G, "Microsoft.Compute/galleries/read", (req) => get(emu, req, GALLERY));
  r.add("GET", `${COMPUTE}/galleries`, "Microsoft.Compute/galleries/read", (req) => list(emu, `${pathId(req)}/`, GALLERY));
  r.add("DELETE", G, "Microsoft.Compute/galleries/delete", (req) => {
    const gallery = emu.store.get(pathId(req));
    if (gallery && emu.store.list(`${gallery.id}/images/`, GALLERY_IMAGE).length > 0) {
      throw new ArmError(409, "CannotDeleteResource", `Can not delete resource before nested resources are deleted.`);
    }
    return acceptDelete(emu, req, gallery, "gallery");
  });

  // Image definitions.
  r.add("PUT", GI, "Microsoft.Compute/galleries/images/write", (req) => {
    const gallery = emu.store.get(parentOf(pathId(req)));
    if (!gallery || gallery.type !== GALLERY) throw parentNotFound(req.params.gallery ?? "");
    const body = bodyObject(req);
    const location = requireLocation(body);
    const p = props(body);
    const osType = enumValue("properties.osType", p.osType, ["Windows", "Linux"]);
    const osState = enumValue("properties.osState", p.osState, ["Generalized", "Specialized"]);
    if (!isObject(p.identifier)) throw missingProperty("properties.identifier");
    for (const k of ["publisher", "offer", "sku"]) {
      if (typeof p.identifier[k] !== "string" || p.identifier[k] === "") throw missingProperty(`properties.identifier.${k}`);
    }
    const hyperVGeneration = enumValue("properties.hyperVGeneration", p.hyperVGeneration ?? "V1", ["V1", "V2"]);
    const architecture = enumValue("properties.architecture", p.architecture ?? "x64", ["x64", "Arm64"]);
    const features = Array.isArray(p.features) ? (p.features as Json[]) : undefined;
    const security = features?.find((f) => f.name === "SecurityType");
    if (security && hyperVGeneration === "V1" && String(security.value).startsWith("TrustedLaunch")) {
      throw invalidParameter("properties.features", "The feature 'SecurityType' with value TrustedLaunch requires hyperVGeneration V2.");
    }
    const existing = emu.store.get(pathId(req));
    if (existing) {
      const before = props(view(existing));
      immutable("properties.osType", before.osType, osType);
      immutable("properties.osState", before.osState, osState);
      immutable("properties.identifier", before.identifier, p.identifier);
      immutable("properties.hyperVGeneration", before.hyperVGeneration, hyperVGeneration);
      if (features && JSON.stringify(features) !== JSON.stringify(before.features ?? []) && p.allowUpdateImage !== true) {
        throw new ArmError(409, "PropertyChangeNotAllowed", "Changing property 'features' is not allowed unless 'allowUpdateImage' is true.", { target: "properties.features" });
      }
    }
    const tags = tagsOf(body) ?? existing?.tags;
    const image: StoredResource = {
      id: existing?.id ?? pathId(req),
      name: req.params.image ?? "",
      type: GALLERY_IMAGE,
      location,
      ...(tags ? { tags } : {}),
      body: {
        properties: {
          ...p,
          osType,
          osState,
          hyperVGeneration,
          architecture,
          ...(features ? { features } : {}),
        },
      },
      internal: {},
    };
    return acceptPut(emu, req, image, { style: "gallery", existed: Boolean(existing), transient: existing ? "Updating" : "Creating" });
  });
  r.add("GET", GI, "Microsoft.Compute/galleries/images/read", (req) => get(emu, req, GALLERY_IMAGE));
  r.add("GET", `${G}/images`, "Microsoft.Compute/galleries/images/read", (req) => list(emu, `${pathId(req)}/`, GALLERY_IMAGE));
  r.add("DELETE", GI, "Microsoft.Compute/galleries/images/delete", (req) => {
    const image = emu.store.get(pathId(req));
    if (image && emu.store.list(`${image.id}/versions/`, GALLERY_VERSION).length > 0) {
      throw new ArmError(409, "CannotDeleteResource", "Can not delete resource before nested resources are deleted.");
    }
    return acceptDelete(emu, req, image, "gallery");
  });

  // Image versions.
  const putVersion = async (req: ArmRequest, patch: boolean) => {
    const def = emu.store.get(parentOf(pathId(req)));
    if (!def || def.type !== GALLERY_IMAGE) throw parentNotFound(req.params.image ?? "");
    const name = req.params.version ?? "";
    if (!/^\d+\.\d+\.\d+$/.test(name)) {
      throw invalidParameter("galleryImageVersionName", `The gallery image version name '${name}' is invalid. It must be in the format major.minor.patch, each a 32-bit integer.`);
    }
    const existing = emu.store.get(pathId(req));
    if (patch && !existing) requireResource(emu, pathId(req), GALLERY_VERSION, rg(req));
    const body = bodyObject(req);
    const location = patch ? (existing?.location ?? "") : requireLocation(body);
    const p = props(body);
    const before = existing ? props(view(existing)) : {};
    const defProps = props(view(def));

    let storageProfile = before.storageProfile as Json | undefined;
    if (!patch || p.storageProfile !== undefined) {
      if (!isObject(p.storageProfile)) throw missingProperty("properties.storageProfile");
      storageProfile = await checkVersionSource(emu, p.storageProfile, String(defProps.osState));
      if (existing) immutable("properties.storageProfile", stripComputed(before.storageProfile), stripComputed(storageProfile));
    }
    const prevProfile = (before.publishingProfile as Json | undefined) ?? {};
    const pp = isObject(p.publishingProfile) ? { ...prevProfile, ...p.publishingProfile } : prevProfile;
    const regionsIn = Array.isArray(pp.targetRegions) ? (pp.targetRegions as Json[]) : [{ name: location }];
    const targetRegions = regionsIn.map((t, i) => {
      if (typeof t.name !== "string" || t.name === "") throw missingProperty(`properties.publishingProfile.targetRegions[${i}].name`);
      const storageAccountType = enumValue(`properties.publishingProfile.targetRegions[${i}].storageAccountType`, t.storageAccountType ?? pp.storageAccountType ?? "Standard_LRS", STORAGE_TYPES);
      const count = t.regionalReplicaCount ?? pp.replicaCount ?? 1;
      if (typeof count !== "number" || count < 1 || count > 100) {
        throw invalidParameter(`properties.publishingProfile.targetRegions[${i}].regionalReplicaCount`, "The regional replica count must be between 1 and 100.");
      }
      return { ...t, name: t.name, regionalReplicaCount: count, storageAccountType, excludeFromLatest: t.excludeFromLatest ?? false };
    });
    if (!targetRegions.some((t) => normalizeLocation(t.name) === location)) {
      throw invalidParameter("properties.publishingProfile.targetRegions", `The target regions must include the location of the gallery image version ('${location}').`);
    }
    const internal = (existing?.internal as unknown as VersionInternal | undefined) ?? { replicationStart: {} };
    const now = Date.now();
    const replicationStart: Record<string, number> = {};
    for (const t of targetRegions) {
      const region = normalizeLocation(t.name);
      replicationStart[region] = internal.replicationStart[region] ?? now;
    }
    const tags = tagsOf(body) ?? existing?.tags;
    const version: StoredResource = {
      id: existing?.id ?? pathId(req),
      name,
      type: GALLERY_VERSION,
      location,
      ...(tags ? { tags } : {}),
      body: {
        properties: {
          publishingProfile: {
            ...pp,
            targetRegions,
            replicaCount: pp.replicaCount ?? 1,
            excludeFromLatest: pp.excludeFromLatest ?? false,
            storageAccountType: pp.storageAccountType ?? "Standard_LRS",
            publishedDate: (prevProfile.publishedDate as string | undefined) ?? new Date(now).toISOString(),
          },
          storageProfile,
          ...(isObject(p.safetyProfile) ? { safetyProfile: p.safetyProfile } : before.safetyProfile ? { safetyProfile: before.safetyProfile } : {}),
        },
      },
      internal: { replicationStart } satisfies VersionInternal,
    };
    // The version's operation ends when every region has replicated.
    const newest = Math.max(...Object.values(replicationStart));
    const durationMs = emu.opts.operationDurationMs + Math.max(0, newest + emu.opts.replicationDurationMs - now);
    return acceptPut(emu, req, version, { style: "gallery", existed: Boolean(existing), transient: existing ? "Updating" : "Creating", durationMs });
  };
  r.add("PUT", GV, "Microsoft.Compute/galleries/images/versions/write", (req) => putVersion(req, false));
  r.add("PATCH", GV, "Microsoft.Compute/galleries/images/versions/write", (req) => putVersion(req, true));
  const versionView = (req: ArmRequest) => (v: StoredResource): Json => {
    const out = view(v);
    if (req.url.searchParams.get("$expand")?.toLowerCase() === "replicationstatus") {
      out.properties = { ...props(out), replicationStatus: replicationStatus(emu, v) };
    }
    return out;
  };
  r.add("GET", GV, "Microsoft.Compute/galleries/images/versions/read", (req) => get(emu, req, GALLERY_VERSION, versionView(req)));
  r.add("GET", `${GI}/versions`, "Microsoft.Compute/galleries/images/versions/read", (req) => list(emu, `${pathId(req)}/`, GALLERY_VERSION, versionView(req)));
  r.add("DELETE", GV, "Microsoft.Compute/galleries/images/versions/delete", (req) => acceptDelete(emu, req, emu.store.get(pathId(req)), "gallery"));
}

function stripComputed(profile: unknown): unknown {
  return JSON.parse(JSON.stringify(profile ?? {}, (k: string, v: unknown) => (k === "sizeInGB" || k === "hostCaching" ? undefined : v)));
}

/** Validates a version's storageProfile against its sources and the definition's OS state. */
async function checkVersionSource(emu: Emulator, sp: Json, defOsState: string): Promise<Json> {
  const source = isObject(sp.source) ? sp.source : undefined;
  const sourceId = source?.id ?? source?.virtualMachineId;
  const out: Json = { ...sp };
  const stateMismatch = (id: string, state: string) =>
    new ArmError(400, "BadRequest", `The resource with id '${id}' has a different OS state ['${state}'] than the parent gallery image OS state ['${defOsState}'].`);
  if (typeof sourceId === "string") {
    const ok = exists(emu, sourceId, IMAGE) || exists(emu, sourceId, VM) || exists(emu, sourceId, GALLERY_VERSION);
    if (!ok) throw invalidParameter("properties.storageProfile.source.id", `The source '${sourceId}' was not found.`);
    const state = sourceOsState(emu, sourceId);
    if (state && state !== defOsState) throw stateMismatch(sourceId, state);
    if (exists(emu, sourceId, VM)) {
      const vm = emu.store.get(sourceId);
      const internal = vm?.internal as unknown as VmInternal;
      if (defOsState === "Generalized" && !internal.generalized) {
        throw operationNotAllowed(`The operation requires the Virtual Machine '${vm?.name ?? ""}' to be Generalized.`);
      }
    }
    out.osDiskImage = { sizeInGB: 30, hostCaching: "ReadWrite", ...(isObject(sp.osDiskImage) ? sp.osDiskImage : {}) };
    return out;
  }
  if (!isObject(sp.osDiskImage) || !isObject(sp.osDiskImage.source)) {
    throw missingProperty("properties.storageProfile.source");
  }
  const check = async (disk: Json, target: string): Promise<number> => {
    const src = disk.source as Json;
    if (typeof src.uri === "string") {
      if (typeof src.storageAccountId !== "string") throw missingProperty(`${target}.source.storageAccountId`);
      return checkVhdBlob(emu, src.uri, `${target}.source.uri`);
    }
    if (typeof src.id === "string" && (exists(emu, src.id, SNAPSHOT) || exists(emu, src.id, DISK))) {
      return Number(props(view(emu.store.get(src.id) as StoredResource)).diskSizeBytes ?? 0);
    }
    throw invalidParameter(`${target}.source.id`, `The source '${String(src.id ?? src.uri)}' was not found.`);
  };
  const osSize = await check(sp.osDiskImage, "properties.storageProfile.osDiskImage");
  out.osDiskImage = { hostCaching: "ReadWrite", ...sp.osDiskImage, sizeInGB: Math.ceil(osSize / 2 ** 30) };
  if (Array.isArray(sp.dataDiskImages)) {
    const data: Json[] = [];
    for (const [i, d] of (sp.dataDiskImages as unknown[]).entries()) {
      if (!isObject(d) || typeof d.lun !== "number") throw missingProperty(`properties.storageProfile.dataDiskImages[${i}].lun`);
      if (!isObject(d.source)) throw missingProperty(`properties.storageProfile.dataDiskImages[${i}].source`);
      const size = await check(d, `properties.storageProfile.dataDiskImages[${i}]`);
      data.push({ hostCaching: "None", ...d, sizeInGB: Math.ceil(size / 2 ** 30) });
    }
    out.dataDiskImages = data;
  }
  return out;
}
