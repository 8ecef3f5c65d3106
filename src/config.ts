import { existsSync } from "node:fs";
import { homedir, hostname } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";

/** Where Azure is and who the operator is there. */
export interface AzureConfig {
  subscriptionId: string | undefined;
  tenantId: string | undefined;
  clientId: string | undefined;
  /** Client-secret credentials. */
  clientSecret: string | undefined;
  /** Workload identity: the projected service-account token file. */
  federatedTokenFile: string | undefined;
  /** Entra ID host (https://login.microsoftonline.com by default). */
  authorityHost: string | undefined;
  /** ARM endpoint (https://management.azure.com by default). */
  resourceManagerEndpoint: string | undefined;
  /** An extra CA bundle to trust for Azure endpoints (a private emulator, a TLS-inspecting proxy). */
  caFile: string | undefined;
}

export interface Config {
  kubeconfig: string | undefined;
  /** Watch one namespace; empty watches all. */
  namespace: string;
  leaderElect: boolean;
  leaderElectionNamespace: string;
  leaderElectionId: string;
  identity: string;
  metricsAddress: string;
  healthProbeAddress: string;
  logLevel: LogLevel;
  workers: number;
  resyncPeriodMs: number;
  /** How soon a running Azure operation is looked at again. */
  pollMs: number;
  azure: AzureConfig;
}

const options = {
  kubeconfig: { type: "string" },
  namespace: { type: "string" },
  "leader-elect": { type: "boolean" },
  "leader-election-namespace": { type: "string" },
  "leader-election-id": { type: "string" },
  "metrics-bind-address": { type: "string" },
  "health-probe-bind-address": { type: "string" },
  "log-level": { type: "string" },
  workers: { type: "string" },
  "resync-period": { type: "string" },
  "poll-interval": { type: "string" },
  help: { type: "boolean" },
} as const;

export const usage = `Usage: azure-image-operator [flags]

Flags (each also read from the environment variable in brackets):
  --kubeconfig PATH                   kubeconfig to use [KUBECONFIG]; default: in-cluster, then ~/.kube/config
  --namespace NS                      watch only this namespace [WATCH_NAMESPACE]; default: all
  --leader-elect                      campaign for the leader Lease before reconciling [LEADER_ELECT=true]
  --leader-election-namespace NS      namespace of the Lease [POD_NAMESPACE]; default: azure-image-operator
  --leader-election-id NAME           name of the Lease; default: azure-image-operator
  --metrics-bind-address ADDR         /metrics [METRICS_BIND_ADDRESS]; default :8080, "0" disables
  --health-probe-bind-address ADDR    /healthz, /readyz [HEALTH_PROBE_BIND_ADDRESS]; default :8081
  --log-level LEVEL                   trace|debug|info|warn|error [LOG_LEVEL]; default info
  --workers N                         concurrent reconciles per controller [WORKERS]; default 2
  --resync-period DURATION            re-check every object this often (e.g. 10m) [RESYNC_PERIOD]; default 10m
  --poll-interval DURATION            look again at a running Azure operation after [POLL_INTERVAL]; default 5s

Azure (environment, as @azure/identity names them):
  AZURE_SUBSCRIPTION_ID, AZURE_TENANT_ID, AZURE_CLIENT_ID,
  AZURE_CLIENT_SECRET (client secret) or AZURE_FEDERATED_TOKEN_FILE (workload identity),
  AZURE_AUTHORITY_HOST, AZURE_RESOURCE_MANAGER_ENDPOINT, AZURE_CA_FILE (extra CA bundle to trust)
`;

/** "90s", "10m", "1h" or plain milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid duration '${text}' (use e.g. 30s, 10m, 1h)`);
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? "ms") as "ms" | "s" | "m" | "h"];
  return n * unit;
}

const levels: LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config & { help: boolean } {
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  const logLevel = (values["log-level"] ?? env.LOG_LEVEL ?? "info") as LogLevel;
  if (!levels.includes(logLevel)) throw new Error(`invalid log level '${logLevel}'`);
  const workers = Number(values.workers ?? env.WORKERS ?? 2);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`invalid worker count '${String(values.workers ?? env.WORKERS)}'`);
  const orUndefined = (v: string | undefined) => (v === undefined || v === "" ? undefined : v);
  return {
    help: values.help ?? false,
    kubeconfig: orUndefined(values.kubeconfig ?? env.KUBECONFIG),
    namespace: values.namespace ?? env.WATCH_NAMESPACE ?? "",
    leaderElect: values["leader-elect"] ?? env.LEADER_ELECT === "true",
    leaderElectionNamespace: values["leader-election-namespace"] ?? env.POD_NAMESPACE ?? "azure-image-operator",
    leaderElectionId: values["leader-election-id"] ?? "azure-image-operator",
    identity: env.POD_NAME ?? `${hostname()}_${String(process.pid)}`,
    metricsAddress: values["metrics-bind-address"] ?? env.METRICS_BIND_ADDRESS ?? ":8080",
    healthProbeAddress: values["health-probe-bind-address"] ?? env.HEALTH_PROBE_BIND_ADDRESS ?? ":8081",
    logLevel,
    workers,
    resyncPeriodMs: parseDuration(values["resync-period"] ?? env.RESYNC_PERIOD ?? "10m"),
    pollMs: parseDuration(values["poll-interval"] ?? env.POLL_INTERVAL ?? "5s"),
    azure: {
      subscriptionId: orUndefined(env.AZURE_SUBSCRIPTION_ID),
      tenantId: orUndefined(env.AZURE_TENANT_ID),
      clientId: orUndefined(env.AZURE_CLIENT_ID),
      clientSecret: orUndefined(env.AZURE_CLIENT_SECRET),
      federatedTokenFile: orUndefined(env.AZURE_FEDERATED_TOKEN_FILE),
      authorityHost: orUndefined(env.AZURE_AUTHORITY_HOST),
      resourceManagerEndpoint: orUndefined(env.AZURE_RESOURCE_MANAGER_ENDPOINT),
      caFile: orUndefined(env.AZURE_CA_FILE),
    },
  };
}

/** Whether a Kubernetes cluster is configured: a kubeconfig, in-cluster credentials or ~/.kube/config. */
export function clusterConfigured(config: Pick<Config, "kubeconfig">, env: NodeJS.ProcessEnv): boolean {
  return (
    config.kubeconfig !== undefined ||
    env.KUBERNETES_SERVICE_HOST !== undefined ||
    existsSync(join(homedir(), ".kube", "config"))
  );
}

/** Whether Azure credentials are configured (a client secret or a workload-identity token). */
export function azureConfigured(azure: AzureConfig): boolean {
  return azure.clientId !== undefined && (azure.clientSecret !== undefined || azure.federatedTokenFile !== undefined);
}
