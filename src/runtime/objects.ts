import type { KubernetesObject } from "@kubernetes/client-node";
import { createMergePatch } from "./merge-patch.ts";
import { JSON_PATCH, MERGE_PATCH, objectPath, type KubeClient, type ResourceRef } from "./kube-client.ts";

export interface WithStatus<S> extends KubernetesObject {
  status?: S;
}

function pathOf(ref: ResourceRef, obj: KubernetesObject, sub?: string): string {
  return objectPath(ref, obj.metadata?.namespace, obj.metadata?.name ?? "", sub);
}

/**
 * Writes `status` to the `/status` subresource when it differs from what `obj` (the cached copy the
 * reconcile started from) carries, as a merge patch of just the differences. The patch names the
 * object's resourceVersion, so a write based on a stale read fails with 409 Conflict instead of
 * overwriting a newer status; the controller retries with a fresh read. Returns the updated object,
 * or undefined when nothing changed and nothing was sent.
 */
export async function updateStatus<S, T extends WithStatus<S>>(
  client: KubeClient,
  ref: ResourceRef,
  obj: T,
  status: S,
): Promise<T | undefined> {
  const diff = createMergePatch(obj.status ?? {}, status);
  if (diff === undefined) return undefined;
  const patch = { metadata: { resourceVersion: obj.metadata?.resourceVersion }, status: diff };
  return client.patch<T>(pathOf(ref, obj, "status"), patch, MERGE_PATCH);
}

/** A JSON Patch that applies only if the object is still at `obj`'s resourceVersion. */
function guarded(obj: KubernetesObject, ops: unknown[]): unknown[] {
  return [{ op: "test", path: "/metadata/resourceVersion", value: obj.metadata?.resourceVersion }, ...ops];
}

export function hasFinalizer(obj: KubernetesObject, finalizer: string): boolean {
  return obj.metadata?.finalizers?.includes(finalizer) ?? false;
}

/**
 * Adds `finalizer` with a JSON Patch guarded by a `test` of the resourceVersion: if anyone changed
 * the object since it was read, the patch fails (422) rather than clobbering their finalizers.
 * Returns the updated object, or undefined when the finalizer was already there.
 */
export async function addFinalizer<T extends KubernetesObject>(
  client: KubeClient,
  ref: ResourceRef,
  obj: T,
  finalizer: string,
): Promise<T | undefined> {
  if (hasFinalizer(obj, finalizer)) return undefined;
  const op = obj.metadata?.finalizers
    ? { op: "add", path: "/metadata/finalizers/-", value: finalizer }
    : { op: "add", path: "/metadata/finalizers", value: [finalizer] };
  return client.patch<T>(pathOf(ref, obj), guarded(obj, [op]), JSON_PATCH);
}

/** Removes `finalizer`, guarded like addFinalizer. Returns undefined when it was not there. */
export async function removeFinalizer<T extends KubernetesObject>(
  client: KubeClient,
  ref: ResourceRef,
  obj: T,
  finalizer: string,
): Promise<T | undefined> {
  const i = obj.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (i < 0) return undefined;
  const ops = [
    { op: "test", path: `/metadata/finalizers/${i}`, value: finalizer },
    { op: "remove", path: `/metadata/finalizers/${i}` },
  ];
  return client.patch<T>(pathOf(ref, obj), guarded(obj, ops), JSON_PATCH);
}

export function getAnnotation(obj: KubernetesObject, key: string): string | undefined {
  return obj.metadata?.annotations?.[key];
}

/**
 * Sets (or, with undefined, removes) annotations with one merge patch guarded by the resourceVersion.
 * Returns the updated object, or undefined when nothing would change.
 */
export async function setAnnotations<T extends KubernetesObject>(
  client: KubeClient,
  ref: ResourceRef,
  obj: T,
  annotations: Record<string, string | undefined>,
): Promise<T | undefined> {
  const current = obj.metadata?.annotations ?? {};
  const changes: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(annotations)) {
    if (v === undefined ? k in current : current[k] !== v) changes[k] = v ?? null;
  }
  if (Object.keys(changes).length === 0) return undefined;
  const patch = { metadata: { resourceVersion: obj.metadata?.resourceVersion, annotations: changes } };
  return client.patch<T>(pathOf(ref, obj), patch, MERGE_PATCH);
}
