import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { GROUP, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { VmImage } from "../../src/api/types.ts";
import { createAzureClients } from "../../src/azure/clients.ts";
import { registerControllers } from "../../src/controllers/index.ts";
import { startEmulator, type Emulator } from "../../src/emulator/index.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { collectionPath, objectPath, type KubeClient, type ObjectList } from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { clientFor, eventually, testLogger } from "../support/runtime-fixture.ts";
import { kubectl } from "../support/kubectl.ts";

const ref = { group: GROUP, version: VERSION, plural: VMIMAGE.plural };
const subscriptionId = "00000000-0000-0000-0000-0000000000c1";
const tenantId = "00000000-0000-0000-0000-0000000000c2";
const clientId = "00000000-0000-0000-0000-0000000000c3";
const clientSecret = "vmimage-test";

interface CoreEvent {
  reason: string;
  type: string;
  involvedObject: { name?: string };
}

describe("VmImage controller: Marketplace sources against the emulator", () => {
  let cp: ControlPlane;
  let emu: Emulator;
  let kube: KubeClient;
  let manager: Manager;
  let azure: ReturnType<typeof createAzureClients>;

  const apply = async (name: string, spec: Record<string, unknown>) => {
    const manifest = { apiVersion: `${GROUP}/${VERSION}`, kind: VMIMAGE.kind, metadata: { name, namespace: "default" }, spec };
    await kubectl(cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(manifest));
  };
  const get = (name: string) => kube.get<VmImage>(objectPath(ref, "default", name));
  const ready = (o: VmImage) => o.status?.conditions?.find((c) => c.type === "Ready");
  const base = { location: "westeurope", resourceGroup: "rg-vmimage", osType: "Linux" };

  before(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp.kubeConfig());
    emu = await startEmulator({ operationDurationMs: 200, retryAfterSeconds: 0, clients: [{ tenantId, clientId, secret: clientSecret }] });
    kube = clientFor(cp);
    azure = createAzureClients({
      subscriptionId, tenantId, clientId, clientSecret,
      federatedTokenFile: undefined, authorityHost: emu.baseUrl, resourceManagerEndpoint: emu.baseUrl, caFile: undefined,
    });
    const log = testLogger();
    const metrics = new Metrics();
    manager = new Manager({ client: clientFor(cp), log, metrics });
    registerControllers(manager, { kube: clientFor(cp), azure, log, metrics }, { namespace: "", workers: 2, resyncPeriodMs: 600_000, pollMs: 200 });
    await manager.start();
  });

  after(async () => {
    await manager.stop();
    kube.close();
    await emu.stop();
    await cp.stop();
  });

  it("resolves latest, pins it, and makes a managed image through a temporary disk", async () => {
    await apply("ubuntu", { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" } }, destination: { managedImage: {} }, tags: { team: "platform" } });
    await eventually("Ready", async () => ready(await get("ubuntu"))?.status === "True", 30_000);
    const obj = await get("ubuntu");
    assert.equal(obj.status?.resolvedVersion, "24.04.202411030");
    assert.equal(obj.status?.observedGeneration, 1);
    assert.deepEqual(obj.metadata?.finalizers, ["azureimages.dev/finalizer"]);
    const name = obj.status?.imageId?.split("/").pop() ?? "";
    const image = await azure.compute.images.get("rg-vmimage", name);
    assert.equal(image.tags?.team, "platform");
    assert.equal(image.storageProfile?.osDisk?.osState, "Generalized");
    await eventually("temporary disk removed", async () => {
      const disks: string[] = [];
      for await (const d of azure.compute.disks.listByResourceGroup("rg-vmimage")) disks.push(d.name ?? "");
      return disks.length === 0;
    });
    const conditions = obj.status?.conditions?.map((c) => c.type);
    assert.deepEqual(conditions, ["Ready"], "Reconciling and Stalled are gone once Ready");
  });

  it("heals an image deleted out of band", async () => {
    const obj = await get("ubuntu");
    const name = obj.status?.imageId?.split("/").pop() ?? "";
    await azure.compute.images.delete("rg-vmimage", name, { updateIntervalInMs: 20 });
    // A spec-neutral nudge (an annotation) stands in for the periodic drift check.
    await kube.patch(objectPath(ref, "default", "ubuntu"), { metadata: { annotations: { "azureimages.dev/observe": "now" } } }, "application/merge-patch+json");
    await eventually("recreated", async () => {
      try {
        return (await azure.compute.images.get("rg-vmimage", name)).provisioningState === "Succeeded";
      } catch {
        return false;
      }
    }, 30_000);
  });

  it("stalls a plan image until its terms are accepted, then accepts them when told to", async () => {
    const cis = { publisher: "center-for-internet-security-inc", offer: "cis-ubuntu-linux-2204-l1", sku: "cis-ubuntu2204-l1-gen2" };
    await apply("cis", { ...base, source: { marketplace: cis }, destination: { managedImage: {} } });
    await eventually("Stalled", async () => (await get("cis")).status?.conditions?.some((c) => c.type === "Stalled" && c.status === "True") ?? false, 20_000);
    const stalled = await get("cis");
    assert.equal(ready(stalled)?.reason, "TermsNotAccepted");
    assert.match(ready(stalled)?.message ?? "", /acceptTerms: true/);
    assert.deepEqual(stalled.status?.plan, { publisher: cis.publisher, product: cis.offer, name: cis.sku });

    await apply("cis", { ...base, source: { marketplace: { ...cis, acceptTerms: true } }, destination: { managedImage: {} } });
    await eventually("Ready after accepting", async () => ready(await get("cis"))?.status === "True", 30_000);
    const terms = await azure.terms.marketplaceAgreements.get("virtualmachine", cis.publisher, cis.offer, cis.sku);
    assert.equal(terms.accepted, true);
    const events = await kube.get<ObjectList<CoreEvent>>(collectionPath({ group: "", version: "v1", plural: "events" }, "default"));
    assert.ok(events.items.some((e) => e.involvedObject.name === "cis" && e.reason === "TermsAccepted"));
    assert.ok(events.items.some((e) => e.involvedObject.name === "cis" && e.reason === "TermsNotAccepted" && e.type === "Warning"));
  });

  it("reports a missing image and an unsupported source with specific reasons", async () => {
    await apply("nosuch", { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "1.2.3" } }, destination: { managedImage: {} } });
    await apply("fromvhd", { ...base, source: { vhd: { url: "https://example.com/disk.vhd" } }, destination: { managedImage: {} } });
    await eventually("both stalled", async () =>
      ready(await get("nosuch"))?.reason === "ImageNotFound" && ready(await get("fromvhd"))?.reason === "SourceNotSupported", 20_000);
  });

  it("deletes the image with policy Delete and keeps it with Retain", async () => {
    const kept = (await get("cis")).status?.imageId?.split("/").pop() ?? "";
    await kube.patch(objectPath(ref, "default", "cis"), { spec: { deletionPolicy: "Retain" } }, "application/merge-patch+json");
    await kubectl(cp.kubeconfigPath, ["delete", "vmimg", "cis", "--timeout=30s"]);
    assert.equal((await azure.compute.images.get("rg-vmimage", kept)).provisioningState, "Succeeded", "Retain keeps the image");

    const removed = (await get("ubuntu")).status?.imageId?.split("/").pop() ?? "";
    await kubectl(cp.kubeconfigPath, ["delete", "vmimg", "ubuntu", "--timeout=30s"]);
    await assert.rejects(azure.compute.images.get("rg-vmimage", removed), (err: { statusCode?: number }) => err.statusCode === 404);
  });
});
