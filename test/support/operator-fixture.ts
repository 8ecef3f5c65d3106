import { GROUP, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { VmImage } from "../../src/api/types.ts";
import { createAzureClients, type AzureClients } from "../../src/azure/clients.ts";
import type { ArmRateLimiter } from "../../src/azure/rate-limit.ts";
import { registerControllers } from "../../src/controllers/index.ts";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { objectPath, type KubeClient } from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { kubectl } from "./kubectl.ts";
import { clientFor, testLogger } from "./runtime-fixture.ts";

const ref = { group: GROUP, version: VERSION, plural: VMIMAGE.plural };
const credentials = { subscriptionId: "00000000-0000-0000-0000-0000000000a1", tenantId: "00000000-0000-0000-0000-0000000000a2", clientId: "00000000-0000-0000-0000-0000000000a3", clientSecret: "operator-test" };

/**
 * The operator as it runs for real, in this process: a kube-apiserver with the CRDs, the Azure
 * emulator, and the controllers with SDK clients pointed at the emulator by configuration.
 */
export class OperatorEnv {
  cp!: ControlPlane;
  emu!: Emulator;
  kube!: KubeClient;
  azure!: AzureClients;
  private manager!: Manager;

  static async start(emulator: EmulatorOptions = {}, limiter?: ArmRateLimiter): Promise<OperatorEnv> {
    const env = new OperatorEnv();
    env.cp = await ControlPlane.start();
    await installCrds(env.cp.kubeConfig());
    env.emu = await startEmulator({
      operationDurationMs: 100,
      retryAfterSeconds: 0,
      ...emulator,
      clients: [{ tenantId: credentials.tenantId, clientId: credentials.clientId, secret: credentials.clientSecret }],
    });
    env.kube = clientFor(env.cp);
    env.azure = createAzureClients(
      { ...credentials, federatedTokenFile: undefined, authorityHost: env.emu.baseUrl, resourceManagerEndpoint: env.emu.baseUrl, caFile: undefined },
      undefined,
      limiter,
    );
    const log = testLogger();
    const metrics = new Metrics();
    env.manager = new Manager({ client: clientFor(env.cp), log, metrics });
    registerControllers(env.manager, { kube: clientFor(env.cp), azure: env.azure, log, metrics }, { namespace: "", workers: 2, resyncPeriodMs: 600_000, pollMs: 200 });
    await env.manager.start();
    return env;
  }

  async stop(): Promise<void> {
    await this.manager.stop();
    this.kube.close();
    await this.emu.stop();
    await this.cp.stop();
  }

  /** kubectl apply of a VmImage in namespace default. */
  async apply(name: string, spec: Record<string, unknown>): Promise<void> {
    const manifest = { apiVersion: `${GROUP}/${VERSION}`, kind: VMIMAGE.kind, metadata: { name, namespace: "default" }, spec };
    await kubectl(this.cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(manifest));
  }

  get(name: string): Promise<VmImage> {
    return this.kube.get<VmImage>(objectPath(ref, "default", name));
  }

  path(name: string): string {
    return objectPath(ref, "default", name);
  }
}

export const readyCondition = (o: VmImage) => o.status?.conditions?.find((c) => c.type === "Ready");
