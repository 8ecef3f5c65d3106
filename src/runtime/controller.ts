import { randomUUID } from "node:crypto";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeError, type Informer } from "./informer.ts";
import { objectKey, splitKey } from "./kube-client.ts";
import type { ControllerMetrics } from "./metrics.ts";
import type { Predicate } from "./predicates.ts";
import { WorkQueue, type WorkQueueOptions } from "./workqueue.ts";

/** What a reconcile asks for next (controller-runtime's Result). */
export interface ReconcileResult {
  /** Reconcile again after this long (polling an operation, periodic drift checks). */
  requeueAfterMs?: number;
  /** Reconcile again soon, with the key's rate-limited backoff. */
  requeue?: boolean;
}

/**
 * An error retrying cannot fix (invalid spec, a refused request): logged and counted, and the key is
 * not requeued until its object changes.
 */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TerminalError";
  }
}

export interface ReconcileRequest {
  namespace: string | undefined;
  name: string;
  key: string;
}

export interface ReconcileContext {
  log: Logger;
  reconcileId: string;
  /** Aborted when the controller stops; long calls should give up. */
  signal: AbortSignal;
}

export type Reconciler = (req: ReconcileRequest, ctx: ReconcileContext) => Promise<ReconcileResult | undefined>;

export interface ControllerOptions<T extends KubernetesObject> {
  name: string;
  informer: Informer<T>;
  reconcile: Reconciler;
  log: Logger;
  workers?: number;
  /** Update events pass when any predicate passes; adds, deletes and resyncs always pass. */
  updatePredicates?: Predicate<T>[];
  metrics?: ControllerMetrics;
  queue?: WorkQueueOptions<string>;
}

export type ReconcileOutcome = "success" | "error" | "requeue" | "requeue_after";

/**
 * Feeds a work queue from an informer and runs `workers` reconcile loops over it, with
 * controller-runtime's semantics: a thrown error requeues with the key's backoff; a TerminalError is
 * not retried; `requeueAfterMs` forgets the backoff and comes back after that long; `requeue` retries
 * with backoff; otherwise the key is done until the next event. A reconcile never runs twice at once
 * for one key.
 */
export class Controller<T extends KubernetesObject> {
  readonly name: string;
  readonly queue: WorkQueue;
  private readonly opts: ControllerOptions<T>;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private workers: Promise<void>[] = [];
  private started = false;

  constructor(opts: ControllerOptions<T>) {
    this.opts = opts;
    this.name = opts.name;
    this.log = opts.log.child({ controller: opts.name });
    this.queue = new WorkQueue({ ...opts.queue, metrics: opts.metrics?.queue ?? opts.queue?.metrics });
    const predicates = opts.updatePredicates ?? [];
    opts.informer.addHandler({
      onAdd: (obj) => {
        this.queue.add(objectKey(obj));
      },
      onUpdate: (oldObj, newObj) => {
        if (predicates.length === 0 || predicates.some((p) => p(oldObj, newObj))) this.queue.add(objectKey(newObj));
      },
      onDelete: (obj) => {
        this.queue.add(objectKey(obj));
      },
      onResync: (obj) => {
        this.queue.add(objectKey(obj));
      },
    });
  }

  /** Starts the workers once the informer's cache has synced. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.opts.informer.waitForSync();
    const n = this.opts.workers ?? 2;
    this.opts.metrics?.setMaxWorkers(n);
    this.log.info({ workers: n }, "starting workers");
    this.workers = Array.from({ length: n }, () => this.worker());
  }

  /** Stops taking work and waits for running reconciles to finish. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.queue.shutDownWithDrain();
    await Promise.all(this.workers);
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.process(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async process(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const reconcileId = randomUUID();
    const log = this.log.child({ namespace, name, reconcileID: reconcileId });
    const started = performance.now();
    this.opts.metrics?.activeWorkers(1);
    let outcome: ReconcileOutcome;
    try {
      const result = await this.opts.reconcile({ namespace, name, key }, { log, reconcileId, signal: this.abort.signal });
      if (result?.requeueAfterMs !== undefined && result.requeueAfterMs > 0) {
        this.queue.forget(key);
        this.queue.addAfter(key, result.requeueAfterMs);
        outcome = "requeue_after";
      } else if (result?.requeue) {
        this.queue.addRateLimited(key);
        outcome = "requeue";
      } else {
        this.queue.forget(key);
        outcome = "success";
      }
    } catch (err) {
      outcome = "error";
      if (err instanceof TerminalError) {
        this.queue.forget(key);
        this.opts.metrics?.terminalError();
        log.error({ err: describeError(err) }, "reconcile failed terminally; not retrying until the object changes");
      } else {
        this.queue.addRateLimited(key);
        log.error({ err: describeError(err), retries: this.queue.numRequeues(key) }, "reconcile failed; will retry");
      }
      this.opts.metrics?.error();
    } finally {
      this.opts.metrics?.activeWorkers(-1);
    }
    this.opts.metrics?.reconciled(outcome, (performance.now() - started) / 1000);
    log.debug({ outcome, ms: Math.round(performance.now() - started) }, "reconciled");
  }
}
