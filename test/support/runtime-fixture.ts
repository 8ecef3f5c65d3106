import { KubeConfig } from "@kubernetes/client-node";
import { API_VERSION, GROUP, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { VmImage } from "../../src/api/types.ts";
import { collectionPath, KubeClient, type ResourceRef } from "../../src/runtime/kube-client.ts";
import { createLogger, type Logger } from "../../src/runtime/logger.ts";
import type { ControlPlane } from "../../src/localstack/control-plane.ts";

export const vmImages: ResourceRef = { group: GROUP, version: VERSION, plural: VMIMAGE.plural };

/** Logs of the code under test: silent unless TEST_LOG_LEVEL says otherwise. */
export function testLogger(): Logger {
  const level = (process.env.TEST_LOG_LEVEL ?? "silent") as "silent";
  return createLogger(level, process.stderr);
}

/** The admin kubeconfig of `cp`, optionally pointed at another port (a proxy in front of it). */
export function kubeConfigFor(cp: ControlPlane, port?: number): KubeConfig {
  const kc = cp.kubeConfig();
  if (port === undefined) return kc;
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("no cluster");
  const server = new URL(cluster.server);
  server.port = String(port);
  const patched = new KubeConfig();
  patched.loadFromOptions({
    clusters: [{ ...cluster, server: server.toString().replace(/\/$/, "") }],
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  });
  return patched;
}

export function clientFor(cp: ControlPlane, port?: number): KubeClient {
  return new KubeClient(kubeConfigFor(cp, port));
}

export function vmImage(name: string, namespace = "default"): VmImage {
  return {
    apiVersion: API_VERSION,
    kind: VMIMAGE.kind,
    metadata: { name, namespace },
    spec: {
      location: "westeurope",
      resourceGroup: "images",
      osType: "Linux",
      source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } },
      destination: { managedImage: {} },
    },
  };
}

export async function createVmImage(client: KubeClient, name: string, namespace = "default"): Promise<VmImage> {
  return client.create<VmImage>(collectionPath(vmImages, namespace), vmImage(name, namespace));
}

/** Creates `count` VmImages named `${prefix}-${i}`, `parallel` at a time. */
export async function createVmImages(
  client: KubeClient,
  prefix: string,
  count: number,
  parallel = 16,
  namespace = "default",
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) {
        const i = next++;
        await createVmImage(client, `${prefix}-${i}`, namespace);
      }
    }),
  );
}

/** Polls `probe` every 50 ms until it is true; fails after `timeoutMs` with `what`. */
export async function eventually(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
