import { ArmError, idKey, missingProperty, normalizeLocation, resourceGroupId, resourceGroupNotFound, resourceNotFound } from "../arm.ts";
import { injectedLroFailure, type Emulator, type LroStart } from "../emulator.ts";
import type { ArmRequest, ArmResponse } from "../http.ts";
import type { Completion, StoredResource } from "../store.ts";

export const RG = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}";
export const COMPUTE = `${RG}/providers/Microsoft.Compute`;

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** The request body as an object, or ARM's 400 for anything else. */
export function bodyObject(req: ArmRequest): Json {
  if (!isObject(req.body)) {
    throw new ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.");
  }
  return req.body;
}

export function props(v: unknown): Json {
  return isObject(v) && isObject(v.properties) ? v.properties : {};
}

/** The resource group must exist for anything to be created in it. */
export function requireResourceGroup(emu: Emulator, params: Record<string, string>): StoredResource {
  const rg = emu.store.get(resourceGroupId(params.subscriptionId ?? "", params.resourceGroupName ?? ""));
  if (!rg) throw resourceGroupNotFound(params.resourceGroupName ?? "");
  return rg;
}

/** The id of the resource addressed by the request path, in the caller's casing. */
export function pathId(req: ArmRequest): string {
  return req.url.pathname.replace(/\/$/, "");
}

export function requireResource(emu: Emulator, id: string, type: string, resourceGroup: string): StoredResource {
  const r = emu.store.get(id);
  if (!r || r.type.toLowerCase() !== type.toLowerCase()) throw resourceNotFound(type, id.split("/").pop() ?? "", resourceGroup);
  return r;
}

export function requireLocation(body: Json): string {
  if (typeof body.location !== "string" || body.location === "") throw missingProperty("location");
  return normalizeLocation(body.location);
}

/** The ARM view of a stored resource. */
export function view(r: StoredResource): Json {
  return {
    name: r.name,
    id: r.id,
    type: r.type,
    ...(r.location ? { location: r.location } : {}),
    ...(r.tags ? { tags: r.tags } : {}),
    ...structuredClone(r.body),
  };
}

export function tagsOf(body: Json): Record<string, string> | undefined {
  return isObject(body.tags) ? (body.tags as Record<string, string>) : undefined;
}

/**
 * Stores a created or replaced resource and answers as the resource provider does: a long-running
 * operation whose completion sets provisioningState to Succeeded.
 */
export function acceptPut(
  emu: Emulator,
  req: ArmRequest,
  resource: StoredResource,
  opts: { style: LroStart["style"]; existed: boolean; transient: string; durationMs?: number; completion?: Completion },
): ArmResponse {
  resource.body.properties = { ...resource.body.properties, provisioningState: opts.transient };
  emu.store.put(resource);
  const failure = injectedLroFailure(req.params);
  const { headers } = emu.startLro({
    kind: "put",
    style: opts.style,
    location: resource.location ?? "global",
    subscription: req.params.subscriptionId ?? "",
    resourceId: resource.id,
    completion: { provisioningState: "Succeeded", failedProvisioningState: "Failed", ...opts.completion },
    apiVersion: req.apiVersion,
    ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}),
    ...(failure ? { failWith: failure } : {}),
  });
  const status = opts.style === "disk" ? 202 : opts.existed ? 200 : 201;
  return { status, body: view(resource), headers };
}

/** Deletes a resource through a long-running operation (204 when it does not exist). */
export function acceptDelete(
  emu: Emulator,
  req: ArmRequest,
  resource: StoredResource | undefined,
  style: LroStart["style"],
): ArmResponse {
  if (!resource) return { status: 204 };
  resource.body.properties = { ...resource.body.properties, provisioningState: "Deleting" };
  emu.store.save();
  const failure = injectedLroFailure(req.params);
  const { headers } = emu.startLro({
    kind: "delete",
    style,
    location: resource.location ?? "global",
    subscription: req.params.subscriptionId ?? "",
    resourceId: resource.id,
    completion: { remove: true, failedProvisioningState: "Failed" },
    apiVersion: req.apiVersion,
    ...(failure ? { failWith: failure } : {}),
  });
  return { status: 202, headers };
}

/** Starts a POST action; the Location monitor returns `result` when it completes. */
export function acceptAction(
  emu: Emulator,
  req: ArmRequest,
  resource: StoredResource,
  opts: { completion?: Completion; result?: unknown; durationMs?: number; style?: LroStart["style"] },
): ArmResponse {
  const failure = injectedLroFailure(req.params);
  const { headers } = emu.startLro({
    kind: "action",
    style: opts.style ?? "location",
    location: resource.location ?? "global",
    subscription: req.params.subscriptionId ?? "",
    resourceId: resource.id,
    ...(opts.completion ? { completion: opts.completion } : {}),
    ...(opts.result !== undefined ? { result: opts.result } : {}),
    ...(opts.durationMs !== undefined ? { durationMs: opts.durationMs } : {}),
    apiVersion: req.apiVersion,
    ...(failure ? { failWith: failure } : {}),
  });
  return { status: 202, headers };
}

export function list(emu: Emulator, prefix: string, type: string, transform: (r: StoredResource) => Json = view): ArmResponse {
  emu.store.settle();
  return { status: 200, body: { value: emu.store.list(prefix, type).map(transform) } };
}

export function get(emu: Emulator, req: ArmRequest, type: string, transform: (r: StoredResource) => Json = view): ArmResponse {
  emu.store.settle();
  return { status: 200, body: transform(requireResource(emu, pathId(req), type, req.params.resourceGroupName ?? "")) };
}

/** Rejects a change to an immutable property of an existing resource. */
export function immutable(name: string, before: unknown, after: unknown): void {
  if (after !== undefined && JSON.stringify(before) !== JSON.stringify(after)) {
    throw new ArmError(409, "PropertyChangeNotAllowed", `Changing property '${name}' is not allowed.`, { target: name });
  }
}

/** True when `id` points at an existing resource of `type`. */
export function exists(emu: Emulator, id: unknown, type: string): boolean {
  return typeof id === "string" && emu.store.get(id)?.type.toLowerCase() === type.toLowerCase();
}

export const keyOf = idKey;
