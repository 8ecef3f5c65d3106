import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { ImageCapture } from "../../src/api/types.ts";
import { admin } from "../support/emulator-fixture.ts";
import { kubectl } from "../support/kubectl.ts";
import { credentials, OperatorEnv, readyCondition as ready } from "../support/operator-fixture.ts";
import { eventually } from "../support/runtime-fixture.ts";

const RG = "rg-capture";

describe("ImageCapture controller", () => {
  let env: OperatorEnv;

  const seedVm = (name: string, osType: "Linux" | "Windows", extra: Record<string, unknown> = {}) =>
    admin(env.emu, "POST", "virtualMachines", { subscriptionId: credentials.subscriptionId, resourceGroup: RG, name, location: "westeurope", osType, diskSizeMiB: 32, ...extra });
  const vmState = async (name: string) => (await admin(env.emu, "GET", `virtualMachines/${name}`)) as { power: string; generalized: boolean; guestDeprovisioned: boolean };
  const stepStates = (o: ImageCapture) => Object.fromEntries((o.status?.steps ?? []).map((s) => [s.name, s.state]));
  const condition = (o: ImageCapture, type: string) => o.status?.conditions?.find((c) => c.type === type);
  const until = async (name: string, what: string, probe: (o: ImageCapture) => boolean, timeoutMs = 60_000) => {
    let last: ImageCapture | undefined;
    await eventually(`${name}: ${what}`, async () => probe((last = await env.getCapture(name))), timeoutMs).catch((err: unknown) => {
      throw new Error(`${String(err)}; last status: ${JSON.stringify(last?.status)}`);
    });
    return env.getCapture(name);
  };
  const isReady = (o: ImageCapture) => ready(o)?.status === "True" && ready(o)?.observedGeneration === o.metadata?.generation;
  const isStalled = (reason: string) => (o: ImageCapture) => condition(o, "Stalled")?.status === "True" && condition(o, "Stalled")?.reason === reason;
  const snapshotsIn = async () => {
    const names: string[] = [];
    for await (const s of env.azure.compute.snapshots.listByResourceGroup(RG)) names.push(s.name ?? "");
    return names;
  };
  const events = async (name: string) => {
    const { stdout } = await kubectl(env.cp.kubeconfigPath, ["get", "events", "--field-selector", `involvedObject.name=${name}`, "-o", "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}"]);
    return stdout.trim().split("\n");
  };

  before(async () => {
    env = await OperatorEnv.start({ replicationDurationMs: 300 });
  });

  after(async () => {
    await env.stop();
  });

  it("captures a running Linux VM with two data disks into a managed image and a gallery version", async () => {
    await seedVm("linux-vm", "Linux", { dataDisks: 2 });
    await env.applyCapture("linux", {
      virtualMachine: { resourceGroup: RG, name: "linux-vm" },
      osType: "Linux",
      destination: { managedImage: {}, gallery: { galleryName: "captures", imageDefinition: "linux-vm-image", targetRegions: [{ name: "westeurope" }, { name: "northeurope" }] } },
    });
    const o = await until("linux", "Ready", isReady);
    assert.deepEqual(stepStates(o), {
      Validate: "Succeeded",
      Backup: "Succeeded",
      Generalize: "Succeeded",
      Deallocate: "Succeeded",
      MarkGeneralized: "Succeeded",
      CreateImage: "Succeeded",
      CreateGalleryVersion: "Succeeded",
      Replicate: "Succeeded",
      Cleanup: "Skipped",
    });
    assert.equal(o.status?.currentStep, "Done");
    for (const s of o.status?.steps ?? []) if (s.state === "Succeeded") assert.ok(s.startedAt && s.finishedAt && s.message, `${s.name} has times and a message`);
    // Backups of all three disks, retained.
    assert.equal(o.status?.snapshotIds?.length, 3);
    assert.deepEqual(o.status?.snapshots?.map((s) => s.lun ?? "os"), ["os", 0, 1]);
    assert.equal((await snapshotsIn()).length, 3);
    // The guest was deprovisioned by Run Command, then the VM deallocated and marked generalized.
    assert.deepEqual(await vmState("linux-vm"), { id: o.status?.virtualMachine?.id, power: "deallocated", generalized: true, guestDeprovisioned: true });
    const command = await env.azure.compute.virtualMachineRunCommands.getByVirtualMachine(RG, "linux-vm", `default-linux-${(o.metadata?.uid ?? "").slice(0, 8)}-generalize`, { expand: "instanceView" });
    assert.equal(command.source?.script, "waagent -deprovision+user -force");
    assert.deepEqual([command.instanceView?.executionState, command.instanceView?.exitCode], ["Succeeded", 0]);
    // A VM image: the managed image holds the OS disk and both data disks; the version is made from it.
    const imageName = o.status?.imageId?.split("/").pop() ?? "";
    const image = await env.azure.compute.images.get(RG, imageName);
    assert.equal(image.sourceVirtualMachine?.id, o.status?.virtualMachine?.id);
    assert.equal(image.storageProfile?.dataDisks?.length, 2);
    assert.equal(image.hyperVGeneration, "V2");
    const version = await env.azure.compute.galleryImageVersions.get(RG, "captures", "linux-vm-image", "1.0.0");
    assert.equal(version.storageProfile?.source?.id, o.status?.imageId);
    assert.deepEqual(o.status?.replication?.map((r) => [r.region, r.state]), [["westeurope", "Completed"], ["northeurope", "Completed"]]);
    assert.equal(o.status?.imageReference?.id, o.status?.galleryImageVersionId);
    const reasons = await events("linux");
    for (const r of ["BackupSucceeded", "GeneralizeStarted", "GeneralizeSucceeded", "DeallocateSucceeded", "MarkGeneralizedSucceeded", "CreateImageSucceeded", "ReplicateSucceeded", "Available"]) {
      assert.ok(reasons.includes(r), `Event ${r} in ${reasons.join(",")}`);
    }
    // What a user sees.
    const { stdout } = await kubectl(env.cp.kubeconfigPath, ["get", "imgcap", "linux"]);
    assert.match(stdout, /linux\s+True\s+Done\s+Available/);
  });

  it("captures a Windows VM through Sysprep into a gallery OS image, then deletes the VM and the snapshots", async () => {
    await seedVm("win-vm", "Windows", { dataDisks: 1 });
    await env.applyCapture("windows", {
      virtualMachine: { id: `/subscriptions/${credentials.subscriptionId}/resourceGroups/${RG}/providers/Microsoft.Compute/virtualMachines/win-vm` },
      includeDataDisks: false,
      backup: { retain: false },
      afterCapture: "Delete",
      destination: { gallery: { galleryName: "captures", imageDefinition: "windows-os" } },
    });
    const o = await until("windows", "Ready", isReady);
    assert.equal(stepStates(o).Cleanup, "Succeeded");
    assert.equal(stepStates(o).CreateImage, "Skipped");
    assert.match(o.status?.steps?.find((s) => s.name === "Generalize")?.message ?? "", /Sysprep finished/);
    // An OS image: made from the OS disk alone, no data disk images.
    const version = await env.azure.compute.galleryImageVersions.get(RG, "captures", "windows-os", "1.0.0");
    assert.equal(version.storageProfile?.osDiskImage?.source?.id, o.status?.virtualMachine?.osDiskId);
    assert.equal(version.storageProfile?.dataDiskImages?.length ?? 0, 0);
    const def = await env.azure.compute.galleryImages.get(RG, "captures", "windows-os");
    assert.deepEqual([def.osType, def.osState], ["Windows", "Generalized"]);
    // afterCapture Delete: the VM and all its disks are gone, after the outputs were Ready; retain false: the snapshots too.
    await assert.rejects(env.azure.compute.virtualMachines.get(RG, "win-vm"), { statusCode: 404 });
    await assert.rejects(env.azure.compute.disks.get(RG, "win-vm_OsDisk_1"), { statusCode: 404 });
    await assert.rejects(env.azure.compute.disks.get(RG, "win-vm_DataDisk_0"), { statusCode: 404 });
    assert.equal((await snapshotsIn()).filter((n) => n.includes("windows")).length, 0);
    assert.deepEqual(o.status?.snapshotIds, []);
  });

  it("AlreadyGeneralized: no Run Command, no backup, a managed image only", async () => {
    await seedVm("pre-gen", "Linux", { power: "deallocated" });
    const before = (await (await fetch(`${env.emu.baseUrl}/admin/counters`)).json()) as Record<string, number>;
    await env.applyCapture("pregen", {
      virtualMachine: { resourceGroup: RG, name: "pre-gen" },
      generalize: { mode: "AlreadyGeneralized" },
      backup: { enabled: false },
      destination: { managedImage: { name: "pre-gen-image" } },
    });
    const o = await until("pregen", "Ready", isReady);
    assert.deepEqual(stepStates(o), {
      Validate: "Succeeded",
      Backup: "Skipped",
      Generalize: "Skipped",
      Deallocate: "Succeeded",
      MarkGeneralized: "Succeeded",
      CreateImage: "Succeeded",
      CreateGalleryVersion: "Skipped",
      Replicate: "Skipped",
      Cleanup: "Skipped",
    });
    const after = (await (await fetch(`${env.emu.baseUrl}/admin/counters`)).json()) as Record<string, number>;
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    const runCommands = (c: Record<string, number>) => Object.entries(c).filter(([k]) => k.includes("virtualMachines/runCommand")).reduce((n, [, v]) => n + v, 0);
    assert.equal(runCommands(after) - runCommands(before), 0, "no Run Command of any kind");
    assert.equal(delta("Microsoft.Compute/snapshots/write 202"), 0);
    assert.equal(o.status?.snapshotIds, undefined);
    assert.equal(o.status?.imageId?.split("/").pop(), "pre-gen-image");
    assert.equal((await vmState("pre-gen")).generalized, true);
  });

  it("None: a specialized capture into a Specialized definition; a Generalized definition is refused before anything changes", async () => {
    await seedVm("spec-vm", "Linux");
    const { compute } = env.azure;
    await compute.galleries.createOrUpdate(RG, "specialized", { location: "westeurope" });
    for (const [name, osState] of [["gen-def", "Generalized"], ["spec-def", "Specialized"]] as const) {
      await compute.galleryImages.createOrUpdate(RG, "specialized", name, { location: "westeurope", osType: "Linux", osState, hyperVGeneration: "V2", identifier: { publisher: "p", offer: "o", sku: name } });
    }
    await env.applyCapture("wrong-mode", {
      virtualMachine: { resourceGroup: RG, name: "spec-vm" },
      generalize: { mode: "None" },
      destination: { gallery: { galleryName: "specialized", imageDefinition: "gen-def" } },
    });
    const refused = await until("wrong-mode", "Stalled ImageDefinitionMismatch", isStalled("ImageDefinitionMismatch"));
    assert.match(condition(refused, "Stalled")?.message ?? "", /osState Generalized but this capture makes Specialized/);
    assert.equal(stepStates(refused).Backup, "Pending");
    assert.equal((await snapshotsIn()).filter((n) => n.includes("wrong-mode")).length, 0, "no snapshot taken");
    assert.equal((await vmState("spec-vm")).power, "running", "VM untouched");

    await env.applyCapture("specialized", {
      virtualMachine: { resourceGroup: RG, name: "spec-vm" },
      generalize: { mode: "None" },
      destination: { gallery: { galleryName: "specialized", imageDefinition: "spec-def" } },
    });
    const o = await until("specialized", "Ready", isReady);
    assert.equal(stepStates(o).MarkGeneralized, "Skipped");
    assert.equal(stepStates(o).Generalize, "Skipped");
    const state = await vmState("spec-vm");
    assert.deepEqual([state.power, state.generalized, state.guestDeprovisioned], ["deallocated", false, false]);
  });

  it("a failing Run Command stops the capture with its output; the VM and the snapshots are kept", async () => {
    await seedVm("broken-agent", "Linux", { guestFault: "deprovisionFails" });
    await env.applyCapture("runcmd-fails", {
      virtualMachine: { resourceGroup: RG, name: "broken-agent" },
      destination: { managedImage: {} },
    });
    const o = await until("runcmd-fails", "Stalled RunCommandFailed", isStalled("RunCommandFailed"));
    const step = o.status?.steps?.find((s) => s.name === "Generalize");
    assert.equal(step?.state, "Failed");
    assert.match(step?.message ?? "", /ended Failed \(exit code 1\)[\s\S]*userdel: user azureuser is currently used/);
    assert.equal(stepStates(o).Deallocate, "Pending");
    assert.equal(o.status?.snapshotIds?.length, 1);
    assert.equal((await vmState("broken-agent")).power, "running");
    assert.ok((await events("runcmd-fails")).includes("GeneralizeFailed"));
  });

  it("Sysprep that never shuts the VM down ends in GeneralizeTimeout", async () => {
    await seedVm("hung-sysprep", "Windows", { guestFault: "sysprepHangs" });
    await env.applyCapture("sysprep-hangs", {
      virtualMachine: { resourceGroup: RG, name: "hung-sysprep" },
      generalize: { mode: "RunCommand", timeoutSeconds: 10 },
      backup: { enabled: false },
      destination: { managedImage: {} },
    });
    const o = await until("sysprep-hangs", "Stalled GeneralizeTimeout", isStalled("GeneralizeTimeout"), 40_000);
    assert.match(condition(o, "Stalled")?.message ?? "", /did not shut the VM down within 10 s/);
    assert.equal((await vmState("hung-sysprep")).power, "running");
  });

  it("a VM that does not exist is reported, and nothing is created", async () => {
    await env.applyCapture("no-vm", { virtualMachine: { resourceGroup: RG, name: "does-not-exist" }, destination: { managedImage: {} } });
    const o = await until("no-vm", "Stalled VirtualMachineNotFound", isStalled("VirtualMachineNotFound"));
    assert.match(condition(o, "Stalled")?.message ?? "", /VM 'does-not-exist' was not found/);
    assert.equal(o.status?.currentStep, "Validate");
  });

  it("refuses a spec change after the capture started (clusters without CEL)", async () => {
    await seedVm("immut-vm", "Linux", { power: "deallocated" });
    await env.applyCapture("immutable", { virtualMachine: { resourceGroup: RG, name: "immut-vm" }, generalize: { mode: "AlreadyGeneralized" }, destination: { managedImage: {} } });
    await until("immutable", "Ready", isReady);
    await env.applyCapture("immutable", { virtualMachine: { resourceGroup: RG, name: "immut-vm" }, generalize: { mode: "AlreadyGeneralized" }, destination: { managedImage: { name: "other" } } });
    const o = await until("immutable", "Stalled SpecImmutable", isStalled("SpecImmutable"));
    assert.equal(o.status?.observedGeneration, 2);
    await assert.rejects(env.azure.compute.images.get(RG, "other"), { statusCode: 404 });
  });

  it("deleted mid-flight: stops at the running step, keeps the snapshots; deletion policy Delete removes outputs", async () => {
    await seedVm("mid-flight", "Windows", { guestFault: "sysprepHangs" });
    await env.applyCapture("abandoned", { virtualMachine: { resourceGroup: RG, name: "mid-flight" }, deletionPolicy: "Delete", destination: { managedImage: {} } });
    await until("abandoned", "Generalize running", (o) => o.status?.steps?.find((s) => s.name === "Generalize")?.state === "Running");
    const snapshots = (await env.getCapture("abandoned")).status?.snapshotIds ?? [];
    assert.equal(snapshots.length, 1);
    await kubectl(env.cp.kubeconfigPath, ["delete", "imgcap", "abandoned", "--wait=true", "--timeout=30s"]);
    assert.ok((await events("abandoned")).includes("CaptureAbandoned"));
    assert.equal((await vmState("mid-flight")).power, "running", "no step after Generalize was started");
    assert.equal((await snapshotsIn()).filter((n) => n.includes("abandoned")).length, 1, "snapshot kept");

    await seedVm("to-delete", "Linux", { power: "deallocated" });
    await env.applyCapture("outputs-deleted", { virtualMachine: { resourceGroup: RG, name: "to-delete" }, generalize: { mode: "AlreadyGeneralized" }, deletionPolicy: "Delete", destination: { managedImage: { name: "deleted-with-capture" } } });
    await until("outputs-deleted", "Ready", isReady);
    await kubectl(env.cp.kubeconfigPath, ["delete", "imgcap", "outputs-deleted", "--wait=true", "--timeout=30s"]);
    await assert.rejects(env.azure.compute.images.get(RG, "deleted-with-capture"), { statusCode: 404 });
  });
});
