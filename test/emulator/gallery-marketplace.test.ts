import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { admin, fast, refuses, startTestEmulator, subscriptionId, type EmulatorFixture } from "../support/emulator-fixture.ts";

const rg = "rg-gallery";
const location = "westeurope";


describe("emulator: galleries, Marketplace and terms", () => {
  let f: EmulatorFixture;
  let imageId = "";

  before(async () => {
    f = await startTestEmulator({ replicationDurationMs: 800 });
    await f.resources.resourceGroups.createOrUpdate(rg, { location });
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "src-vm", location, osType: "Linux" });
    await f.compute.virtualMachines.deallocate(rg, "src-vm", fast);
    await f.compute.virtualMachines.generalize(rg, "src-vm");
    const image = await f.compute.images.createOrUpdate(rg, "src-image", {
      location,
      hyperVGeneration: "V2",
      sourceVirtualMachine: { id: `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/src-vm` },
    }, fast);
    imageId = image.id ?? "";
  });

  after(async () => {
    await f.emu.stop();
  });

  it("creates a gallery, an image definition and a version replicated to two regions", async () => {
    const gallery = await f.compute.galleries.createOrUpdate(rg, "myGallery", { location, description: "images" }, fast);
    assert.equal(gallery.identifier?.uniqueName, `${subscriptionId}-MYGALLERY`);
    const def = await f.compute.galleryImages.createOrUpdate(rg, "myGallery", "ubuntu", {
      location,
      osType: "Linux",
      osState: "Generalized",
      hyperVGeneration: "V2",
      identifier: { publisher: "contoso", offer: "ubuntu", sku: "24_04" },
      features: [{ name: "SecurityType", value: "TrustedLaunch" }],
    }, fast);
    assert.equal(def.provisioningState, "Succeeded");

    // Start the version without waiting, then watch replication progress per region
    const poller = f.compute.galleryImageVersions.createOrUpdate(rg, "myGallery", "ubuntu", "1.0.0", {
      location,
      publishingProfile: {
        targetRegions: [
          { name: "West Europe", regionalReplicaCount: 1, storageAccountType: "Standard_LRS" },
          { name: "North Europe", regionalReplicaCount: 2, storageAccountType: "Standard_ZRS" },
        ],
      },
      storageProfile: { source: { id: imageId } },
    }, fast);
    await sleep(150);
    const during = await f.compute.galleryImageVersions.get(rg, "myGallery", "ubuntu", "1.0.0", { expand: "ReplicationStatus" });
    assert.equal(during.replicationStatus?.aggregatedState, "InProgress");
    assert.deepEqual(during.replicationStatus?.summary?.map((s) => s.region), ["westeurope", "northeurope"]);
    const version = await poller;
    assert.equal(version.provisioningState, "Succeeded");
    const done = await f.compute.galleryImageVersions.get(rg, "myGallery", "ubuntu", "1.0.0", { expand: "ReplicationStatus" });
    assert.equal(done.replicationStatus?.aggregatedState, "Completed");
    assert.ok(done.replicationStatus?.summary?.every((s) => s.state === "Completed" && s.progress === 100));
    assert.equal(done.publishingProfile?.targetRegions?.[1]?.regionalReplicaCount, 2);
    assert.ok(done.publishingProfile?.publishedDate);
  });

  it("refuses a version whose source OS state differs from the definition's", async () => {
    await f.compute.galleryImages.createOrUpdate(rg, "myGallery", "specialized", {
      location, osType: "Linux", osState: "Specialized", hyperVGeneration: "V2",
      identifier: { publisher: "contoso", offer: "ubuntu", sku: "spec" },
    }, fast);
    await refuses(
      f.compute.galleryImageVersions.createOrUpdate(rg, "myGallery", "specialized", "1.0.0", { location, storageProfile: { source: { id: imageId } } }, fast),
      400, "BadRequest", /has a different OS state \['Generalized'\] than the parent gallery image OS state \['Specialized'\]/,
    );
  });

  it("refuses changes to an image definition's identity and deleting a gallery that still has images", async () => {
    await refuses(
      f.compute.galleryImages.createOrUpdate(rg, "myGallery", "ubuntu", {
        location, osType: "Linux", osState: "Specialized", hyperVGeneration: "V2",
        identifier: { publisher: "contoso", offer: "ubuntu", sku: "24_04" },
      }, fast),
      409, "PropertyChangeNotAllowed", /osState/,
    );
    await refuses(f.compute.galleries.delete(rg, "myGallery", fast), 409, "CannotDeleteResource");
    await refuses(
      f.compute.galleryImageVersions.createOrUpdate(rg, "myGallery", "no-such-def", "1.0.0", { location, storageProfile: { source: { id: imageId } } }, fast),
      404, "ParentResourceNotFound",
    );
  });

  it("lists Marketplace versions newest first with $top and resolves latest", async () => {
    const latest = await f.compute.virtualMachineImages.list(location, "Canonical", "ubuntu-24_04-lts", "server", { top: 1, orderby: "name desc" });
    assert.equal(latest.length, 1);
    assert.equal(latest[0]?.name, "24.04.202411030");
    const all = await f.compute.virtualMachineImages.list(location, "Canonical", "ubuntu-24_04-lts", "server");
    assert.deepEqual(all.map((v) => v.name), ["24.04.202409120", "24.04.202410020", "24.04.202411030"]);
    const image = await f.compute.virtualMachineImages.get(location, "MicrosoftSQLServer", "sql2022-ws2022", "standard-gen2", "16.0.241015");
    assert.equal(image.osDiskImage?.operatingSystem, "Windows");
    assert.deepEqual(image.dataDiskImages?.map((d) => d.lun), [0, 1]);
    assert.equal(image.hyperVGeneration, "V2");
    await refuses(f.compute.virtualMachineImages.get(location, "Canonical", "ubuntu-24_04-lts", "server", "1.2.3"), 404, "NotFound");
  });

  it("requires accepted terms for a plan image, accepted through Microsoft.MarketplaceOrdering", async () => {
    const [version] = await f.compute.virtualMachineImages.list(location, "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu2204-l1-gen2", { top: 1, orderby: "name desc" });
    assert.ok(version?.id);
    const image = await f.compute.virtualMachineImages.get(location, "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu2204-l1-gen2", version.name);
    assert.deepEqual(image.plan, { publisher: "center-for-internet-security-inc", product: "cis-ubuntu-linux-2204-l1", name: "cis-ubuntu2204-l1-gen2" });
    const fromImage = { location, creationData: { createOption: "FromImage" as const, imageReference: { id: version.id } } };
    await refuses(f.compute.disks.createOrUpdate(rg, "cis-os", fromImage, fast), 400, "ResourcePurchaseValidationFailed", /have not accepted the legal terms/);

    const terms = await f.terms.marketplaceAgreements.get("virtualmachine", "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu2204-l1-gen2");
    assert.equal(terms.accepted, false);
    assert.match(terms.licenseTextLink ?? "", /^https:\/\//);
    const accepted = await f.terms.marketplaceAgreements.create("virtualmachine", "center-for-internet-security-inc", "cis-ubuntu-linux-2204-l1", "cis-ubuntu2204-l1-gen2", { ...terms, accepted: true });
    assert.equal(accepted.accepted, true);
    const disk = await f.compute.disks.createOrUpdate(rg, "cis-os", fromImage, fast);
    assert.equal(disk.provisioningState, "Succeeded");
  });

  it("serves shared and community gallery image versions", async () => {
    const community = await f.compute.communityGalleryImageVersions.get(location, "contoso-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "debian-12", "latest");
    assert.equal(community.name, "1.0.0");
    assert.equal(community.uniqueId, "/CommunityGalleries/contoso-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/Images/debian-12/Versions/1.0.0");
    const shared = await f.compute.sharedGalleryImageVersions.get(location, "00000000-0000-0000-0000-000000000000-SHAREDGALLERY", "baseline-linux", "2.1.0");
    assert.equal(shared.storageProfile?.osDiskImage?.diskSizeGB, 30);
    await refuses(f.compute.sharedGalleryImageVersions.get("eastus", "00000000-0000-0000-0000-000000000000-SHAREDGALLERY", "baseline-linux", "2.1.0"), 404, "ResourceNotFound");
  });
});
