import { ArmError } from "../arm.ts";
import type { Emulator, Fault } from "../emulator.ts";
import type { ClientRegistration } from "../identity.ts";
import type { BucketConfig, RequestClass } from "../throttle.ts";
import { bodyObject, type Json } from "./common.ts";
import { seedVirtualMachine, type VmInternal } from "./compute.ts";
import type { CatalogImage, GalleryCatalogImage } from "./marketplace.ts";

/**
 * The test-control API under /admin (not part of ARM, no authentication: the emulator listens on
 * loopback only): seed VMs, catalog entries and app registrations, inject faults, change timings and
 * throttling, read counters.
 */
export function registerAdmin(emu: Emulator): void {
  const r = emu.router;
  const field = (body: Json, name: string): string => {
    const value = body[name];
    if (typeof value !== "string" || value === "") throw new ArmError(400, "InvalidParameter", `'${name}' is required.`, { target: name });
    return value;
  };

  r.add("GET", "/admin/info", "admin/read", () => ({
    status: 200,
    body: { armEndpoint: emu.baseUrl, authorityHost: emu.baseUrl, blobEndpoint: emu.blobs?.endpoint, caFile: emu.tls.caFile },
  }));
  r.add("POST", "/admin/clients", "admin/write", (req) => {
    const body = bodyObject(req) as unknown as ClientRegistration;
    field(body as unknown as Json, "tenantId");
    field(body as unknown as Json, "clientId");
    emu.identity.register(body);
    return { status: 204 };
  });
  r.add("POST", "/admin/virtualMachines", "admin/write", async (req) => {
    const body = bodyObject(req);
    const vm = await seedVirtualMachine(emu, {
      subscriptionId: field(body, "subscriptionId"),
      resourceGroup: field(body, "resourceGroup"),
      name: field(body, "name"),
      location: field(body, "location"),
      osType: field(body, "osType") as "Linux" | "Windows",
      ...(typeof body.dataDisks === "number" ? { dataDisks: body.dataDisks } : {}),
      ...(typeof body.diskSizeMiB === "number" ? { diskSizeMiB: body.diskSizeMiB } : {}),
      ...(typeof body.power === "string" ? { power: body.power as VmInternal["power"] } : {}),
      ...(body.guestFault === "deprovisionFails" || body.guestFault === "sysprepHangs" ? { guestFault: body.guestFault } : {}),
    });
    return { status: 201, body: vm };
  });
  r.add("GET", "/admin/virtualMachines/{name}", "admin/read", (req) => {
    const vm = emu.store.all().find((x) => x.type === "Microsoft.Compute/virtualMachines" && x.name.toLowerCase() === (req.params.name ?? "").toLowerCase());
    if (!vm) throw new ArmError(404, "NotFound", "no such VM");
    emu.store.settle();
    return { status: 200, body: { id: vm.id, ...vm.internal } };
  });
  r.add("POST", "/admin/catalog/marketplace", "admin/write", (req) => {
    emu.catalog.push(bodyObject(req) as unknown as CatalogImage);
    return { status: 204 };
  });
  r.add("POST", "/admin/catalog/galleries", "admin/write", (req) => {
    emu.galleryCatalog.push(bodyObject(req) as unknown as GalleryCatalogImage);
    return { status: 204 };
  });
  r.add("POST", "/admin/faults", "admin/write", (req) => {
    const body = bodyObject(req) as unknown as Fault;
    field(body as unknown as Json, "operation");
    return { status: 201, body: { id: emu.addFault(body) } };
  });
  r.add("DELETE", "/admin/faults", "admin/write", () => {
    emu.clearFaults();
    return { status: 204 };
  });
  r.add("PUT", "/admin/settings", "admin/write", (req) => {
    const body = bodyObject(req);
    for (const k of ["operationDurationMs", "retryAfterSeconds", "replicationDurationMs"] as const) {
      if (typeof body[k] === "number") emu.opts[k] = body[k];
    }
    if (body.throttling !== undefined || body.limits !== undefined) {
      const limits = (body.limits ?? {}) as Partial<Record<RequestClass, BucketConfig>>;
      emu.setThrottleLimits(limits, typeof body.throttling === "boolean" ? body.throttling : undefined);
    }
    return { status: 204 };
  });
  r.add("GET", "/admin/counters", "admin/read", () => ({ status: 200, body: Object.fromEntries(emu.counters) }));
  r.add("DELETE", "/admin/counters", "admin/write", () => {
    emu.counters.clear();
    return { status: 204 };
  });
}
