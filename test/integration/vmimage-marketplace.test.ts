import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { collectionPath, MERGE_PATCH, type ObjectList } from "../../src/runtime/kube-client.ts";
import { kubectl } from "../support/kubectl.ts";
import { OperatorEnv, readyCondition as ready } from "../support/operator-fixture.ts";
import { eventually } from "../support/runtime-fixture.ts";

interface CoreEvent {
  reason: string;
  type: string;
  involvedObject: { name?: string };
}

describe("VmImage controller: Marketplace sources against the emulator", () => {
  let env: OperatorEnv;
  const apply = (name: string, spec: Record<string, unknown>) => env.apply(name, spec);
  const get = (name: string) => env.get(name);
  const base = { location: "westeurope", resourceGroup: "rg-vmimage", osType: "Linux" };

  before(async () => {
    env = await OperatorEnv.start({ operationDurationMs: 200 });
  });

  after(async () => {
    await env.stop();
  });

  it("resolves latest, pins it, and makes a managed image through a temporary disk", async () => {
    await apply("ubuntu", { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" } }, destination: { managedImage: {} }, tags: { team: "platform" } });
    await eventually("Ready", async () => ready(await get("ubuntu"))?.status === "True", 30_000);
    const obj = await get("ubuntu");
    assert.equal(obj.status?.resolvedVersion, "24.04.202411030");
    assert.equal(obj.status?.observedGeneration, 1);
    assert.deepEqual([obj.status?.source, obj.status?.destination], ["marketplace Canonical:ubuntu-24_04-lts:server", "image"]);
    const table = await kubectl(env.cp.kubeconfigPath, ["get", "vmimg", "ubuntu"]);
    assert.match(table.stdout, /ubuntu\s+True\s+Available\s+marketplace Canonical:ubuntu-24_04-lts:server\s+image\s+24\.04\.202411030\s/);
    assert.deepEqual(obj.metadata?.finalizers, ["azureimages.dev/finalizer"]);
    const name = obj.status?.imageId?.split("/").pop() ?? "";
    const image = await env.azure.compute.images.get("rg-vmimage", name);
    assert.equal(image.tags?.team, "platform");
    assert.equal(image.storageProfile?.osDisk?.osState, "Generalized");
    await eventually("temporary disk removed", async () => {
      const disks: string[] = [];
      for await (const d of env.azure.compute.disks.listByResourceGroup("rg-vmimage")) disks.push(d.name ?? "");
      return disks.length === 0;
    });
    const conditions = obj.status?.conditions?.map((c) => c.type);
    assert.deepEqual(conditions, ["Ready"], "Reconciling and Stalled are gone once Ready");
  });

  it("pins latest for reference only (no destination): status.imageReference names the exact version, nothing is written to Azure", async () => {
    await fetch(`${env.emu.baseUrl}/admin/counters`, { method: "DELETE" });
    await apply("ubuntu-ref", { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } } });
    await eventually("Ready", async () => ready(await get("ubuntu-ref"))?.status === "True", 30_000);
    const o = await get("ubuntu-ref");
    assert.deepEqual(o.status?.imageReference, { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "24.04.202411030" });
    assert.equal(o.status?.resolvedVersion, "24.04.202411030");
    assert.equal(o.status?.destination, "reference");
    assert.equal(o.status?.imageId, undefined);
    const table = await kubectl(env.cp.kubeconfigPath, ["get", "vmimg", "ubuntu-ref"]);
    assert.match(table.stdout, /ubuntu-ref\s+True\s+Available\s+marketplace Canonical:ubuntu-24_04-lts:server\s+reference\s+24\.04\.202411030\s/);
    const counters = (await (await fetch(`${env.emu.baseUrl}/admin/counters`)).json()) as Record<string, number>;
    const arm = Object.keys(counters).filter((k) => !k.startsWith("admin/") && !k.startsWith("token "));
    assert.ok(arm.length > 0 && arm.every((k) => k.includes("/read ")), `reads only: ${JSON.stringify(counters)}`);
    await env.kube.delete(env.path("ubuntu-ref"));
    await eventually("deleted", async () => {
      try {
        await get("ubuntu-ref");
        return false;
      } catch {
        return true;
      }
    });
  });

  it("observes a Ready image with reads only: no write to Azure when nothing changed", async () => {
    const counters = async () => (await (await fetch(`${env.emu.baseUrl}/admin/counters`)).json()) as Record<string, number>;
    await fetch(`${env.emu.baseUrl}/admin/counters`, { method: "DELETE" });
    for (let i = 0; i < 3; i++) {
      await env.kube.patch(env.path("ubuntu"), { metadata: { annotations: { "azureimages.dev/observe": `pass-${i}` } } }, MERGE_PATCH);
      await eventually("observed", async () => {
        const c = await counters();
        return (c["Microsoft.Compute/images/read 200"] ?? 0) >= i + 1;
      });
    }
    const c = await counters();
    const arm = Object.entries(c).filter(([k]) => !k.startsWith("admin/"));
    assert.deepEqual(arm.filter(([k]) => !k.includes("/read ")), [], `only reads: ${JSON.stringify(c)}`);
    // One read per pass: the image itself.
    assert.deepEqual(arm, [["Microsoft.Compute/images/read 200", 3]]);
  });

  it("heals an image deleted out of band", async () => {
    const obj = await get("ubuntu");
    const name = obj.status?.imageId?.split("/").pop() ?? "";
    await env.azure.compute.images.delete("rg-vmimage", name, { updateIntervalInMs: 20 });
    // A spec-neutral nudge (an annotation) stands in for the periodic drift check.
    await env.kube.patch(env.path("ubuntu"), { metadata: { annotations: { "azureimages.dev/observe": "now" } } }, MERGE_PATCH);
    await eventually("recreated", async () => {
      try {
        return (await env.azure.compute.images.get("rg-vmimage", name)).provisioningState === "Succeeded";
      } catch {
        return false;
      }
    }, 30_000);
  });

  it("heals its resource group deleted out of band, with the image in it", async () => {
    await apply("oob-group", { ...base, resourceGroup: "rg-vmimage-oob", source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } }, destination: { managedImage: {} } });
    await eventually("Ready", async () => ready(await get("oob-group"))?.status === "True", 30_000);
    const name = (await get("oob-group")).status?.imageId?.split("/").pop() ?? "";
    // Deleting the group deletes what is in it. The operator saw the group a moment ago, so the next
    // pass trusts it, meets ResourceGroupNotFound on its first write, and looks again at once (not a
    // minute later, when what it saw would be stale anyway: hence the 30 s bound).
    await env.azure.resources.resourceGroups.delete("rg-vmimage-oob", { updateIntervalInMs: 20 });
    await env.kube.patch(env.path("oob-group"), { metadata: { annotations: { "azureimages.dev/observe": "now" } } }, MERGE_PATCH);
    await eventually("group and image recreated", async () => {
      try {
        return (await env.azure.compute.images.get("rg-vmimage-oob", name)).provisioningState === "Succeeded";
      } catch {
        return false;
      }
    }, 30_000);
    await eventually("Ready again", async () => ready(await get("oob-group"))?.status === "True", 30_000);
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
    const terms = await env.azure.terms.marketplaceAgreements.get("virtualmachine", cis.publisher, cis.offer, cis.sku);
    assert.equal(terms.accepted, true);
    const events = await env.kube.get<ObjectList<CoreEvent>>(collectionPath({ group: "", version: "v1", plural: "events" }, "default"));
    assert.ok(events.items.some((e) => e.involvedObject.name === "cis" && e.reason === "TermsAccepted"));
    assert.ok(events.items.some((e) => e.involvedObject.name === "cis" && e.reason === "TermsNotAccepted" && e.type === "Warning"));
  });

  it("reports a missing image and an incomplete source with specific reasons", async () => {
    await apply("nosuch", { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "1.2.3" } }, destination: { managedImage: {} } });
    await apply("emptyvhd", { ...base, source: { vhd: {} }, destination: { managedImage: {} } });
    await eventually("both stalled", async () =>
      ready(await get("nosuch"))?.reason === "ImageNotFound" && ready(await get("emptyvhd"))?.reason === "InvalidSpec", 20_000);
    assert.match(ready(await get("emptyvhd"))?.message ?? "", /spec\.source\.vhd needs exactly one of url or blobUri/);
  });

  it("with latestCheckInterval, reports a newer version once and keeps the pinned one, also across spec changes", async () => {
    const offer = { publisher: "Contoso", offer: "hardened-linux", sku: "base" };
    const catalog = (version: string) =>
      fetch(`${env.emu.baseUrl}/admin/catalog/marketplace`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...offer, version, osType: "Linux", hyperVGeneration: "V2" }) });
    await catalog("1.0.0");
    await apply("watched", { ...base, latestCheckInterval: "1s", source: { marketplace: offer }, destination: { managedImage: {} } });
    await eventually("Ready", async () => ready(await get("watched"))?.status === "True", 20_000);
    assert.equal((await get("watched")).status?.resolvedVersion, "1.0.0");
    await catalog("1.1.0");
    await eventually("newer version seen", async () => (await get("watched")).status?.latestCheck?.version === "1.1.0", 20_000);
    const o = await get("watched");
    assert.equal(o.status?.resolvedVersion, "1.0.0", "the image stays built from the pinned version");
    const events = await env.kube.get<{ items: Array<{ reason: string; message: string; involvedObject: { name: string } }> }>("/api/v1/namespaces/default/events");
    const newer = events.items.filter((e) => e.involvedObject.name === "watched" && e.reason === "NewerVersionAvailable");
    assert.equal(newer.length, 1);
    assert.match(newer[0]?.message ?? "", /Source version 1\.1\.0 is available; this image is built from 1\.0\.0/);
    // A spec change (tags) does not re-resolve: the pin holds.
    await apply("watched", { ...base, latestCheckInterval: "1s", source: { marketplace: offer }, destination: { managedImage: {} }, tags: { a: "b" } });
    await eventually("Ready at generation 2", async () => {
      const x = await get("watched");
      return ready(x)?.status === "True" && ready(x)?.observedGeneration === 2;
    }, 20_000);
    assert.equal((await get("watched")).status?.resolvedVersion, "1.0.0");
    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "watched", "--timeout=30s"]);
  });

  it("uses the identity of the Secret named in credentialsRef, and says when it cannot", async () => {
    const team = { tenantId: "00000000-0000-0000-0000-00000000beef", clientId: "00000000-0000-0000-0000-00000000c0de", secret: "team-a-secret-value" };
    await fetch(`${env.emu.baseUrl}/admin/clients`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(team) });
    const secret = (name: string, clientSecret: string) =>
      kubectl(env.cp.kubeconfigPath, ["create", "secret", "generic", name, `--from-literal=AZURE_TENANT_ID=${team.tenantId}`, `--from-literal=AZURE_CLIENT_ID=${team.clientId}`, `--from-literal=AZURE_CLIENT_SECRET=${clientSecret}`]);
    await secret("team-a", team.secret);
    await secret("team-a-wrong", "not-the-secret");
    const spec = (ref: string) => ({ ...base, credentialsRef: { name: ref }, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } }, destination: { managedImage: {} } });

    await apply("team-ok", spec("team-a"));
    await apply("team-wrong", spec("team-a-wrong"));
    await apply("team-missing", spec("no-such-secret"));
    await eventually("team-ok Ready", async () => ready(await get("team-ok"))?.status === "True", 30_000);
    // The operator's own identity works, so a failure here shows the Secret's identity is the one used.
    await eventually("team-wrong fails to authenticate", async () => (await get("team-wrong")).status?.lastError !== undefined, 30_000);
    const wrong = await get("team-wrong");
    assert.equal(ready(wrong)?.status, "False");
    await eventually("team-missing Stalled", async () => ready(await get("team-missing"))?.reason === "CredentialsNotFound", 30_000);
    assert.match(ready(await get("team-missing"))?.message ?? "", /Secret default\/no-such-secret \(spec\.credentialsRef\) does not exist/);
    // No secret value ends up in status or Events.
    const events = await kubectl(env.cp.kubeconfigPath, ["get", "events", "-o", "json"]);
    for (const text of [JSON.stringify(wrong.status), JSON.stringify((await get("team-ok")).status), events.stdout]) {
      assert.ok(!text.includes(team.secret) && !text.includes("not-the-secret"), "no secret value shown");
    }
    // Without a working identity nothing can be deleted in Azure; Retain lets such an object go.
    await env.kube.patch(env.path("team-wrong"), { spec: { deletionPolicy: "Retain" } }, MERGE_PATCH);
    for (const name of ["team-ok", "team-wrong", "team-missing"]) await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", name, "--timeout=30s"]);
  });

  it("refuses an existing image it did not create, and adopts it when told to", async () => {
    const { compute } = env.azure;
    await env.azure.resources.resourceGroups.createOrUpdate("rg-vmimage", { location: "westeurope" });
    const disk = await compute.disks.createOrUpdate("rg-vmimage", "handmade-disk", { location: "westeurope", diskSizeGB: 1, creationData: { createOption: "Empty" } });
    await compute.images.createOrUpdate("rg-vmimage", "handmade", { location: "westeurope", tags: { team: "x" }, storageProfile: { osDisk: { osType: "Linux", osState: "Generalized", managedDisk: { id: disk.id ?? "" } } } });
    const spec = { ...base, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } }, destination: { managedImage: { name: "handmade" } } };
    await apply("adopter", spec);
    await eventually("refused", async () => ready(await get("adopter"))?.reason === "ResourceNotOwned", 20_000);
    assert.match(ready(await get("adopter"))?.message ?? "", /set spec\.adopt: true to take it over/);
    assert.equal((await compute.images.get("rg-vmimage", "handmade")).tags?.["azureimages.dev-owner"], undefined, "not touched");

    await apply("adopter", { ...spec, adopt: true });
    await eventually("Ready", async () => ready(await get("adopter"))?.status === "True", 20_000);
    const adopted = await compute.images.get("rg-vmimage", "handmade");
    assert.equal(adopted.tags?.["azureimages.dev-owner"], (await get("adopter")).metadata?.uid);
    assert.equal(adopted.storageProfile?.osDisk?.managedDisk?.id, disk.id, "the existing image itself, not a new one");
    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "adopter", "--timeout=30s"]);
    await assert.rejects(compute.images.get("rg-vmimage", "handmade"), { statusCode: 404 });
  });

  it("deletes the image with policy Delete and keeps it with Retain", async () => {
    const kept = (await get("cis")).status?.imageId?.split("/").pop() ?? "";
    await env.kube.patch(env.path("cis"), { spec: { deletionPolicy: "Retain" } }, MERGE_PATCH);
    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "cis", "--timeout=30s"]);
    assert.equal((await env.azure.compute.images.get("rg-vmimage", kept)).provisioningState, "Succeeded", "Retain keeps the image");

    const removed = (await get("ubuntu")).status?.imageId?.split("/").pop() ?? "";
    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "ubuntu", "--timeout=30s"]);
    await assert.rejects(env.azure.compute.images.get("rg-vmimage", removed), (err: { statusCode?: number }) => err.statusCode === 404);
  });
});
