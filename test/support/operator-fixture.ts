import { GROUP, IMAGECAPTURE, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { ImageCapture, VmImage } from "../../src/api/types.ts";
import { createAzureClients, type AzureClients } from "../../src/azure/clients.ts";
import type { ArmRateLimiter } from "../../src/azure/rate-limit.ts";
import type { AzureConfig } from "../../src/config.ts";
import { registerControllers, type ControllerSettings } from "../../src/controllers/index.ts";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { objectPath, type KubeClient } from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { kubectl } from "./kubectl.ts";
import { clientFor, testLogger } from "./runtime-fixture.ts";

const ref = { group: GROUP, version: VERSION, plural: VMIMAGE.plural };
const captureRef = { group: GROUP, version: VERSION, plural: IMAGECAPTURE.plural };
export const credentials = { subscriptionId: "00000000-0000-0000-0000-0000000000a1", tenantId: "00000000-0000-0000-0000-0000000000a2", clientId: "00000000-0000-0000-0000-0000000000a3", clientSecret: "operator-test" };

/**
 * The operator as it runs for real, in this process: a kube-apiserver with the CRDs, the Azure
 * emulator, and the controllers with SDK clients pointed at the emulator by configuration.
 */
export class OperatorEnv {
  cp!: ControlPlane;
  emu!: Emulator;
  kube!: KubeClient;
  azure!: AzureClients;
  azureConfig!: AzureConfig;
  private manager!: Manager;
  private settings: ControllerSettings = { namespace: "", workers: 2, resyncPeriodMs: 600_000, pollMs: 200 };

  static async start(emulator: EmulatorOptions = {}, limiter?: ArmRateLimiter, settings: Partial<ControllerSettings> = {}): Promise<OperatorEnv> {
    const env = new OperatorEnv();
    env.settings = { ...env.settings, ...settings };
    try {
      await env.boot(emulator, limiter);
    } catch (err) {
      // A half-started environment leaves nothing running behind it.
      await env.stop().catch(() => undefined);
      throw err;
    }
    return env;
  }

  private async boot(emulator: EmulatorOptions, limiter: ArmRateLimiter | undefined): Promise<void> {
    this.cp = await ControlPlane.start();
    await installCrds(this.cp.kubeConfig());
    this.emu = await startEmulator({
      operationDurationMs: 100,
      retryAfterSeconds: 0,
      ...emulator,
      clients: [{ tenantId: credentials.tenantId, clientId: credentials.clientId, secret: credentials.clientSecret }],
    });
    this.kube = clientFor(this.cp);
    this.azureConfig = { ...credentials, federatedTokenFile: undefined, authorityHost: this.emu.baseUrl, resourceManagerEndpoint: this.emu.baseUrl, caFile: undefined };
    this.azure = createAzureClients(this.azureConfig, undefined, limiter);
    await this.startManager();
  }

  private async startManager(): Promise<void> {
    const log = testLogger();
    const metrics = new Metrics();
    this.manager = new Manager({ client: clientFor(this.cp), log, metrics });
    registerControllers(this.manager, { kube: clientFor(this.cp), azure: this.azure, log, metrics, azureConfig: this.azureConfig }, this.settings);
    await this.manager.start();
  }

  /** Stops the operator (its background uploads are aborted) and starts a fresh one, as a restart would. */
  async restartOperator(): Promise<void> {
    await this.manager.stop();
    await this.startManager();
  }

  async stop(): Promise<void> {
    // Each part may be missing when start failed half-way.
    await (this.manager as Manager | undefined)?.stop();
    (this.kube as KubeClient | undefined)?.close();
    await (this.emu as Emulator | undefined)?.stop();
    await (this.cp as ControlPlane | undefined)?.stop();
  }

  /** kubectl apply of a VmImage in namespace default. */
  async apply(name: string, spec: Record<string, unknown>): Promise<void> {
    const manifest = { apiVersion: `${GROUP}/${VERSION}`, kind: VMIMAGE.kind, metadata: { name, namespace: "default" }, spec };
    await kubectl(this.cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(manifest));
  }

  /** kubectl apply of an ImageCapture in namespace default. */
  async applyCapture(name: string, spec: Record<string, unknown>): Promise<void> {
    const manifest = { apiVersion: `${GROUP}/${VERSION}`, kind: IMAGECAPTURE.kind, metadata: { name, namespace: "default" }, spec };
    await kubectl(this.cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(manifest));
  }

  getCapture(name: string): Promise<ImageCapture> {
    return this.kube.get<ImageCapture>(objectPath(captureRef, "default", name));
  }

  get(name: string): Promise<VmImage> {
    return this.kube.get<VmImage>(objectPath(ref, "default", name));
  }

  path(name: string): string {
    return objectPath(ref, "default", name);
  }
}

export const readyCondition = (o: VmImage | ImageCapture) => o.status?.conditions?.find((c) => c.type === "Ready");
