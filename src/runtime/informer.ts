import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Backoff, isAborted, jitter, sleep } from "./backoff.ts";
import {
  collectionPath,
  isGone,
  KubeApiError,
  objectKey,
  type KubeClient,
  type KubeStatus,
  type ObjectList,
  type ResourceRef,
  type WatchEvent,
} from "./kube-client.ts";

export interface EventHandler<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
  /** Periodic resync: every cached object, so controllers re-check the world on a schedule. */
  onResync?(obj: T): void;
}

export interface InformerOptions {
  /** Page size of list calls (`limit`); large collections arrive in pages. */
  pageSize?: number;
  /** Server-side watch timeout, jittered by up to 10% so a fleet does not re-watch in lockstep. */
  watchTimeoutSeconds?: number;
  /** Relist when nothing (not even a bookmark) arrived on the watch for this long. */
  stallTimeoutMs?: number;
  /** Re-deliver every cached object this often; 0 disables. */
  resyncPeriodMs?: number;
  backoff?: Backoff;
  /**
   * Applied to every object before it is cached. The default drops `metadata.managedFields`, which
   * no controller here reads and which is often the largest part of a small object.
   */
  transform?: (obj: KubernetesObject) => KubernetesObject;
}

export function stripManagedFields(obj: KubernetesObject): KubernetesObject {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

/** Why a watch ended, as the reflector loop sees it. */
type WatchEnd = "closed" | "expired" | "stalled" | "stopped";

class ExpiredError extends Error {}

/**
 * A reflector and its cache, as client-go's: list (paginated), then watch from the list's
 * resourceVersion with bookmarks and a bounded, jittered timeout, resuming from the last seen
 * resourceVersion. 410 Gone means the resourceVersion is too old: relist. Any other failure backs off
 * (1 s doubling to 30 s) and tries again; the loop never stops until `stop`. A watch that goes quiet
 * for longer than it could legitimately be quiet is abandoned and the cache relisted.
 *
 * resourceVersion is opaque: it is passed back to the server, and compared for equality only.
 */
export class Informer<T extends KubernetesObject> {
  readonly ref: ResourceRef;
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly store = new Map<string, T>();
  private readonly handlers: EventHandler<T>[] = [];
  private readonly opts: Required<Omit<InformerOptions, "backoff">>;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private loop: Promise<void> | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private lastResourceVersion = "";
  /** Counts of what the loop did, for tests and diagnostics. */
  readonly stats = { lists: 0, watches: 0, expired: 0, stalls: 0, errors: 0 };

  constructor(client: KubeClient, ref: ResourceRef, log: Logger, opts: InformerOptions = {}) {
    this.client = client;
    this.ref = ref;
    this.log = log.child({ informer: `${ref.plural}.${ref.group || "core"}` });
    this.opts = {
      pageSize: opts.pageSize ?? 500,
      watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 300,
      stallTimeoutMs: opts.stallTimeoutMs ?? ((opts.watchTimeoutSeconds ?? 300) * 1.1 + 30) * 1000,
      resyncPeriodMs: opts.resyncPeriodMs ?? 10 * 60_000,
      transform: opts.transform ?? stripManagedFields,
    };
    this.backoff = opts.backoff ?? new Backoff(1_000, 30_000);
  }

  addHandler(handler: EventHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Starts the list/watch loop in the background. */
  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    if (this.opts.resyncPeriodMs > 0) {
      this.resyncTimer = setInterval(() => {
        this.resync();
      }, this.opts.resyncPeriodMs);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearInterval(this.resyncTimer);
    await this.loop;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has filled the cache (or at once if it has). */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  keys(): string[] {
    return [...this.store.keys()];
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.listAndReplace(signal);
          needList = false;
        }
        const end = await this.watchOnce(signal);
        this.backoff.reset();
        if (end === "expired" || end === "stalled") needList = true;
      } catch (err) {
        if (isAborted(signal)) break;
        this.stats.errors++;
        const waitMs = this.backoff.next();
        this.log.warn({ err: describeError(err), retryInMs: waitMs }, "list/watch failed; backing off");
        await sleep(waitMs, signal);
      }
    }
  }

  private async listAndReplace(signal: AbortSignal): Promise<void> {
    this.stats.lists++;
    const items = new Map<string, T>();
    let resourceVersion: string;
    let cont: string | undefined;
    do {
      const page = await this.client.get<ObjectList<T>>(collectionPath(this.ref), {
        query: { limit: this.opts.pageSize, continue: cont },
        signal,
        timeoutMs: 60_000,
      });
      for (const item of page.items) items.set(objectKey(item), this.opts.transform(item) as T);
      resourceVersion = page.metadata.resourceVersion ?? "";
      cont = page.metadata.continue || undefined;
    } while (cont);

    const previous = new Map(this.store);
    this.store.clear();
    for (const [key, obj] of items) this.store.set(key, obj);
    this.lastResourceVersion = resourceVersion;
    for (const [key, obj] of items) {
      const old = previous.get(key);
      if (!old) this.emit("add", obj);
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.emit("update", obj, old);
    }
    for (const [key, old] of previous) if (!items.has(key)) this.emit("delete", old);

    this.log.debug({ objects: items.size, resourceVersion }, "listed");
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
  }

  private async watchOnce(parent: AbortSignal): Promise<WatchEnd> {
    this.stats.watches++;
    const controller = new AbortController();
    const onParentAbort = () => {
      controller.abort();
    };
    parent.addEventListener("abort", onParentAbort, { once: true });
    const state = { stalled: false };
    let watchdog: NodeJS.Timeout | undefined;
    const feedWatchdog = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        state.stalled = true;
        controller.abort();
      }, this.opts.stallTimeoutMs);
      watchdog.unref();
    };
    feedWatchdog();
    try {
      await this.client.watch<T>(
        collectionPath(this.ref),
        {
          resourceVersion: this.lastResourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: Math.round(jitter(this.opts.watchTimeoutSeconds)),
        },
        (event) => {
          feedWatchdog();
          this.apply(event);
        },
        controller.signal,
      );
    } catch (err) {
      if (err instanceof ExpiredError || isGone(err)) {
        this.stats.expired++;
        this.log.info({ resourceVersion: this.lastResourceVersion }, "watch expired (410 Gone); relisting");
        return "expired";
      }
      if (!state.stalled && !isAborted(parent)) throw err;
    } finally {
      clearTimeout(watchdog);
      parent.removeEventListener("abort", onParentAbort);
    }
    if (isAborted(parent)) return "stopped";
    if (state.stalled) {
      this.stats.stalls++;
      this.log.warn({ quietForMs: this.opts.stallTimeoutMs }, "watch went quiet; relisting");
      return "stalled";
    }
    return "closed";
  }

  private apply(event: WatchEvent<T>): void {
    if (event.type === "ERROR") {
      const status = event.object as unknown as KubeStatus;
      if (status.code === 410) throw new ExpiredError(status.message);
      throw new KubeApiError(status.code ?? 500, status, "watch");
    }
    const rv = event.object.metadata?.resourceVersion;
    if (rv) this.lastResourceVersion = rv;
    if (event.type === "BOOKMARK") return;
    this.opts.transform(event.object);
    const key = objectKey(event.object);
    const old = this.store.get(key);
    if (event.type === "DELETED") {
      this.store.delete(key);
      this.emit("delete", event.object);
      return;
    }
    this.store.set(key, event.object);
    if (old) this.emit("update", event.object, old);
    else this.emit("add", event.object);
  }

  private resync(): void {
    if (!this.synced) return;
    for (const obj of this.store.values()) this.emit("resync", obj);
  }

  private emit(kind: "add" | "update" | "delete" | "resync", obj: T, old?: T): void {
    for (const h of this.handlers) {
      try {
        if (kind === "add") h.onAdd?.(obj);
        else if (kind === "update") h.onUpdate?.(old ?? obj, obj);
        else if (kind === "delete") h.onDelete?.(obj);
        else h.onResync?.(obj);
      } catch (err) {
        this.log.error({ err: describeError(err) }, "event handler threw");
      }
    }
  }
}

/** An error as a loggable object: message and code, never a request with its credentials. */
export function describeError(err: unknown): { message: string; code?: number | string } {
  if (err instanceof KubeApiError) return { message: err.message, code: err.code };
  if (err instanceof Error) {
    const code = (err as Error & { code?: string }).code;
    return code ? { message: err.message, code } : { message: err.message };
  }
  return { message: String(err) };
}
