import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { admin, fast, qemuImg, startTestEmulator, subscriptionId, type EmulatorFixture } from "../support/emulator-fixture.ts";

// Requests shaped like Microsoft's official examples (azure-rest-api-specs), answered as they show.
const rg = "myResourceGroup";
const location = "West US";
const compute = `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute`;

describe("emulator: the official example payloads", () => {
  let f: EmulatorFixture;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "aio-examples-"));
    f = await startTestEmulator({ recordFile: join(work, "requests.jsonl") });
    await f.resources.resourceGroups.createOrUpdate(rg, { location });
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "myVM", location, osType: "Linux", dataDisks: 2, power: "deallocated" });
    await f.compute.virtualMachines.generalize(rg, "myVM");
    const vm = await f.compute.virtualMachines.get(rg, "myVM");
    await f.compute.snapshots.createOrUpdate(rg, "mySnapshot", { location, creationData: { createOption: "Copy", sourceResourceId: vm.storageProfile?.osDisk?.managedDisk?.id ?? "" } }, fast);
    await f.compute.snapshots.createOrUpdate(rg, "mySnapshot2", { location, creationData: { createOption: "Copy", sourceResourceId: vm.storageProfile?.dataDisks?.[0]?.managedDisk?.id ?? "" } }, fast);
    await f.compute.galleries.createOrUpdate(rg, "myGalleryName", { location }, fast);
    await f.compute.galleryImages.createOrUpdate(rg, "myGalleryName", "myGalleryImageName", {
      location, osType: "Linux", osState: "Generalized", hyperVGeneration: "V2",
      identifier: { publisher: "myPublisherName", offer: "myOfferName", sku: "mySkuName" },
    }, fast);
  });

  after(async () => {
    await f.emu.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("images_createOrUpdate_fromSnapshot_withDataDisk (ids without a leading slash, as in the example)", async () => {
    const image = await f.compute.images.createOrUpdate(rg, "myImage", {
      location,
      storageProfile: {
        osDisk: { osType: "Linux", snapshot: { id: `subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/snapshots/mySnapshot` }, osState: "Generalized" },
        dataDisks: [{ lun: 1, snapshot: { id: `subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/snapshots/mySnapshot2` } }],
        zoneResilient: true,
      },
    }, fast);
    assert.equal(image.provisioningState, "Succeeded");
    assert.equal(image.location, "westus");
    assert.equal(image.storageProfile?.osDisk?.caching, "ReadWrite");
    assert.deepEqual(image.storageProfile?.dataDisks?.map((d) => [d.lun, d.caching]), [[1, "None"]]);
    assert.equal(image.storageProfile?.zoneResilient, true);
  });

  it("galleryImageVersions_createOrUpdate_fromVM", async () => {
    const version = await f.compute.galleryImageVersions.createOrUpdate(rg, "myGalleryName", "myGalleryImageName", "1.0.0", {
      location,
      publishingProfile: {
        targetRegions: [
          { name: "West US", regionalReplicaCount: 2, excludeFromLatest: false },
          { name: "East US", regionalReplicaCount: 2, storageAccountType: "Standard_ZRS", excludeFromLatest: false },
        ],
      },
      storageProfile: { source: { virtualMachineId: `${compute}/virtualMachines/myVM` } },
    }, fast);
    assert.equal(version.provisioningState, "Succeeded");
    assert.deepEqual(version.publishingProfile?.targetRegions?.map((t) => [t.name, t.regionalReplicaCount, t.storageAccountType]), [
      ["West US", 2, "Standard_LRS"],
      ["East US", 2, "Standard_ZRS"],
    ]);
  });

  it("galleryImageVersions_createOrUpdate_fromSnapshots (OS from a snapshot, data disk from a managed disk)", async () => {
    const vm = await f.compute.virtualMachines.get(rg, "myVM");
    const version = await f.compute.galleryImageVersions.createOrUpdate(rg, "myGalleryName", "myGalleryImageName", "1.0.1", {
      location,
      publishingProfile: { targetRegions: [{ name: "West US", regionalReplicaCount: 1 }] },
      storageProfile: {
        osDiskImage: { source: { id: `${compute}/snapshots/mySnapshot` }, hostCaching: "ReadOnly" },
        dataDiskImages: [{ source: { id: vm.storageProfile?.dataDisks?.[1]?.managedDisk?.id ?? "" }, lun: 1, hostCaching: "None" }],
      },
    }, fast);
    assert.equal(version.storageProfile?.osDiskImage?.hostCaching, "ReadOnly");
    assert.equal(version.storageProfile?.dataDiskImages?.[0]?.lun, 1);
    assert.ok((version.storageProfile?.osDiskImage?.sizeInGB ?? 0) >= 1);
  });

  it("galleryImageVersions_createOrUpdate_fromVHD (a qemu-img VHD in the blob service)", async () => {
    const raw = join(work, "os.raw");
    await qemuImg(["create", "-f", "raw", raw, "20M"]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, join(work, "os.vhd")]);
    const vhd = await readFile(join(work, "os.vhd"));
    const container = f.emu.blobs?.service.getContainerClient("gallerysource");
    assert.ok(container);
    await container.createIfNotExists();
    const page = container.getPageBlobClient("myvhd.vhd");
    await page.create(vhd.length);
    await page.uploadPages(vhd, 0, vhd.length);
    const version = await f.compute.galleryImageVersions.createOrUpdate(rg, "myGalleryName", "myGalleryImageName", "1.0.2", {
      location,
      publishingProfile: { targetRegions: [{ name: "West US", regionalReplicaCount: 1 }] },
      storageProfile: {
        osDiskImage: {
          source: { storageAccountId: `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Storage/storageAccounts/devstoreaccount1`, uri: page.url },
          hostCaching: "ReadOnly",
        },
      },
    }, fast);
    assert.equal(version.provisioningState, "Succeeded");
    assert.equal(version.storageProfile?.osDiskImage?.source?.uri, page.url);
  });

  it("virtualMachines: powerOff, start refused after generalize, delete leaves the disks unattached", async () => {
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "otherVM", location, osType: "Windows" });
    await f.compute.virtualMachines.powerOff(rg, "otherVM", fast);
    const view = await f.compute.virtualMachines.get(rg, "otherVM", { expand: "instanceView" });
    assert.ok(view.instanceView?.statuses?.some((s) => s.code === "PowerState/stopped"));
    await f.compute.virtualMachines.start(rg, "otherVM", fast);
    await f.compute.virtualMachines.delete(rg, "otherVM", fast);
    await assert.rejects(f.compute.virtualMachines.get(rg, "otherVM"), (err: { statusCode?: number }) => err.statusCode === 404);
    const disk = await f.compute.disks.get(rg, "otherVM_OsDisk_1");
    assert.equal(disk.diskState, "Unattached");
  });

  it("marketplaceAgreements_sign and cancel", async () => {
    const plan = ["center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu2204-l1-gen2"] as const;
    // The SDK maps this answer onto its terms model; the example's `properties.state` is read raw.
    const state = (raw: { bodyAsText?: string | null }) => (JSON.parse(raw.bodyAsText ?? "{}") as { properties: { state: string } }).properties.state;
    let signedState = "";
    const signed = await f.terms.marketplaceAgreements.sign(...plan, { onResponse: (raw) => (signedState = state(raw)) });
    assert.equal(signedState, "Active");
    assert.equal(signed.publisher, plan[0]);
    assert.equal((await f.terms.marketplaceAgreements.get("virtualmachine", ...plan)).accepted, true);
    let canceledState = "";
    await f.terms.marketplaceAgreements.cancel(...plan, { onResponse: (raw) => (canceledState = state(raw)) });
    assert.equal(canceledState, "Canceled");
    assert.equal((await f.terms.marketplaceAgreements.get("virtualmachine", ...plan)).accepted, false);
  });

  it("test control: added latency, and every ARM request recorded as a JSON line", async () => {
    await admin(f.emu, "POST", "faults", { operation: "Microsoft.Compute/galleries/read", latencyMs: 300, count: 1 });
    const t0 = performance.now();
    await f.compute.galleries.get(rg, "myGalleryName");
    assert.ok(performance.now() - t0 >= 300, "latency added");
    await admin(f.emu, "DELETE", "faults");
    const lines = (await readFile(join(work, "requests.jsonl"), "utf8")).trim().split("\n").map((l) => JSON.parse(l) as { method: string; url: string; body?: unknown });
    const put = lines.find((l) => l.method === "PUT" && l.url.includes("/images/myImage?"));
    assert.ok(put, "the image PUT was recorded");
    assert.match(put.url, /api-version=/);
    assert.deepEqual((put.body as { location: string }).location, "West US");
  });
});
