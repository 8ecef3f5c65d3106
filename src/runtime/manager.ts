import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Controller } from "./controller.ts";
import type { Informer } from "./informer.ts";
import type { KubeClient } from "./kube-client.ts";
import { LeaderElector, type LeaderElectionOptions } from "./leader-election.ts";
import type { Metrics } from "./metrics.ts";

export type LeaderElectionConfig = Omit<LeaderElectionOptions, "onStartedLeading" | "onStoppedLeading" | "onNewLeader">;

export interface ManagerOptions {
  client: KubeClient;
  log: Logger;
  metrics: Metrics;
  /** Absent: this process reconciles without campaigning (local runs, tests). */
  leaderElection?: LeaderElectionConfig;
  /** `host:port` of /healthz and /readyz; port 0 picks a free one; absent disables. */
  healthProbeAddress?: string;
  /** `host:port` of /metrics; port 0 picks a free one; absent disables. */
  metricsAddress?: string;
}

/**
 * Runs informers and controllers for one process, as controller-runtime's manager does: caches start
 * at once (a standby keeps them warm for a fast takeover), controllers only while this process holds
 * the leader lease. Serves /healthz (the process is alive and its loops run), /readyz (caches synced)
 * and /metrics.
 */
export class Manager {
  private readonly opts: ManagerOptions;
  private readonly log: Logger;
  private readonly informers: Informer<KubernetesObject>[] = [];
  private readonly controllers: Controller<KubernetesObject>[] = [];
  private elector: LeaderElector | undefined;
  private readonly servers: Server[] = [];
  private readonly stopHooks: Array<() => void> = [];
  private controllersRunning = false;
  private stopping = false;
  private signalLostLeadership: () => void = () => undefined;
  /**
   * Resolves when leadership, once held, is lost. The controllers have stopped by then; the process
   * should exit so that it restarts as a fresh candidate (controller-runtime does the same).
   */
  readonly lostLeadership = new Promise<void>((resolve) => {
    this.signalLostLeadership = resolve;
  });
  readonly addresses: { healthProbe?: string; metrics?: string } = {};

  constructor(opts: ManagerOptions) {
    this.opts = opts;
    this.log = opts.log;
  }

  addInformer<T extends KubernetesObject>(informer: Informer<T>): void {
    this.informers.push(informer);
  }

  addController<T extends KubernetesObject>(controller: Controller<T>): void {
    this.controllers.push(controller as unknown as Controller<KubernetesObject>);
  }

  /** Runs `hook` when the manager stops, after the controllers have drained. */
  onStop(hook: () => void): void {
    this.stopHooks.push(hook);
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : true;
  }

  /** Ready when every cache has synced; a standby with warm caches is ready to take over. */
  isReady(): boolean {
    return !this.stopping && this.informers.every((i) => i.hasSynced());
  }

  async start(): Promise<void> {
    if (this.opts.healthProbeAddress !== undefined) {
      this.addresses.healthProbe = await this.serve(this.opts.healthProbeAddress, (path) => {
        if (path === "/healthz" || path === "/livez") return [200, "ok"];
        if (path === "/readyz") return this.isReady() ? [200, "ok"] : [503, "caches not synced"];
        return undefined;
      });
    }
    if (this.opts.metricsAddress !== undefined) {
      const registry = this.opts.metrics.registry;
      this.addresses.metrics = await this.serve(this.opts.metricsAddress, async (path) =>
        path === "/metrics" ? [200, await registry.metrics(), registry.contentType] : undefined,
      );
    }
    for (const informer of this.informers) informer.start();

    const le = this.opts.leaderElection;
    if (!le) {
      this.startControllers();
      return;
    }
    this.opts.metrics.setLeader(le.name, false);
    this.elector = new LeaderElector(this.opts.client, this.log, {
      ...le,
      onStartedLeading: () => {
        this.opts.metrics.setLeader(le.name, true);
        this.startControllers();
      },
      onStoppedLeading: () => {
        this.opts.metrics.setLeader(le.name, false);
        void this.stopControllers().then(() => {
          this.signalLostLeadership();
        });
      },
    });
    this.elector.start();
  }

  /** Stops controllers (letting running reconciles finish), hands back the lease, stops caches and servers. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info("shutting down");
    await this.stopControllers();
    for (const hook of this.stopHooks) hook();
    await this.elector?.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => {
              resolve();
            });
            s.closeAllConnections();
          }),
      ),
    );
    this.opts.client.close();
    this.log.info("stopped");
  }

  private startControllers(): void {
    if (this.controllersRunning || this.stopping) return;
    this.controllersRunning = true;
    for (const c of this.controllers) void c.start();
  }

  private async stopControllers(): Promise<void> {
    if (!this.controllersRunning) return;
    this.controllersRunning = false;
    await Promise.all(this.controllers.map((c) => c.stop()));
  }

  private async serve(
    address: string,
    route: (path: string) => Promise<[number, string, string?] | undefined> | [number, string, string?] | undefined,
  ): Promise<string> {
    const { host, port } = parseAddress(address);
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      Promise.resolve(route(path))
        .then((answer) => {
          const [status, body, type] = answer ?? [404, "not found"];
          res.writeHead(status, { "content-type": type ?? "text/plain; charset=utf-8" }).end(body);
        })
        .catch((err: unknown) => {
          res.writeHead(500).end(err instanceof Error ? err.message : "error");
        });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    this.servers.push(server);
    const bound = server.address() as AddressInfo;
    return `${bound.address}:${bound.port}`;
  }
}

/** `host:port`, `:port` (all interfaces) or `port`. */
export function parseAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(":");
  const host = i > 0 ? address.slice(0, i) : "0.0.0.0";
  const port = Number(i >= 0 ? address.slice(i + 1) : address);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid address '${address}'`);
  return { host, port };
}
