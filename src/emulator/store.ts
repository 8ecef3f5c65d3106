import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ArmErrorBody, idKey } from "./arm.ts";

/** A resource as the emulator keeps it: what ARM shows, plus state only the emulator sees. */
export interface StoredResource {
  id: string;
  name: string;
  type: string;
  location?: string;
  tags?: Record<string, string>;
  /** Everything else ARM returns at the top level (properties, sku, plan, zones...). */
  body: Record<string, unknown> & { properties?: Record<string, unknown> };
  /** Emulator-only state: a VM's guest, a disk's blob, replication start times. */
  internal: Record<string, unknown>;
}

/** What happens to the target resource when an operation completes successfully. */
export interface Completion {
  /** Set properties.provisioningState (the PUT/PATCH case). */
  provisioningState?: string;
  /** Remove the resource (the DELETE case). */
  remove?: boolean;
  /** Merge into the resource's internal state (VM power state and the like). */
  internal?: Record<string, unknown>;
  /** Merge into the resource's properties. */
  properties?: Record<string, unknown>;
  /** On failure, the state the resource is left in. */
  failedProvisioningState?: string;
}

export interface Operation {
  id: string;
  subscription: string;
  location: string;
  /** Path segment of the status URL: operations, DiskOperations, capsOperations. */
  collection: string;
  kind: "put" | "patch" | "delete" | "action";
  startMs: number;
  doneAtMs: number;
  status: "InProgress" | "Succeeded" | "Failed";
  resourceId?: string;
  completion?: Completion;
  /** The body the Location monitor returns when a POST action succeeds. */
  result?: unknown;
  /** An injected failure: the operation ends Failed with this error. */
  failWith?: ArmErrorBody;
  error?: ArmErrorBody;
  endMs?: number;
}

interface Snapshot {
  resources: StoredResource[];
  operations: Operation[];
  agreements: Record<string, unknown>;
}

/**
 * Resources and long-running operations, by case-insensitive id. With a state folder, every change is
 * written through (atomically), so a restarted emulator still knows its resources and in-flight
 * operations and a client can resume polling them.
 */
export class Store {
  private readonly resources = new Map<string, StoredResource>();
  private readonly operations = new Map<string, Operation>();
  readonly agreements = new Map<string, unknown>();
  private readonly file: string | undefined;

  constructor(stateDir?: string) {
    this.file = stateDir ? join(stateDir, "arm-state.json") : undefined;
    if (this.file && existsSync(this.file)) {
      const snap = JSON.parse(readFileSync(this.file, "utf8")) as Snapshot;
      for (const r of snap.resources) this.resources.set(idKey(r.id), r);
      for (const o of snap.operations) this.operations.set(o.id, o);
      for (const [k, v] of Object.entries(snap.agreements)) this.agreements.set(k, v);
    }
  }

  get(id: string): StoredResource | undefined {
    return this.resources.get(idKey(id));
  }

  put(resource: StoredResource): StoredResource {
    this.resources.set(idKey(resource.id), resource);
    this.save();
    return resource;
  }

  delete(id: string): boolean {
    const deleted = this.resources.delete(idKey(id));
    if (deleted) this.save();
    return deleted;
  }

  /** Resources whose id starts with `prefix` and whose type is `type`. */
  list(prefix: string, type: string): StoredResource[] {
    const p = idKey(prefix);
    return [...this.resources.values()].filter(
      (r) => idKey(r.id).startsWith(p) && r.type.toLowerCase() === type.toLowerCase(),
    );
  }

  all(): StoredResource[] {
    return [...this.resources.values()];
  }

  startOperation(op: Omit<Operation, "id" | "status" | "startMs">): Operation {
    const full: Operation = { ...op, id: randomUUID(), status: "InProgress", startMs: Date.now() };
    this.operations.set(full.id, full);
    this.save();
    this.settle();
    return this.operations.get(full.id) ?? full;
  }

  operation(id: string): Operation | undefined {
    this.settle();
    return this.operations.get(id);
  }

  /** Completes every operation whose time has come, applying its effect on the resource. */
  settle(now = Date.now()): void {
    let changed = false;
    for (const op of this.operations.values()) {
      if (op.status !== "InProgress" || op.doneAtMs > now) continue;
      changed = true;
      op.endMs = now;
      const target = op.resourceId ? this.resources.get(idKey(op.resourceId)) : undefined;
      if (op.failWith) {
        op.status = "Failed";
        op.error = op.failWith;
        if (target && op.completion?.failedProvisioningState) {
          target.body.properties = { ...target.body.properties, provisioningState: op.completion.failedProvisioningState };
        }
        continue;
      }
      op.status = "Succeeded";
      const c = op.completion;
      if (!c || !op.resourceId) continue;
      if (c.remove) {
        this.resources.delete(idKey(op.resourceId));
        continue;
      }
      if (!target) continue;
      if (c.provisioningState || c.properties) {
        target.body.properties = {
          ...target.body.properties,
          ...c.properties,
          ...(c.provisioningState ? { provisioningState: c.provisioningState } : {}),
        };
      }
      if (c.internal) target.internal = { ...target.internal, ...c.internal };
    }
    // Finished operations are kept for an hour, as status URLs stay valid for a while in Azure.
    for (const [id, op] of this.operations) {
      if (op.endMs !== undefined && now - op.endMs > 3_600_000) this.operations.delete(id);
    }
    if (changed) this.save();
  }

  /** Writes the state through to disk; call after changing a resource in place. */
  save(): void {
    if (!this.file) return;
    const snap: Snapshot = {
      resources: [...this.resources.values()],
      operations: [...this.operations.values()],
      agreements: Object.fromEntries(this.agreements),
    };
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(snap));
    renameSync(tmp, this.file);
  }
}
