import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ReconcileOutcome } from "./controller.ts";
import type { QueueMetrics } from "./workqueue.ts";

/** What one controller reports (controller-runtime's metric names, so existing dashboards work). */
export interface ControllerMetrics {
  queue: QueueMetrics;
  reconciled(outcome: ReconcileOutcome, seconds: number): void;
  error(): void;
  terminalError(): void;
  activeWorkers(delta: number): void;
  setMaxWorkers(n: number): void;
}

const reconcileBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const queueBuckets = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1, 10, 100, 1000];

/** The process's Prometheus registry: Node's default metrics plus controller, queue and leader metrics. */
export class Metrics {
  readonly registry = new Registry();
  private readonly reconcileTotal: Counter<"controller" | "result">;
  private readonly reconcileErrors: Counter<"controller">;
  private readonly terminalErrors: Counter<"controller">;
  private readonly reconcileTime: Histogram<"controller">;
  private readonly activeWorkersGauge: Gauge<"controller">;
  private readonly maxWorkers: Gauge<"controller">;
  private readonly depth: Gauge<"name" | "controller">;
  private readonly adds: Counter<"name" | "controller">;
  private readonly queueDuration: Histogram<"name" | "controller">;
  private readonly workDuration: Histogram<"name" | "controller">;
  private readonly retries: Counter<"name" | "controller">;
  private readonly leader: Gauge<"name">;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.terminalErrors = new Counter({
      name: "controller_runtime_terminal_reconcile_errors_total",
      help: "Total number of terminal reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: reconcileBuckets,
      registers,
    });
    this.activeWorkersGauge = new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller",
      labelNames: ["controller"],
      registers,
    });
    this.maxWorkers = new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller",
      labelNames: ["controller"],
      registers,
    });
    this.depth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue",
      labelNames: ["name", "controller"],
      registers,
    });
    this.adds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames: ["name", "controller"],
      registers,
    });
    this.queueDuration = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested",
      labelNames: ["name", "controller"],
      buckets: queueBuckets,
      registers,
    });
    this.workDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes",
      labelNames: ["name", "controller"],
      buckets: queueBuckets,
      registers,
    });
    this.retries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue",
      labelNames: ["name", "controller"],
      registers,
    });
    this.leader = new Gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
      labelNames: ["name"],
      registers,
    });
  }

  forController(controller: string): ControllerMetrics {
    const q = { name: controller, controller };
    const c = { controller };
    return {
      queue: {
        add: () => {
          this.adds.inc(q);
        },
        depth: (n) => {
          this.depth.set(q, n);
        },
        queued: (ms) => {
          this.queueDuration.observe(q, ms / 1000);
        },
        worked: (ms) => {
          this.workDuration.observe(q, ms / 1000);
        },
        retry: () => {
          this.retries.inc(q);
        },
      },
      reconciled: (result, seconds) => {
        this.reconcileTotal.inc({ controller, result });
        this.reconcileTime.observe(c, seconds);
      },
      error: () => {
        this.reconcileErrors.inc(c);
      },
      terminalError: () => {
        this.terminalErrors.inc(c);
      },
      activeWorkers: (delta) => {
        this.activeWorkersGauge.inc(c, delta);
      },
      setMaxWorkers: (n) => {
        this.maxWorkers.set(c, n);
      },
    };
  }

  setLeader(lease: string, leading: boolean): void {
    this.leader.set({ name: lease }, leading ? 1 : 0);
  }
}
