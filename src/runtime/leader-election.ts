import type { Logger } from "pino";
import { isAborted, sleep } from "./backoff.ts";
import { describeError } from "./informer.ts";
import { isConflict, isNotFound, type KubeClient } from "./kube-client.ts";

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

interface Lease {
  apiVersion: "coordination.k8s.io/v1";
  kind: "Lease";
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: LeaseSpec;
}

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
  onNewLeader?: (identity: string) => void;
}

/** Lease times carry microseconds (MicroTime). */
const microTime = (ms: number): string => new Date(ms).toISOString().replace("Z", "000Z");

/**
 * Leader election on a coordination.k8s.io/v1 Lease with client-go's algorithm and timings (15 s
 * lease, 10 s renew deadline, 2 s retry). A candidate takes the lease when it is free, released, or
 * has not changed for a lease duration as measured on the candidate's own clock (so clock skew between
 * nodes does not matter). The leader renews every retry period; if it cannot renew within the renew
 * deadline it stops leading. `release` empties the lease so a standby takes over at once.
 */
export class LeaderElector {
  private readonly client: KubeClient;
  private readonly log: Logger;
  private readonly opts: Required<Omit<LeaderElectionOptions, "onNewLeader">> & Pick<LeaderElectionOptions, "onNewLeader">;
  private readonly abort = new AbortController();
  private observed: { record: string; atMs: number; lease?: Lease } = { record: "", atMs: 0 };
  private leading = false;
  private loop: Promise<void> | undefined;
  private lastLeader = "";

  constructor(client: KubeClient, log: Logger, opts: LeaderElectionOptions) {
    this.client = client;
    this.log = log.child({ lease: `${opts.namespace}/${opts.name}`, identity: opts.identity });
    this.opts = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...opts,
    };
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops campaigning; a leader hands the lease back so another candidate can take it at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      await this.release();
    }
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.opts.namespace}/leases/${this.opts.name}`;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    // Acquire: try every retry period until the lease is ours.
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) {
      await sleep(this.opts.retryPeriodMs, signal);
    }
    if (isAborted(signal)) return;
    this.leading = true;
    this.log.info("became leader");
    this.opts.onStartedLeading();
    // Renew: every retry period; give up when no renewal succeeded within the renew deadline.
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.opts.retryPeriodMs, signal);
      if (isAborted(signal)) return;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.opts.renewDeadlineMs) {
        this.leading = false;
        this.log.error({ renewDeadlineMs: this.opts.renewDeadlineMs }, "lost leadership: lease not renewed in time");
        this.opts.onStoppedLeading();
        return;
      }
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = Date.now();
    const desired: LeaseSpec = {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.round(this.opts.leaseDurationMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let current: Lease;
    try {
      current = await this.client.get<Lease>(this.path, { timeoutMs: this.opts.retryPeriodMs * 2 });
    } catch (err) {
      if (!isNotFound(err)) {
        this.log.warn({ err: describeError(err) }, "could not read the lease");
        return false;
      }
      try {
        const created = await this.client.create<Lease>(this.path.replace(/\/[^/]+$/, ""), {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name: this.opts.name, namespace: this.opts.namespace },
          spec: desired,
        });
        this.observe(created, now);
        return true;
      } catch (createErr) {
        this.log.info({ err: describeError(createErr) }, "could not create the lease");
        return false;
      }
    }

    this.observe(current, now);
    const spec = current.spec;
    const holder = spec.holderIdentity ?? "";
    const held = holder !== "" && holder !== this.opts.identity;
    const expired = now > this.observed.atMs + (spec.leaseDurationSeconds ?? 15) * 1000;
    if (held && !expired) return false;

    const next: LeaseSpec =
      holder === this.opts.identity
        ? { ...spec, renewTime: desired.renewTime, leaseDurationSeconds: desired.leaseDurationSeconds }
        : { ...desired, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 };
    try {
      const updated = await this.client.replace<Lease>(this.path, { ...current, spec: next }, {
        timeoutMs: this.opts.retryPeriodMs * 2,
      });
      this.observe(updated, now);
      return true;
    } catch (err) {
      if (!isConflict(err)) this.log.warn({ err: describeError(err) }, "could not update the lease");
      return false;
    }
  }

  /** Remembers when the lease record last changed, by this process's clock. */
  private observe(lease: Lease, now: number): void {
    const record = JSON.stringify(lease.spec);
    if (record !== this.observed.record) this.observed = { record, atMs: now, lease };
    const holder = lease.spec.holderIdentity ?? "";
    if (holder && holder !== this.lastLeader) {
      this.lastLeader = holder;
      if (holder !== this.opts.identity) this.log.info({ leader: holder }, "new leader observed");
      this.opts.onNewLeader?.(holder);
    }
  }

  private async release(): Promise<void> {
    const lease = this.observed.lease;
    if (!lease || lease.spec.holderIdentity !== this.opts.identity) return;
    const now = Date.now();
    try {
      const current = await this.client.get<Lease>(this.path, { timeoutMs: 2_000 });
      if (current.spec.holderIdentity !== this.opts.identity) return;
      await this.client.replace<Lease>(
        this.path,
        {
          ...current,
          spec: {
            ...current.spec,
            holderIdentity: null,
            leaseDurationSeconds: 1,
            acquireTime: null,
            renewTime: microTime(now),
          },
        },
        { timeoutMs: 2_000 },
      );
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn({ err: describeError(err) }, "could not release the lease; a standby takes over when it expires");
    }
  }
}
