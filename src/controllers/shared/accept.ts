import { FINALIZER } from "../../api/group.ts";
import { setHealth, type Condition, type Health } from "../../runtime/conditions.ts";
import type { KubeClient, ResourceRef } from "../../runtime/kube-client.ts";
import { jitter } from "../../runtime/backoff.ts";
import { addFinalizer, updateStatus, type WithStatus } from "../../runtime/objects.ts";

interface BasicStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

/** Writes `health` with the object's generation observed, the rest of its status kept; returns the updated object. */
async function writeHealth<T extends WithStatus<BasicStatus>>(kube: KubeClient, ref: ResourceRef, obj: T, health: Health): Promise<T> {
  const generation = obj.metadata?.generation;
  const status: BasicStatus = {
    ...structuredClone(obj.status ?? {}),
    observedGeneration: generation,
    conditions: setHealth(obj.status?.conditions, health, generation),
  };
  return (await updateStatus(kube, ref, obj, status)) ?? obj;
}

/**
 * The first pass over a new object: status says at once that the controller has seen it
 * (Reconciling=True with its generation observed), so that kstatus (Flux) and Argo CD report it in
 * progress rather than current, then the finalizer is added. Both writes are guarded by the
 * resourceVersion; the second starts from what the first returned.
 */
export async function acceptObject(kube: KubeClient, ref: ResourceRef, obj: WithStatus<BasicStatus>, kind: string): Promise<void> {
  const written = await writeHealth(kube, ref, obj, { state: "reconciling", reason: "Accepted", message: `The controller has seen this ${kind} and is starting work on it.` });
  await addFinalizer(kube, ref, written, FINALIZER);
}

/**
 * Writes Stalled (with Ready=False) for a problem found before any work could start, such as
 * credentials that cannot be used; the object is looked at again after `recheckMs`.
 */
export async function reportStalled(kube: KubeClient, ref: ResourceRef, obj: WithStatus<BasicStatus & { lastError?: unknown }>, reason: string, message: string, recheckMs: number): Promise<{ requeueAfterMs: number }> {
  await writeHealth(kube, ref, obj, { state: "stalled", reason, message });
  return { requeueAfterMs: recheckMs };
}

/**
 * When to look at an object again after a pass. A Ready object is observed again after the drift
 * period, and a Stalled one re-checked as often (its cause may be fixed outside Kubernetes: terms
 * accepted, a Secret created); both jittered by up to 10% so objects applied together do not come due
 * together. These requeues are the only periodic work: the informers do not resync, which would observe
 * every object a second time per period.
 */
export function nextPass(health: Health, requeueAfterMs: number | undefined, driftCheckMs: number): { requeueAfterMs: number } | undefined {
  if (health.state === "ready" || health.state === "stalled") return { requeueAfterMs: jitter(requeueAfterMs ?? driftCheckMs) };
  return requeueAfterMs === undefined ? undefined : { requeueAfterMs };
}
