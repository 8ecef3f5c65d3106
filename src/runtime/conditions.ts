export type ConditionStatus = "True" | "False" | "Unknown";

/** A status condition as Kubernetes API conventions (and kstatus) define it. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export const READY = "Ready";
export const RECONCILING = "Reconciling";
export const STALLED = "Stalled";

/** Kubernetes timestamps have whole seconds (RFC 3339, `Z`). */
export function timestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * Returns `conditions` with `update` applied, stamped with `generation`. lastTransitionTime moves only
 * when the status flips, so a condition re-asserted on every reconcile keeps the time it became true.
 * The input is not modified.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  generation: number | undefined,
  now: number = Date.now(),
): Condition[] {
  const list = [...(conditions ?? [])];
  const i = list.findIndex((c) => c.type === update.type);
  const existing = i >= 0 ? list[i] : undefined;
  const next: Condition = {
    type: update.type,
    status: update.status,
    ...(generation === undefined ? {} : { observedGeneration: generation }),
    lastTransitionTime:
      existing && existing.status === update.status ? existing.lastTransitionTime : timestamp(now),
    reason: update.reason,
    message: update.message,
  };
  if (i >= 0) list[i] = next;
  else list.push(next);
  return list;
}

export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type);
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** The three states kstatus reads from an object's conditions. */
export type Health =
  | { state: "ready"; reason: string; message: string }
  | { state: "reconciling"; reason: string; message: string }
  | { state: "stalled"; reason: string; message: string };

/**
 * Sets the kstatus trio from one verdict: `Ready` is always present; `Reconciling` and `Stalled` are
 * present only while true (abnormal-true conditions), as kstatus and GitOps health checks read them.
 */
export function setHealth(
  conditions: readonly Condition[] | undefined,
  health: Health,
  generation: number | undefined,
  now: number = Date.now(),
): Condition[] {
  const { reason, message } = health;
  let list = setCondition(
    conditions,
    { type: READY, status: health.state === "ready" ? "True" : "False", reason, message },
    generation,
    now,
  );
  list =
    health.state === "reconciling"
      ? setCondition(list, { type: RECONCILING, status: "True", reason, message }, generation, now)
      : removeCondition(list, RECONCILING);
  list =
    health.state === "stalled"
      ? setCondition(list, { type: STALLED, status: "True", reason, message }, generation, now)
      : removeCondition(list, STALLED);
  return list;
}
