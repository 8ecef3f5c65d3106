import { randomUUID } from "node:crypto";
import {
  ArmError,
  enumValue,
  invalidParameter,
  missingProperty,
  normalizeLocation,
  operationNotAllowed,
  parseResourceId,
  resourceGroupId,
  resourceNotFound,
} from "../arm.ts";
import type { Emulator } from "../emulator.ts";
import type { ArmRequest } from "../http.ts";
import { readVhdFooter } from "../storage.ts";
import type { StoredResource } from "../store.ts";
import {
  acceptAction,
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
import { checkMarketplaceTerms, marketplaceImage } from "./marketplace.ts";

export const IMAGE = "Microsoft.Compute/images";
export const DISK = "Microsoft.Compute/disks";
export const SNAPSHOT = "Microsoft.Compute/snapshots";
export const VM = "Microsoft.Compute/virtualMachines";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DISK_CONTAINER = "disks";
const MIN_UPLOAD = 20 * MiB + 512;
const MAX_UPLOAD = 32 * 1024 * GiB + 512;

interface DiskInternal {
  blob: string;
  attachedTo?: string;
}

/** The VM's state as the emulator models it: power state and the guest's generalization. */
export interface VmInternal {
  power: "running" | "stopped" | "deallocated" | "deallocating" | "starting" | "stopping";
  /** Marked generalized in Azure (the generalize call). */
  generalized: boolean;
  /** The guest ran Sysprep or waagent -deprovision. */
  guestDeprovisioned: boolean;
  /**
   * A guest that misbehaves: `deprovisionFails` makes waagent exit 1; `sysprepHangs` makes Sysprep run
   * forever without shutting the VM down.
   */
  guestFault?: "deprovisionFails" | "sysprepHangs";
}

/**
 * Checks a blob on the emulator's blob store is a page blob holding a fixed VHD whose virtual size is a
 * whole number of MiB, as Azure requires of image and disk sources.
 */
export async function checkVhdBlob(emu: Emulator, uri: string, target: string): Promise<number> {
  const where = emu.blobs?.locate(uri);
  if (!emu.blobs || !where) {
    throw invalidParameter(target, `The blob URI '${uri.split("?")[0] ?? ""}' is not in a storage account this subscription can access.`);
  }
  const tail = await emu.blobs.tail(where.container, where.blob);
  if (!tail) throw invalidParameter(target, `The blob '${uri.split("?")[0] ?? ""}' does not exist.`);
  if (tail.blobType !== "PageBlob") {
    throw invalidParameter(target, `The blob '${uri}' is a ${tail.blobType}; a VHD must be stored as a page blob.`);
  }
  return checkVhdFooter(tail.footer, tail.size, uri, target);
}

function checkVhdFooter(footer: Buffer, size: number, what: string, target: string): number {
  const info = readVhdFooter(footer);
  if (!info.valid) throw invalidParameter(target, `The VHD ${what} is not a valid VHD: ${info.problem ?? "unknown"}.`);
  if (info.diskType !== 2) {
    throw invalidParameter(target, `The VHD ${what} is a ${info.diskType === 3 ? "dynamic" : "differencing"} VHD; only fixed VHDs are supported.`);
  }
  if (info.currentSize % MiB !== 0 || info.currentSize + 512 !== size) {
    throw invalidParameter(
      target,
      `The VHD ${what} has an unsupported virtual size of ${info.currentSize} bytes. The size must be a whole number (in MBs).`,
    );
  }
  return info.currentSize;
}

/** Validates a managed disk's content as a fixed VHD (upload disks are checked when used). */
async function checkDiskContent(emu: Emulator, disk: StoredResource, target: string): Promise<number> {
  const internal = disk.internal as unknown as DiskInternal;
  const state = String(props(view(disk)).diskState);
  if (state === "ReadyToUpload" || state === "ActiveUpload") {
    throw operationNotAllowed(`Disk '${disk.name}' is in state '${state}'; finish the upload and revoke access before using it.`);
  }
  if (!emu.blobs) return Number(props(view(disk)).diskSizeBytes ?? 0);
  const tail = await emu.blobs.tail(DISK_CONTAINER, internal.blob);
  if (!tail) throw new ArmError(500, "InternalExecutionError", `The data of disk '${disk.name}' is missing.`);
  return checkVhdFooter(tail.footer, tail.size, `of disk '${disk.name}'`, target);
}

function diskSource(emu: Emulator, spec: Json, target: string): { kind: "blob" | "disk" | "snapshot"; ref: string } {
  const blobUri = spec.blobUri;
  const disk = isObject(spec.managedDisk) ? spec.managedDisk.id : undefined;
  const snap = isObject(spec.snapshot) ? spec.snapshot.id : undefined;
  const given = [blobUri, disk, snap].filter((v) => v !== undefined);
  if (given.length !== 1) {
    throw invalidParameter(target, `Exactly one of blobUri, managedDisk or snapshot must be given for '${target}'.`);
  }
  if (typeof blobUri === "string") return { kind: "blob", ref: blobUri };
  if (typeof disk === "string") {
    if (!exists(emu, disk, DISK)) throw invalidParameter(`${target}.managedDisk.id`, `The managed disk '${disk}' was not found.`);
    return { kind: "disk", ref: disk };
  }
  if (typeof snap === "string" && exists(emu, snap, SNAPSHOT)) return { kind: "snapshot", ref: snap };
  throw invalidParameter(`${target}.snapshot.id`, `The snapshot '${String(snap)}' was not found.`);
}

async function checkSource(emu: Emulator, src: { kind: string; ref: string }, target: string): Promise<number> {
  if (src.kind === "blob") return checkVhdBlob(emu, src.ref, `${target}.blobUri`);
  const r = emu.store.get(src.ref);
  if (!r) throw invalidParameter(target, `'${src.ref}' was not found.`);
  if (src.kind === "disk") return checkDiskContent(emu, r, target);
  return Number(props(view(r)).diskSizeBytes ?? 0);
}

async function buildImage(emu: Emulator, req: ArmRequest, existing: StoredResource | undefined): Promise<StoredResource> {
  const body = bodyObject(req);
  const location = requireLocation(body);
  const p = props(body);
  const hyperVGeneration = enumValue("properties.hyperVGeneration", p.hyperVGeneration ?? "V1", ["V1", "V2"]);
  let storageProfile: Json;
  if (isObject(p.sourceVirtualMachine)) {
    const vmId = p.sourceVirtualMachine.id;
    if (typeof vmId !== "string" || !exists(emu, vmId, VM)) {
      throw invalidParameter("properties.sourceVirtualMachine.id", `The virtual machine '${String(vmId)}' was not found.`);
    }
    const vm = emu.store.get(vmId) as StoredResource;
    const state = vm.internal as unknown as VmInternal;
    if (!state.generalized) {
      throw operationNotAllowed(`The operation 'Create Image' requires the Virtual Machine '${vm.name}' to be Generalized.`);
    }
    const vmStorage = props(view(vm)).storageProfile as Json;
    const osDisk = vmStorage.osDisk as Json;
    const dataDisks = (vmStorage.dataDisks as Json[] | undefined) ?? [];
    storageProfile = {
      osDisk: {
        osType: osDisk.osType,
        osState: "Generalized",
        managedDisk: osDisk.managedDisk,
        caching: "ReadWrite",
        diskSizeGB: osDisk.diskSizeGB,
        storageAccountType: "Standard_LRS",
      },
      dataDisks: dataDisks.map((d) => ({ lun: d.lun, managedDisk: d.managedDisk, caching: "None", diskSizeGB: d.diskSizeGB, storageAccountType: "Standard_LRS" })),
    };
  } else if (isObject(p.storageProfile) && isObject(p.storageProfile.osDisk)) {
    const osDisk = p.storageProfile.osDisk;
    const osType = enumValue("properties.storageProfile.osDisk.osType", osDisk.osType, ["Windows", "Linux"]);
    const osState = enumValue("properties.storageProfile.osDisk.osState", osDisk.osState, ["Generalized", "Specialized"]);
    const osSize = await checkSource(emu, diskSource(emu, osDisk, "properties.storageProfile.osDisk"), "properties.storageProfile.osDisk");
    const dataDisks = Array.isArray(p.storageProfile.dataDisks) ? (p.storageProfile.dataDisks as unknown[]) : [];
    const luns = new Set<number>();
    const data: Json[] = [];
    for (const [i, d] of dataDisks.entries()) {
      const target = `properties.storageProfile.dataDisks[${i}]`;
      if (!isObject(d) || typeof d.lun !== "number") throw missingProperty(`${target}.lun`);
      if (luns.has(d.lun)) throw invalidParameter(`${target}.lun`, `Data disk lun ${d.lun} is used more than once.`);
      luns.add(d.lun);
      const size = await checkSource(emu, diskSource(emu, d, target), target);
      data.push({ caching: "None", ...d, diskSizeGB: Math.ceil(size / GiB) });
    }
    storageProfile = {
      osDisk: { caching: "ReadWrite", ...osDisk, osType, osState, diskSizeGB: Math.ceil(osSize / GiB) },
      dataDisks: data,
      ...(p.storageProfile.zoneResilient !== undefined ? { zoneResilient: p.storageProfile.zoneResilient } : {}),
    };
  } else {
    throw missingProperty("properties.storageProfile.osDisk");
  }
  if (existing) {
    const before = props(view(existing));
    immutable("properties.storageProfile", stripSizes(before.storageProfile), stripSizes(storageProfile));
    immutable("properties.hyperVGeneration", before.hyperVGeneration, hyperVGeneration);
  }
  const tags = tagsOf(body);
  return {
    id: existing?.id ?? pathId(req),
    name: req.params.name ?? "",
    type: IMAGE,
    location,
    ...(tags ? { tags } : {}),
    body: {
      properties: {
        ...(isObject(p.sourceVirtualMachine) ? { sourceVirtualMachine: { id: p.sourceVirtualMachine.id } } : {}),
        storageProfile,
        hyperVGeneration,
      },
    },
    internal: {},
  };
}

function stripSizes(profile: unknown): unknown {
  return JSON.parse(JSON.stringify(profile ?? {}, (k: string, v: unknown) => (k === "diskSizeGB" || k === "caching" ? undefined : v)));
}

function diskView(r: StoredResource): Json {
  return view(r);
}

async function buildDisk(emu: Emulator, req: ArmRequest, type: string, existing: StoredResource | undefined): Promise<{ resource: StoredResource; blobAction: () => Promise<void> }> {
  const body = bodyObject(req);
  const location = requireLocation(body);
  const p = props(body);
  if (!isObject(p.creationData)) throw missingProperty("properties.creationData");
  const cd = p.creationData;
  const allowed = type === DISK ? ["Empty", "Copy", "Upload", "FromImage", "Import"] : ["Copy", "Import", "CopyStart"];
  const createOption = enumValue("properties.creationData.createOption", cd.createOption, allowed);
  const name = req.params.name ?? "";
  const uniqueId = existing ? String(props(view(existing)).uniqueId) : randomUUID();
  const blob = existing ? (existing.internal as unknown as DiskInternal).blob : uniqueId;
  if (existing) {
    immutable("properties.creationData", props(view(existing)).creationData, cd);
    return { resource: { ...existing, tags: tagsOf(body) ?? existing.tags ?? {} }, blobAction: () => Promise.resolve() };
  }
  let sizeBytes: number;
  let diskState = "Unattached";
  let blobAction: () => Promise<void>;
  const extra: Json = {};
  const blobs = emu.blobs;
  switch (createOption) {
    case "Upload": {
      const size = cd.uploadSizeBytes;
      if (typeof size !== "number") throw missingProperty("properties.creationData.uploadSizeBytes");
      if (size < MIN_UPLOAD || size > MAX_UPLOAD) {
        throw invalidParameter(
          "properties.creationData.uploadSizeBytes",
          `The specified upload size ${size} is out of range. It must be between ${MIN_UPLOAD} and ${MAX_UPLOAD} bytes, including the 512-byte VHD footer.`,
        );
      }
      if ((size - 512) % MiB !== 0) {
        throw invalidParameter(
          "properties.creationData.uploadSizeBytes",
          `The specified upload size ${size} is not a whole number of MiB plus the 512-byte VHD footer.`,
        );
      }
      sizeBytes = size - 512;
      diskState = "ReadyToUpload";
      blobAction = async () => blobs?.createPageBlob(DISK_CONTAINER, blob, size);
      break;
    }
    case "Empty": {
      if (typeof p.diskSizeGB !== "number") throw missingProperty("properties.diskSizeGB");
      sizeBytes = p.diskSizeGB * GiB;
      blobAction = async () => blobs?.createVhd(DISK_CONTAINER, blob, sizeBytes);
      break;
    }
    case "Copy": {
      const src = cd.sourceResourceId;
      if (typeof src !== "string") throw missingProperty("properties.creationData.sourceResourceId");
      const source = emu.store.get(src);
      if (!source || ![DISK, SNAPSHOT].includes(source.type)) {
        throw invalidParameter("properties.creationData.sourceResourceId", `The source resource '${src}' was not found.`);
      }
      const srcProps = props(view(source));
      if (srcProps.diskState === "ReadyToUpload" || srcProps.diskState === "ActiveUpload") {
        throw operationNotAllowed(`The source disk '${source.name}' is being uploaded and cannot be copied.`);
      }
      sizeBytes = Number(srcProps.diskSizeBytes ?? 0);
      extra.osType = srcProps.osType;
      extra.hyperVGeneration = srcProps.hyperVGeneration;
      extra.sourceUniqueId = srcProps.uniqueId;
      const srcBlob = (source.internal as unknown as DiskInternal).blob;
      blobAction = async () => blobs?.copy(DISK_CONTAINER, srcBlob, DISK_CONTAINER, blob);
      break;
    }
    case "FromImage": {
      if (isObject(cd.galleryImageReference)) {
        const found = galleryImageFor(emu, cd.galleryImageReference, location);
        sizeBytes = found.sizeBytes;
        extra.osType = found.osType;
        extra.hyperVGeneration = found.hyperVGeneration;
        blobAction = async () => blobs?.createVhd(DISK_CONTAINER, blob, sizeBytes);
        break;
      }
      const ref = isObject(cd.imageReference) ? cd.imageReference.id : undefined;
      if (typeof ref !== "string") throw missingProperty("properties.creationData.imageReference.id");
      const image = marketplaceImage(emu, ref);
      if (!image) throw invalidParameter("properties.creationData.imageReference.id", `The platform image '${ref}' is not available.`);
      checkMarketplaceTerms(emu, req.params.subscriptionId ?? "", image);
      sizeBytes = 30 * GiB;
      extra.osType = image.osType;
      extra.hyperVGeneration = image.hyperVGeneration;
      blobAction = async () => blobs?.createVhd(DISK_CONTAINER, blob, sizeBytes);
      break;
    }
    default: {
      const uri = cd.sourceUri;
      if (typeof uri !== "string") throw missingProperty("properties.creationData.sourceUri");
      sizeBytes = await checkVhdBlob(emu, uri, "properties.creationData.sourceUri");
      const where = blobs?.locate(uri);
      blobAction = async () => {
        if (where) await blobs?.copy(where.container, where.blob, DISK_CONTAINER, blob);
      };
    }
  }
  const tags = tagsOf(body);
  const osType = p.osType !== undefined ? enumValue("properties.osType", p.osType, ["Windows", "Linux"]) : extra.osType;
  const hyperV = p.hyperVGeneration !== undefined ? enumValue("properties.hyperVGeneration", p.hyperVGeneration, ["V1", "V2"]) : extra.hyperVGeneration;
  const resource: StoredResource = {
    id: pathId(req),
    name,
    type,
    location,
    ...(tags ? { tags } : {}),
    body: {
      sku: isObject(body.sku) ? body.sku : { name: "Standard_LRS", tier: "Standard" },
      properties: {
        ...(osType ? { osType } : {}),
        ...(hyperV ? { hyperVGeneration: hyperV } : {}),
        creationData: { ...cd, createOption, ...(extra.sourceUniqueId ? { sourceUniqueId: extra.sourceUniqueId } : {}) },
        diskSizeGB: Math.ceil(sizeBytes / GiB),
        diskSizeBytes: sizeBytes,
        uniqueId,
        timeCreated: new Date().toISOString(),
        diskState,
        ...(type === SNAPSHOT ? { incremental: p.incremental === true } : {}),
      },
    },
    internal: { blob },
  };
  return { resource, blobAction };
}

/**
 * The gallery image version a disk is made from: one of the subscription's own (by resource id, and
 * replicated to the disk's region) or a shared or community gallery version from the catalog (by its
 * unique id, offered in the region).
 */
function galleryImageFor(emu: Emulator, ref: Json, location: string): { sizeBytes: number; osType: string; hyperVGeneration: string } {
  const target = "properties.creationData.galleryImageReference";
  if (typeof ref.id === "string") {
    const version = emu.store.get(ref.id);
    if (version?.type !== "Microsoft.Compute/galleries/images/versions") throw invalidParameter(`${target}.id`, `The gallery image version '${ref.id}' was not found.`);
    const regions = ((props(view(version)).publishingProfile as Json | undefined)?.targetRegions as Json[] | undefined) ?? [];
    if (!regions.some((r) => normalizeLocation(String(r.name)) === location)) {
      throw invalidParameter(`${target}.id`, `The gallery image version '${ref.id}' is not replicated to region '${location}'.`);
    }
    const def = emu.store.get(version.id.split("/").slice(0, -2).join("/"));
    const defProps = def ? props(view(def)) : {};
    const size = Number(((props(view(version)).storageProfile as Json | undefined)?.osDiskImage as Json | undefined)?.sizeInGB ?? 30);
    const text = (v: unknown, fallback: string) => (typeof v === "string" ? v : fallback);
    return { sizeBytes: size * GiB, osType: text(defProps.osType, "Linux"), hyperVGeneration: text(defProps.hyperVGeneration, "V1") };
  }
  const unique = typeof ref.communityGalleryImageId === "string" ? ref.communityGalleryImageId : ref.sharedGalleryImageId;
  const kind = typeof ref.communityGalleryImageId === "string" ? "community" : "shared";
  if (typeof unique !== "string") throw missingProperty(`${target}.id`);
  const m = /^\/(?:Community|Shared)Galleries\/([^/]+)\/Images\/([^/]+)\/Versions\/([^/]+)$/i.exec(unique);
  const found = m
    ? emu.galleryCatalog.find(
        (g) => g.kind === kind && g.gallery.toLowerCase() === (m[1] ?? "").toLowerCase() && g.image.toLowerCase() === (m[2] ?? "").toLowerCase() &&
          g.version === m[3] && normalizeLocation(g.location) === location,
      )
    : undefined;
  if (!found) throw invalidParameter(`${target}.${kind}GalleryImageId`, `The ${kind} gallery image version '${unique}' is not available in region '${location}'.`);
  return { sizeBytes: (found.diskSizeGB ?? 30) * GiB, osType: found.osType, hyperVGeneration: found.hyperVGeneration };
}

function vmInstanceView(vm: StoredResource): Json {
  const s = vm.internal as unknown as VmInternal;
  const power: Record<VmInternal["power"], string> = {
    running: "VM running",
    stopped: "VM stopped",
    deallocated: "VM deallocated",
    deallocating: "VM deallocating",
    starting: "VM starting",
    stopping: "VM stopping",
  };
  const statuses: Json[] = [
    { code: "ProvisioningState/succeeded", level: "Info", displayStatus: "Provisioning succeeded", time: new Date().toISOString() },
    { code: `PowerState/${s.power}`, level: "Info", displayStatus: power[s.power] },
  ];
  if (s.generalized) statuses.push({ code: "OSState/generalized", level: "Info", displayStatus: "VM generalized" });
  return { computerName: vm.name, osName: String(props(view(vm)).storageProfile && "") || undefined, statuses };
}

function vmView(vm: StoredResource, expand: string | null): Json {
  const v = view(vm);
  if (expand?.toLowerCase() === "instanceview") {
    v.properties = { ...props(v), instanceView: vmInstanceView(vm) };
  }
  return v;
}

/** What the guest does with a script: its output, whether it failed, and what it changes in the VM. */
interface GuestRun {
  stdout: string;
  stderr: string;
  failed: boolean;
  internal?: Partial<VmInternal>;
  /** Sysprep with /shutdown (or a hung one): the guest agent never reports back. */
  neverCompletes?: boolean;
}

function runInGuest(vm: StoredResource, script: string): GuestRun {
  const fault = (vm.internal as unknown as VmInternal).guestFault;
  if (/waagent\b.*-deprovision/.test(script)) {
    if (fault === "deprovisionFails") {
      return { stdout: "", stderr: "waagent: error: Failed to remove user account: userdel: user azureuser is currently used by process 1234\n", failed: true };
    }
    const out = "WARNING! The waagent service will be stopped.\nWARNING! Cached DHCP leases will be deleted.\nWARNING! root password will be disabled. You will not be able to login as root.\nWARNING! /etc/resolv.conf will NOT be removed, this is a behavior change to earlier versions of Linux Agent.\n";
    return { stdout: out, stderr: "", failed: false, internal: { guestDeprovisioned: true } };
  }
  if (/sysprep(\.exe)?\b.*\/generalize/i.test(script)) {
    if (fault === "sysprepHangs") return { stdout: "", stderr: "", failed: false, neverCompletes: true };
    const shutdown = /\/shutdown/i.test(script);
    return { stdout: "", stderr: "", failed: false, internal: { guestDeprovisioned: true, ...(shutdown ? { power: "stopped" as const } : {}) }, neverCompletes: shutdown };
  }
  const echoed = script
    .split("\n")
    .map((l) => /^\s*(?:echo|Write-Output)\s+["']?(.*?)["']?\s*$/i.exec(l)?.[1])
    .filter((l): l is string => l !== undefined)
    .join("\n");
  const exit = /^\s*exit\s+([1-9]\d*)\s*$/m.exec(script);
  return { stdout: echoed ? `${echoed}\n` : "", stderr: exit ? `exit status ${exit[1] ?? ""}\n` : "", failed: exit !== null };
}

/** The action Run Command (POST .../runCommand): the guest's run in the v1 result format. */
function runCommand(vm: StoredResource, body: Json): { result: Json; internal?: Partial<VmInternal>; neverCompletes?: boolean } {
  const commandId = typeof body.commandId === "string" ? body.commandId : "";
  const script = Array.isArray(body.script) ? (body.script as unknown[]).map(String).join("\n") : "";
  const osType = String(((props(view(vm)).storageProfile as Json).osDisk as Json).osType);
  const run = runInGuest(vm, script);
  const windows = osType === "Windows" || commandId === "RunPowerShellScript";
  const result = windows
    ? windowsResult(run.stdout, run.stderr)
    : run.failed
      ? {
          value: [
            {
              code: "ProvisioningState/failed",
              level: "Error",
              displayStatus: "Provisioning failed",
              message: `Enable failed: failed to execute command: command terminated with exit status=1\n[stdout]\n${run.stdout}\n[stderr]\n${run.stderr}`,
            },
          ],
        }
      : linuxResult(run.stdout);
  return { result, ...(run.internal ? { internal: run.internal } : {}), ...(run.neverCompletes ? { neverCompletes: true } : {}) };
}

const linuxResult = (stdout: string): Json => ({
  value: [
    {
      code: "ProvisioningState/succeeded",
      level: "Info",
      displayStatus: "Provisioning succeeded",
      message: `Enable succeeded: \n[stdout]\n${stdout}\n[stderr]\n\n`,
    },
  ],
});

const windowsResult = (stdout: string, stderr: string): Json => ({
  value: [
    { code: "ComponentStatus/StdOut/succeeded", level: "Info", displayStatus: "Provisioning succeeded", message: stdout },
    { code: "ComponentStatus/StdErr/succeeded", level: "Info", displayStatus: "Provisioning succeeded", message: stderr },
  ],
});

export function registerCompute(emu: Emulator): void {
  const r = emu.router;
  const rg = (req: ArmRequest) => req.params.resourceGroupName ?? "";

  // Resource groups (Microsoft.Resources).
  const RGPATH = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}";
  r.add("PUT", RGPATH, "Microsoft.Resources/subscriptions/resourceGroups/write", (req) => {
    const body = bodyObject(req);
    const location = requireLocation(body);
    const id = resourceGroupId(req.params.subscriptionId ?? "", rg(req));
    const existing = emu.store.get(id);
    if (existing && existing.location !== location) {
      throw new ArmError(409, "InvalidResourceGroupLocation", `Invalid resource group location '${location}'. The Resource group already exists in location '${existing.location ?? ""}'.`);
    }
    const tags = tagsOf(body);
    const group = emu.store.put({
      id: existing?.id ?? id,
      name: rg(req),
      type: "Microsoft.Resources/resourceGroups",
      location,
      ...(tags ? { tags } : {}),
      body: { properties: { provisioningState: "Succeeded" } },
      internal: {},
    });
    return { status: existing ? 200 : 201, body: view(group) };
  });
  r.add("GET", RGPATH, "Microsoft.Resources/subscriptions/resourceGroups/read", (req) => {
    const group = emu.store.get(resourceGroupId(req.params.subscriptionId ?? "", rg(req)));
    if (!group) throw new ArmError(404, "ResourceGroupNotFound", `Resource group '${rg(req)}' could not be found.`);
    return { status: 200, body: view(group) };
  });
  r.add("HEAD", RGPATH, "Microsoft.Resources/subscriptions/resourceGroups/read", (req) => ({
    status: emu.store.get(resourceGroupId(req.params.subscriptionId ?? "", rg(req))) ? 204 : 404,
  }));
  r.add("DELETE", RGPATH, "Microsoft.Resources/subscriptions/resourceGroups/delete", (req) => {
    const id = resourceGroupId(req.params.subscriptionId ?? "", rg(req));
    const group = emu.store.get(id);
    if (!group) return { status: 204 };
    for (const res of emu.store.all()) if (res.id.toLowerCase().startsWith(`${id.toLowerCase()}/`)) emu.store.delete(res.id);
    emu.store.delete(id);
    return { status: 200 };
  });

  // Operation status, for every provider's long-running operations.
  r.add("GET", "/subscriptions/{subscriptionId}/providers/{provider}/locations/{location}/{collection}/{operationId}", "Microsoft.Compute/locations/operations/read", (req) => {
    const op = emu.store.operation(req.params.operationId ?? "");
    if (!op) throw new ArmError(404, "NotFound", `The operation '${req.params.operationId ?? ""}' was not found.`);
    const retry: Record<string, string> = emu.opts.retryAfterSeconds > 0 ? { "retry-after": String(emu.opts.retryAfterSeconds) } : {};
    if (req.url.searchParams.get("monitor") === "true") {
      if (op.status === "InProgress") return { status: 202, headers: { ...retry, location: emu.operationUrl(op, req.apiVersion, true) } };
      if (op.status === "Failed") {
        return { status: 400, body: { error: op.error } };
      }
      if (op.kind === "delete") return { status: 204 };
      return op.result === undefined ? { status: 200 } : { status: 200, body: op.result };
    }
    const body: Json = {
      name: op.id,
      status: op.status,
      startTime: new Date(op.startMs).toISOString(),
      ...(op.endMs !== undefined ? { endTime: new Date(op.endMs).toISOString() } : {}),
      ...(op.error ? { error: op.error } : {}),
      ...(op.status === "Succeeded" && op.kind === "action" && op.result !== undefined ? { properties: { output: op.result } } : {}),
    };
    return { status: 200, body, headers: op.status === "InProgress" ? retry : {} };
  });

  // Managed images.
  const IMG = `${COMPUTE}/images/{name}`;
  r.add("PUT", IMG, "Microsoft.Compute/images/write", async (req) => {
    requireResourceGroup(emu, req.params);
    const existing = emu.store.get(pathId(req));
    const image = await buildImage(emu, req, existing);
    return acceptPut(emu, req, image, { style: "async", existed: Boolean(existing), transient: existing ? "Updating" : "Creating" });
  });
  r.add("PATCH", IMG, "Microsoft.Compute/images/write", (req) => {
    const image = requireResource(emu, pathId(req), IMAGE, rg(req));
    const body = bodyObject(req);
    const tags = tagsOf(body);
    if (tags) image.tags = tags;
    return acceptPut(emu, req, image, { style: "async", existed: true, transient: "Updating" });
  });
  r.add("GET", IMG, "Microsoft.Compute/images/read", (req) => get(emu, req, IMAGE));
  r.add("DELETE", IMG, "Microsoft.Compute/images/delete", (req) => acceptDelete(emu, req, emu.store.get(pathId(req)), "async"));
  r.add("GET", `${COMPUTE}/images`, "Microsoft.Compute/images/read", (req) => list(emu, `${pathId(req)}/`, IMAGE));

  // Disks and snapshots.
  for (const [type, plural] of [[DISK, "disks"], [SNAPSHOT, "snapshots"]] as const) {
    const path = `${COMPUTE}/${plural}/{name}`;
    r.add("PUT", path, `${type}/write`, async (req) => {
      requireResourceGroup(emu, req.params);
      const existing = emu.store.get(pathId(req));
      const { resource, blobAction } = await buildDisk(emu, req, type, existing);
      await blobAction();
      return acceptPut(emu, req, resource, { style: "disk", existed: Boolean(existing), transient: "Updating" });
    });
    r.add("GET", path, `${type}/read`, (req) => get(emu, req, type, diskView));
    r.add("GET", `${COMPUTE}/${plural}`, `${type}/read`, (req) => list(emu, `${pathId(req)}/`, type, diskView));
    r.add("DELETE", path, `${type}/delete`, async (req) => {
      const disk = emu.store.get(pathId(req));
      if (disk) {
        const p = props(view(disk));
        const state = String(p.diskState);
        if (state === "ActiveSAS" || state === "ActiveUpload") {
          throw operationNotAllowed(`Disk '${disk.name}' has an active SAS URI ('${state}'); revoke access before deleting it.`);
        }
        const internal = disk.internal as unknown as DiskInternal;
        if (internal.attachedTo) {
          throw operationNotAllowed(`Disk '${disk.name}' is attached to VM '${internal.attachedTo}'.`);
        }
        await emu.blobs?.deleteBlob(DISK_CONTAINER, internal.blob);
      }
      return acceptDelete(emu, req, disk, "disk");
    });
    r.add("POST", `${path}/beginGetAccess`, `${type}/beginGetAccess/action`, (req) => {
      const disk = requireResource(emu, pathId(req).replace(/\/beginGetAccess$/i, ""), type, rg(req));
      const body = bodyObject(req);
      const access = enumValue("grantAccessData.access", body.access, ["None", "Read", "Write"]);
      const duration = body.durationInSeconds;
      if (typeof duration !== "number" || duration <= 0) throw missingProperty("grantAccessData.durationInSeconds");
      const p = props(view(disk));
      const state = String(p.diskState);
      if (access === "Write" && state !== "ReadyToUpload") {
        throw operationNotAllowed(`Write access can only be granted to a disk in 'ReadyToUpload' state; disk '${disk.name}' is '${state}'.`);
      }
      if (access === "Read" && (state === "ReadyToUpload" || state === "ActiveUpload")) {
        throw operationNotAllowed(`Read access cannot be granted to disk '${disk.name}' while it is '${state}'.`);
      }
      if ((disk.internal as unknown as DiskInternal).attachedTo && state !== "Reserved") {
        const vm = emu.store.get((disk.internal as unknown as DiskInternal).attachedTo ?? "");
        if (vm && (vm.internal as unknown as VmInternal).power !== "deallocated") {
          throw operationNotAllowed(`Disk '${disk.name}' is attached to a VM that is not deallocated.`);
        }
      }
      const blob = (disk.internal as unknown as DiskInternal).blob;
      const sas = emu.blobs?.sasUrl(DISK_CONTAINER, blob, access === "Write" ? "rw" : "r", duration) ?? "";
      const newState = access === "Write" ? "ActiveUpload" : "ActiveSAS";
      return acceptAction(emu, req, disk, { style: "disk", result: { accessSAS: sas }, completion: { properties: { diskState: newState } } });
    });
    r.add("POST", `${path}/endGetAccess`, `${type}/endGetAccess/action`, (req) => {
      const disk = requireResource(emu, pathId(req).replace(/\/endGetAccess$/i, ""), type, rg(req));
      const state = String(props(view(disk)).diskState);
      const internal = disk.internal as unknown as DiskInternal;
      const next = state === "ActiveUpload" ? "Unattached" : state === "ActiveSAS" ? (internal.attachedTo ? "Reserved" : "Unattached") : state;
      return acceptAction(emu, req, disk, { style: "disk", completion: { properties: { diskState: next } } });
    });
  }

  // Virtual machines (created through the admin API; ARM here reads and operates them).
  const VMPATH = `${COMPUTE}/virtualMachines/{name}`;
  const vmOf = (req: ArmRequest, suffix = "") =>
    requireResource(emu, pathId(req).slice(0, suffix ? -suffix.length : undefined), VM, rg(req));
  r.add("GET", VMPATH, "Microsoft.Compute/virtualMachines/read", (req) => {
    emu.store.settle();
    return { status: 200, body: vmView(vmOf(req), req.url.searchParams.get("$expand")) };
  });
  r.add("GET", `${VMPATH}/instanceView`, "Microsoft.Compute/virtualMachines/instanceView/read", (req) => {
    emu.store.settle();
    return { status: 200, body: vmInstanceView(vmOf(req, "/instanceView")) };
  });
  r.add("GET", `${COMPUTE}/virtualMachines`, "Microsoft.Compute/virtualMachines/read", (req) => list(emu, `${pathId(req)}/`, VM));
  const power = (action: string, from: (s: VmInternal, vm: StoredResource) => void, transient: VmInternal["power"], final: VmInternal["power"]) => {
    r.add("POST", `${VMPATH}/${action}`, `Microsoft.Compute/virtualMachines/${action}/action`, (req) => {
      const vm = vmOf(req, `/${action}`);
      emu.store.settle();
      const state = vm.internal as unknown as VmInternal;
      from(state, vm);
      state.power = transient;
      emu.store.save();
      return acceptAction(emu, req, vm, { completion: { internal: { power: final } } });
    });
  };
  power("deallocate", () => undefined, "deallocating", "deallocated");
  power("powerOff", () => undefined, "stopping", "stopped");
  power("start", (s, vm) => {
    if (s.generalized) throw operationNotAllowed(`Operation 'start' is not allowed on VM '${vm.name}' since the VM is generalized.`);
  }, "starting", "running");
  power("restart", (s, vm) => {
    if (s.generalized) throw operationNotAllowed(`Operation 'restart' is not allowed on VM '${vm.name}' since the VM is generalized.`);
    if (s.power !== "running") throw operationNotAllowed(`Operation 'restart' is not allowed on VM '${vm.name}' since the VM is not running.`);
  }, "starting", "running");
  r.add("POST", `${VMPATH}/generalize`, "Microsoft.Compute/virtualMachines/generalize/action", (req) => {
    const vm = vmOf(req, "/generalize");
    emu.store.settle();
    const state = vm.internal as unknown as VmInternal;
    if (state.power !== "stopped" && state.power !== "deallocated") {
      throw operationNotAllowed(`Operation 'generalize' is not allowed on VM '${vm.name}' since the VM is ${state.power}. Please stop (deallocate) the VM and retry.`);
    }
    state.generalized = true;
    emu.store.save();
    return { status: 200 };
  });
  r.add("POST", `${VMPATH}/runCommand`, "Microsoft.Compute/virtualMachines/runCommand/action", (req) => {
    const vm = vmOf(req, "/runCommand");
    emu.store.settle();
    const body = bodyObject(req);
    enumValue("parameters.commandId", body.commandId, ["RunShellScript", "RunPowerShellScript", "ifconfig", "IPConfig", "EnableRemotePS", "EnableAdminAccount", "ResetRDPCert", "SetRDPPort", "RDPSettings"]);
    const state = vm.internal as unknown as VmInternal;
    if (state.power !== "running") {
      throw new ArmError(409, "OperationNotAllowed", `Cannot run commands on VM '${vm.name}' because it is ${state.power}.`);
    }
    const outcome = runCommand(vm, body);
    if (outcome.neverCompletes) {
      // Sysprep /shutdown stops the VM before the agent can report: the command times out after 90 minutes.
      Object.assign(state, outcome.internal);
      emu.store.save();
      return acceptAction(emu, req, vm, {
        durationMs: 90 * 60_000,
        result: outcome.result,
      });
    }
    return acceptAction(emu, req, vm, { result: outcome.result, completion: { internal: outcome.internal ?? {} } });
  });
  // Managed Run Command (virtualMachines/runCommands): a named child resource, so a client that lost
  // track of one finds it again with a GET. Its instance view says how the script is doing.
  const RC = `${VMPATH}/runCommands/{runCommandName}`;
  const RC_TYPE = "Microsoft.Compute/virtualMachines/runCommands";
  const vmOfRunCommand = (req: ArmRequest) => requireResource(emu, pathId(req).replace(/\/runCommands\/[^/]+$/i, ""), VM, rg(req));
  const runCommandView = (rc: StoredResource, expand: string | null): Json => {
    const v = view(rc);
    if (expand?.toLowerCase() !== "instanceview") return v;
    const run = rc.internal as unknown as { run: GuestRun; startMs: number; endMs: number | null };
    const done = run.endMs !== null && Date.now() >= run.endMs;
    const state = !done ? "Running" : run.run.failed ? "Failed" : "Succeeded";
    v.properties = {
      ...props(v),
      instanceView: {
        executionState: state,
        executionMessage: done ? (run.run.failed ? "Execution failed" : "Execution completed") : "Execution in progress",
        ...(done ? { exitCode: run.run.failed ? 1 : 0, endTime: new Date(run.endMs ?? 0).toISOString() } : {}),
        output: run.run.stdout,
        error: run.run.stderr,
        startTime: new Date(run.startMs).toISOString(),
      },
    };
    return v;
  };
  r.add("PUT", RC, `${RC_TYPE}/write`, (req) => {
    const vm = vmOfRunCommand(req);
    emu.store.settle();
    const body = bodyObject(req);
    const location = requireLocation(body);
    const p = props(body);
    const source = isObject(p.source) ? p.source : undefined;
    if (typeof source?.script !== "string" && typeof source?.commandId !== "string") throw missingProperty("properties.source.script");
    const state = vm.internal as unknown as VmInternal;
    if (state.power !== "running") {
      throw new ArmError(409, "OperationNotAllowed", `Cannot run commands on VM '${vm.name}' because it is ${state.power}.`);
    }
    const existing = emu.store.get(pathId(req));
    const run = runInGuest(vm, typeof source.script === "string" ? source.script : "");
    Object.assign(state, run.internal ?? {});
    const startMs = Date.now();
    const resource: StoredResource = {
      id: existing?.id ?? pathId(req),
      name: req.params.runCommandName ?? "",
      type: RC_TYPE,
      location,
      ...(tagsOf(body) ? { tags: tagsOf(body) } : {}),
      body: { properties: { source, asyncExecution: p.asyncExecution === true, timeoutInSeconds: typeof p.timeoutInSeconds === "number" ? p.timeoutInSeconds : 0, treatFailureAsDeploymentFailure: p.treatFailureAsDeploymentFailure === true } },
      internal: { run, startMs, endMs: run.neverCompletes ? null : startMs + emu.opts.operationDurationMs },
    };
    emu.store.save();
    return acceptPut(emu, req, resource, { style: "async", existed: Boolean(existing), transient: existing ? "Updating" : "Creating" });
  });
  r.add("GET", RC, `${RC_TYPE}/read`, (req) => {
    emu.store.settle();
    const rc = requireResource(emu, pathId(req), RC_TYPE, rg(req));
    return { status: 200, body: runCommandView(rc, req.url.searchParams.get("$expand")) };
  });
  r.add("DELETE", RC, `${RC_TYPE}/delete`, (req) => acceptDelete(emu, req, emu.store.get(pathId(req)), "async"));

  r.add("DELETE", VMPATH, "Microsoft.Compute/virtualMachines/delete", (req) => {
    const vm = emu.store.get(pathId(req));
    if (vm) {
      for (const d of emu.store.all()) {
        const internal = d.internal as Partial<DiskInternal>;
        if (d.type === DISK && internal.attachedTo?.toLowerCase() === vm.id.toLowerCase()) {
          delete internal.attachedTo;
          d.body.properties = { ...d.body.properties, diskState: "Unattached" };
        }
      }
    }
    return acceptDelete(emu, req, vm, "location");
  });
}

/** Creates a VM with an OS disk and `dataDisks` data disks, each a small fixed VHD in the blob store. */
export async function seedVirtualMachine(
  emu: Emulator,
  spec: {
    subscriptionId: string;
    resourceGroup: string;
    name: string;
    location: string;
    osType: "Linux" | "Windows";
    dataDisks?: number;
    diskSizeMiB?: number;
    power?: VmInternal["power"];
    guestFault?: VmInternal["guestFault"];
  },
): Promise<Json> {
  const location = normalizeLocation(spec.location);
  const rgId = resourceGroupId(spec.subscriptionId, spec.resourceGroup);
  if (!emu.store.get(rgId)) {
    emu.store.put({ id: rgId, name: spec.resourceGroup, type: "Microsoft.Resources/resourceGroups", location, body: { properties: { provisioningState: "Succeeded" } }, internal: {} });
  }
  const vmId = `${rgId}/providers/${VM}/${spec.name}`;
  const sizeBytes = (spec.diskSizeMiB ?? 32) * MiB;
  const makeDisk = async (diskName: string, osType?: string): Promise<string> => {
    const id = `${rgId}/providers/${DISK}/${diskName}`;
    const uniqueId = randomUUID();
    await emu.blobs?.createVhd(DISK_CONTAINER, uniqueId, sizeBytes);
    emu.store.put({
      id,
      name: diskName,
      type: DISK,
      location,
      body: {
        sku: { name: "Premium_LRS", tier: "Premium" },
        managedBy: vmId,
        properties: {
          ...(osType ? { osType, hyperVGeneration: "V2" } : {}),
          creationData: { createOption: osType ? "FromImage" : "Empty" },
          diskSizeGB: Math.ceil(sizeBytes / GiB),
          diskSizeBytes: sizeBytes,
          uniqueId,
          timeCreated: new Date().toISOString(),
          diskState: "Attached",
          provisioningState: "Succeeded",
        },
      },
      internal: { blob: uniqueId, attachedTo: vmId },
    });
    return id;
  };
  const osDiskId = await makeDisk(`${spec.name}_OsDisk_1`, spec.osType);
  const dataDisks: Json[] = [];
  for (let lun = 0; lun < (spec.dataDisks ?? 0); lun++) {
    const id = await makeDisk(`${spec.name}_DataDisk_${lun}`);
    dataDisks.push({ lun, name: id.split("/").pop(), createOption: "Empty", caching: "None", managedDisk: { id, storageAccountType: "Premium_LRS" }, diskSizeGB: Math.ceil(sizeBytes / GiB) });
  }
  const vm: StoredResource = {
    id: vmId,
    name: spec.name,
    type: VM,
    location,
    body: {
      properties: {
        vmId: randomUUID(),
        hardwareProfile: { vmSize: "Standard_D2s_v3" },
        storageProfile: {
          osDisk: {
            osType: spec.osType,
            name: osDiskId.split("/").pop(),
            createOption: "FromImage",
            caching: "ReadWrite",
            managedDisk: { id: osDiskId, storageAccountType: "Premium_LRS" },
            diskSizeGB: Math.ceil(sizeBytes / GiB),
          },
          dataDisks,
        },
        osProfile: { computerName: spec.name, adminUsername: "azureuser" },
        provisioningState: "Succeeded",
      },
    },
    internal: { power: spec.power ?? "running", generalized: false, guestDeprovisioned: false, ...(spec.guestFault ? { guestFault: spec.guestFault } : {}) } satisfies VmInternal,
  };
  emu.store.put(vm);
  return view(vm);
}

export { parseResourceId, resourceNotFound };
