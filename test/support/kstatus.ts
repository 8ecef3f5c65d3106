import type { KubernetesObject } from "@kubernetes/client-node";

export type KStatus = "InProgress" | "Current" | "Failed" | "Terminating";

export interface WithConditions extends KubernetesObject {
  status?: { observedGeneration?: number; conditions?: Array<{ type: string; status: string }> };
}

/**
 * kstatus's verdict for a custom resource, as Flux (and `kubectl wait`-style tools built on
 * sigs.k8s.io/cli-utils/pkg/kstatus) compute it for kinds they have no special rules for: Terminating
 * while deleted; InProgress while status.observedGeneration is behind metadata.generation; then the
 * first of Reconciling=True (InProgress) or Stalled=True (Failed) in the condition list; else Current.
 * kstatus does not read Ready for such kinds, which is why the controllers never leave Ready=False
 * without Reconciling or Stalled.
 */
export function kstatus(obj: WithConditions): KStatus {
  if (obj.metadata?.deletionTimestamp) return "Terminating";
  const observed = obj.status?.observedGeneration;
  if (observed !== undefined && observed !== obj.metadata?.generation) return "InProgress";
  for (const c of obj.status?.conditions ?? []) {
    if (c.type === "Reconciling" && c.status === "True") return "InProgress";
    if (c.type === "Stalled" && c.status === "True") return "Failed";
  }
  return "Current";
}
