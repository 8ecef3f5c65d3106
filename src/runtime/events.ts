import { randomBytes } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { realClock, type Clock } from "./clock.ts";
import { timestamp } from "./conditions.ts";
import { describeError } from "./informer.ts";
import { isNotFound, MERGE_PATCH, type KubeClient } from "./kube-client.ts";

export type EventType = "Normal" | "Warning";

interface Seen {
  name: string;
  namespace: string;
  count: number;
  lastMs: number;
}

/**
 * Records core/v1 Events about objects, as client-go's recorder does: a repeat of the same event
 * (object, type, reason, message) within `aggregateWindowMs` bumps the count and lastTimestamp of the
 * existing Event instead of creating a new one, so a reconcile loop that keeps failing the same way
 * leaves one Event with a growing count. Recording never throws: a failure is logged and dropped.
 */
export class EventRecorder {
  private readonly client: KubeClient;
  private readonly component: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly aggregateWindowMs: number;
  private readonly seen = new Map<string, Seen>();

  constructor(client: KubeClient, component: string, log: Logger, opts: { clock?: Clock; aggregateWindowMs?: number } = {}) {
    this.client = client;
    this.component = component;
    this.log = log;
    this.clock = opts.clock ?? realClock;
    this.aggregateWindowMs = opts.aggregateWindowMs ?? 10 * 60_000;
  }

  async record(obj: KubernetesObject, type: EventType, reason: string, message: string): Promise<void> {
    const meta = obj.metadata ?? {};
    const namespace = meta.namespace ?? "default";
    const key = [meta.uid, type, reason, message].join("\u0000");
    const now = this.clock.now();
    this.prune(now);
    const seen = this.seen.get(key);
    try {
      if (seen && now - seen.lastMs < this.aggregateWindowMs) {
        seen.count++;
        seen.lastMs = now;
        await this.client.patch(
          `/api/v1/namespaces/${seen.namespace}/events/${seen.name}`,
          { count: seen.count, lastTimestamp: timestamp(now) },
          MERGE_PATCH,
        );
        return;
      }
      const name = `${meta.name ?? "object"}.${now.toString(16)}${randomBytes(2).toString("hex")}`;
      await this.client.create(`/api/v1/namespaces/${namespace}/events`, {
        apiVersion: "v1",
        kind: "Event",
        metadata: { name, namespace },
        involvedObject: {
          apiVersion: obj.apiVersion,
          kind: obj.kind,
          name: meta.name,
          namespace: meta.namespace,
          uid: meta.uid,
          resourceVersion: meta.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.component,
        firstTimestamp: timestamp(now),
        lastTimestamp: timestamp(now),
        count: 1,
      });
      this.seen.set(key, { name, namespace, count: 1, lastMs: now });
    } catch (err) {
      // An aggregated Event may have expired (Events have a TTL); start a fresh one next time.
      if (isNotFound(err)) this.seen.delete(key);
      this.log.warn({ err: describeError(err), reason }, "could not record event");
    }
  }

  private prune(now: number): void {
    if (this.seen.size < 4096) return;
    for (const [k, v] of this.seen) if (now - v.lastMs >= this.aggregateWindowMs) this.seen.delete(k);
  }
}
