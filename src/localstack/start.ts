// `npm start`: runs the operator. Without a configured cluster it starts a local kube-apiserver and
// etcd; without Azure credentials it starts the Azure emulator (with Azurite). The operator itself
// always runs as its own process against whatever is configured, exactly as in a cluster.
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { azureConfigured, clusterConfigured, loadConfig, usage } from "../config.ts";

const mainEntry = fileURLToPath(new URL("../main.ts", import.meta.url));
const say = (line = ""): void => {
  process.stdout.write(`${line}\n`);
};

async function main(): Promise<number> {
  const config = loadConfig(process.argv.slice(2), process.env);
  if (config.help) {
    say(usage);
    say("Without a cluster (no KUBECONFIG, ~/.kube/config or in-cluster service account) npm start runs a local");
    say("kube-apiserver + etcd; without Azure credentials (AZURE_CLIENT_ID plus a secret or token file) it runs");
    say("the Azure emulator. The operator then runs against them.");
    return 0;
  }
  const needCluster = !clusterConfigured(config, process.env);
  const needAzure = !azureConfigured(config.azure);
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env };
  const stops: Array<() => Promise<void>> = [];
  let operator: ChildProcess | undefined;
  const stopAll = async () => {
    if (operator && operator.exitCode === null) {
      operator.kill("SIGTERM");
      await once(operator, "exit");
    }
    for (const stop of stops.reverse()) await stop();
  };

  try {
    if (needCluster) {
      say("Starting kube-apiserver and etcd (the first run provisions them, about 10 minutes)...");
      const { ControlPlane } = await import("./control-plane.ts");
      const { installCrds } = await import("./crds.ts");
      const cp = await ControlPlane.start();
      stops.push(() => cp.stop());
      await installCrds(cp.kubeConfig());
      env.KUBECONFIG = cp.kubeconfigPath;
      say(`  kube-apiserver ${await cp.version()} at ${cp.server}; CRDs installed`);
    }
    if (needAzure) {
      say("Starting the Azure emulator (ARM, Entra ID tokens, Azurite blobs)...");
      const { startEmulator } = await import("../emulator/index.ts");
      const tenantId = randomUUID();
      const clientId = randomUUID();
      const clientSecret = randomUUID();
      const emu = await startEmulator({ clients: [{ tenantId, clientId, secret: clientSecret }] });
      stops.push(() => emu.stop());
      Object.assign(env, {
        AZURE_SUBSCRIPTION_ID: env.AZURE_SUBSCRIPTION_ID ?? "00000000-0000-0000-0000-000000000001",
        AZURE_TENANT_ID: tenantId,
        AZURE_CLIENT_ID: clientId,
        AZURE_CLIENT_SECRET: clientSecret,
        AZURE_AUTHORITY_HOST: emu.baseUrl,
        AZURE_RESOURCE_MANAGER_ENDPOINT: emu.baseUrl,
        AZURE_CA_FILE: emu.tls.caFile,
      });
      say(`  ARM and Entra ID at ${emu.baseUrl}, blobs at ${emu.blobs?.endpoint ?? "(none)"}, CA ${emu.tls.caFile}`);
      // The VMs the ImageCapture samples capture, so that every sample works against the local stack.
      for (const vm of [
        { resourceGroup: "build", name: "build-vm-01", osType: "Linux", dataDisks: 2 },
        { resourceGroup: "build", name: "win-golden-01", osType: "Windows", dataDisks: 0 },
      ]) {
        const res = await fetch(`${emu.baseUrl}/admin/virtualMachines`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ subscriptionId: env.AZURE_SUBSCRIPTION_ID, location: "westeurope", ...vm }),
        });
        if (!res.ok) throw new Error(`seeding VM ${vm.name}: ${res.status} ${await res.text()}`);
      }
      say("  seeded VMs build/build-vm-01 (Linux, 2 data disks) and build/win-golden-01 (Windows) for the ImageCapture samples");
      // A local emulator has no rate limits worth sparing: look at running operations every second.
      env.POLL_INTERVAL ??= "1s";
    }

    operator = spawn(process.execPath, ["--max-semi-space-size=4", mainEntry, ...process.argv.slice(2)], {
      env: { ...env, ...(needCluster ? { METRICS_BIND_ADDRESS: env.METRICS_BIND_ADDRESS ?? "127.0.0.1:8080", HEALTH_PROBE_BIND_ADDRESS: env.HEALTH_PROBE_BIND_ADDRESS ?? "127.0.0.1:8081" } : {}) },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const exited = once(operator, "exit") as Promise<[number | null, NodeJS.Signals | null]>;
    if (needCluster) {
      say("");
      say(`Ready in ${((Date.now() - started) / 1000).toFixed(1)} s. In another terminal:`);
      say(`  export KUBECONFIG=${env.KUBECONFIG ?? ""}`);
      say("  kubectl apply -f crds/samples/vmimage-marketplace.yaml");
      say("  kubectl get vmimg -w");
      say("Ctrl-C stops everything.");
      say("");
    }
    // Handlers stay installed: a second Ctrl-C (or a signal sent to the whole process group) must not
    // cut the clean-up short and leave servers or folders behind.
    let stopping = false;
    const stopSignal = new Promise<string>((resolve) => {
      for (const signal of ["SIGINT", "SIGTERM"] as const) {
        process.on(signal, () => {
          if (stopping) say("Still stopping...");
          stopping = true;
          resolve(signal);
        });
      }
    });
    const first = await Promise.race([exited.then(([code]) => `operator exited with ${String(code)}`), stopSignal]);
    say(`Stopping (${first})...`);
    await stopAll();
    return first.startsWith("operator exited") ? 1 : 0;
  } catch (err) {
    process.stderr.write(`npm start: ${err instanceof Error ? err.message : String(err)}\n`);
    await stopAll();
    return 1;
  }
}

process.exitCode = await main();
