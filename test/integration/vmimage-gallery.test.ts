import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { MERGE_PATCH } from "../../src/runtime/kube-client.ts";
import { FileServer } from "../support/file-server.ts";
import { kubectl } from "../support/kubectl.ts";
import { OperatorEnv, readyCondition as ready } from "../support/operator-fixture.ts";
import { eventually } from "../support/runtime-fixture.ts";

const MiB = 1024 * 1024;
const ubuntu = { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } };

describe("VmImage controller: Azure Compute Gallery destinations", () => {
  let env: OperatorEnv;
  let files: FileServer;
  let dir: string;

  const apply = (name: string, spec: Record<string, unknown>) =>
    env.apply(name, { location: "westeurope", resourceGroup: "rg-gallery", osType: "Linux", ...spec });
  const get = (name: string) => env.get(name);
  const isReady = async (name: string) => {
    const o = await get(name);
    return ready(o)?.status === "True" && ready(o)?.observedGeneration === o.metadata?.generation;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-gallery-it-"));
    const raw = Buffer.alloc(20 * MiB);
    raw.fill(1, 0, 4096);
    await writeFile(join(dir, "disk.raw"), raw);
    await promisify(execFile)("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", join(dir, "disk.raw"), join(dir, "disk.vhd")]);
    files = await FileServer.start(dir);
    env = await OperatorEnv.start({ replicationDurationMs: 500 });
  });

  after(async () => {
    await env.stop();
    await files.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("publishes a managed image as version 1.0.0 to two regions, creating gallery and definition", async () => {
    await apply("web", {
      source: ubuntu,
      destination: { managedImage: {}, gallery: { galleryName: "golden", imageDefinition: "ubuntu", targetRegions: [{ name: "westeurope" }, { name: "northeurope", replicaCount: 2 }] } },
    });
    await eventually("Ready", () => isReady("web"), 60_000);
    const o = await get("web");
    assert.equal(o.status?.galleryImageVersion, "1.0.0");
    assert.deepEqual(o.status?.replication?.map((r) => [r.region, r.state, r.progress]), [["westeurope", "Completed", 100], ["northeurope", "Completed", 100]]);
    assert.equal(o.status?.imageReference?.id, o.status?.galleryImageVersionId);
    const def = await env.azure.compute.galleryImages.get("rg-gallery", "golden", "ubuntu");
    assert.deepEqual([def.osType, def.osState, def.hyperVGeneration], ["Linux", "Generalized", "V2"]);
    const version = await env.azure.compute.galleryImageVersions.get("rg-gallery", "golden", "ubuntu", "1.0.0");
    assert.equal(version.storageProfile?.source?.id, o.status?.imageId);
  });

  it("picks the next patch version for another image of the same definition, from a VHD, without a managed image", async () => {
    await apply("web-next", { source: { vhd: { url: `${files.url}/disk.vhd` } }, destination: { gallery: { galleryName: "golden", imageDefinition: "ubuntu" } } });
    await eventually("Ready", () => isReady("web-next"), 60_000);
    const o = await get("web-next");
    assert.equal(o.status?.galleryImageVersion, "1.0.1");
    assert.equal(o.status?.imageId, undefined);
    await eventually("source disk removed", async () => {
      for await (const d of env.azure.compute.disks.listByResourceGroup("rg-gallery")) if (d.name?.includes("web-next")) return false;
      return true;
    });
  });

  it("updates the target regions of the existing version instead of making a new one", async () => {
    await env.kube.patch(env.path("web"), { spec: { destination: { gallery: { targetRegions: [{ name: "westeurope" }, { name: "northeurope", replicaCount: 2 }, { name: "eastus" }], excludeFromLatest: true } } } }, MERGE_PATCH);
    await eventually("Ready again", () => isReady("web"), 60_000);
    const version = await env.azure.compute.galleryImageVersions.get("rg-gallery", "golden", "ubuntu", "1.0.0");
    assert.deepEqual(version.publishingProfile?.targetRegions?.map((t) => t.name).sort(), ["eastus", "northeurope", "westeurope"]);
    assert.equal(version.publishingProfile?.excludeFromLatest, true);
    const versions: string[] = [];
    for await (const v of env.azure.compute.galleryImageVersions.listByGalleryImage("rg-gallery", "golden", "ubuntu")) versions.push(v.name ?? "");
    assert.deepEqual(versions.sort(), ["1.0.0", "1.0.1"]);
  });

  it("creates a Trusted Launch definition from spec.features, and refuses a definition without the feature", async () => {
    const gallery = { galleryName: "golden", targetRegions: [{ name: "westeurope" }] };
    await apply("trusted", { source: ubuntu, features: [{ name: "SecurityType", value: "TrustedLaunch" }], destination: { gallery: { ...gallery, imageDefinition: "ubuntu-tl" } } });
    await eventually("Ready", () => isReady("trusted"), 60_000);
    const def = await env.azure.compute.galleryImages.get("rg-gallery", "golden", "ubuntu-tl");
    assert.deepEqual(def.features?.map((f) => [f.name, f.value]), [["SecurityType", "TrustedLaunch"]]);
    // The plain "ubuntu" definition made earlier lacks the feature.
    await apply("trusted-wrong", { source: ubuntu, features: [{ name: "SecurityType", value: "TrustedLaunch" }], destination: { gallery: { ...gallery, imageDefinition: "ubuntu" } } });
    await eventually("Stalled", async () => ready(await get("trusted-wrong"))?.reason === "ImageDefinitionMismatch", 30_000);
    assert.match(ready(await get("trusted-wrong"))?.message ?? "", /feature SecurityType \(unset\) \(this image: TrustedLaunch\)/);
  });

  it("refuses to publish into a definition whose OS type differs", async () => {
    await env.azure.compute.galleryImages.createOrUpdate("rg-gallery", "golden", "windows", {
      location: "westeurope", osType: "Windows", osState: "Generalized", hyperVGeneration: "V2",
      identifier: { publisher: "contoso", offer: "win", sku: "2022" },
    }, { updateIntervalInMs: 20 });
    await apply("wrong-os", { source: ubuntu, destination: { gallery: { galleryName: "golden", imageDefinition: "windows" } } });
    await eventually("Stalled", async () => ready(await get("wrong-os"))?.reason === "ImageDefinitionMismatch", 30_000);
    assert.match(ready(await get("wrong-os"))?.message ?? "", /osType Windows \(this image: Linux\)/);
  });

  it("makes a managed image from a community gallery image, latest resolved and pinned", async () => {
    await apply("debian", {
      source: { gallery: { communityGalleryImageId: "/CommunityGalleries/contoso-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d/Images/debian-12" } },
      destination: { managedImage: {} },
    });
    await eventually("Ready", () => isReady("debian"), 60_000);
    assert.equal((await get("debian")).status?.resolvedVersion, "1.0.0");
  });

  it("publishes one of the subscription's own versions into another definition without a disk", async () => {
    const sourceId = (await get("web")).status?.galleryImageVersionId ?? "";
    await apply("web-copy", { source: { gallery: { id: sourceId } }, destination: { gallery: { galleryName: "golden", imageDefinition: "ubuntu-copy" } } });
    await eventually("Ready", () => isReady("web-copy"), 60_000);
    const copy = await env.azure.compute.galleryImageVersions.get("rg-gallery", "golden", "ubuntu-copy", "1.0.0");
    assert.equal(copy.storageProfile?.source?.id, sourceId);
  });

  it("refuses a shared gallery image that is not offered in the location", async () => {
    await apply("shared-elsewhere", {
      location: "eastus",
      source: { gallery: { sharedGalleryImageId: "/SharedGalleries/00000000-0000-0000-0000-000000000000-SHAREDGALLERY/Images/baseline-linux/Versions/2.1.0" } },
      destination: { managedImage: {} },
    });
    await eventually("Stalled", async () => ready(await get("shared-elsewhere"))?.reason === "ImageNotFound", 30_000);
  });

  it("deletes the version (not the shared gallery) with policy Delete", async () => {
    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "web-next", "--timeout=30s"]);
    await assert.rejects(env.azure.compute.galleryImageVersions.get("rg-gallery", "golden", "ubuntu", "1.0.1"), (e: { statusCode?: number }) => e.statusCode === 404);
    assert.equal((await env.azure.compute.galleries.get("rg-gallery", "golden")).name, "golden");
  });
});
