import { KubeConfig } from "@kubernetes/client-node";
import { createAzureClients, trustCaFile } from "./azure/clients.ts";
import { loadConfig, usage, type Config } from "./config.ts";
import { registerControllers } from "./controllers/index.ts";
import { KubeClient } from "./runtime/kube-client.ts";
import { runUntilStopped } from "./runtime/lifecycle.ts";
import { createLogger } from "./runtime/logger.ts";
import { Manager } from "./runtime/manager.ts";
import { Metrics } from "./runtime/metrics.ts";

/** Runs the operator: config, clients, metrics and health, leader election, controllers. Resolves with the exit code. */
export async function runOperator(config: Config): Promise<number> {
  const log = createLogger(config.logLevel);
  const kc = new KubeConfig();
  if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  if (config.azure.caFile) trustCaFile(config.azure.caFile);
  const kube = new KubeClient(kc);
  const metrics = new Metrics();
  const azure = createAzureClients(config.azure);
  const disabled = (addr: string) => addr === "0" || addr === "";
  const manager = new Manager({
    client: kube,
    log,
    metrics,
    ...(disabled(config.healthProbeAddress) ? {} : { healthProbeAddress: config.healthProbeAddress }),
    ...(disabled(config.metricsAddress) ? {} : { metricsAddress: config.metricsAddress }),
    ...(config.leaderElect
      ? { leaderElection: { namespace: config.leaderElectionNamespace, name: config.leaderElectionId, identity: config.identity } }
      : {}),
  });
  registerControllers(manager, { kube, azure, log, metrics, azureConfig: config.azure }, config);
  await manager.start();
  log.info(
    { server: kc.getCurrentCluster()?.server, namespace: config.namespace || "(all)", leaderElect: config.leaderElect, ...manager.addresses },
    "operator started",
  );
  return runUntilStopped(manager, log);
}

if (import.meta.main) {
  try {
    const config = loadConfig(process.argv.slice(2), process.env);
    if (config.help) {
      process.stdout.write(usage);
    } else {
      process.exitCode = await runOperator(config);
    }
  } catch (err) {
    process.stderr.write(`azure-image-operator: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}
