import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AnonymousCredential, PageBlobClient } from "@azure/storage-blob";
import {
  admin,
  fast,
  qemuImg,
  refuses,
  startTestEmulator,
  subscriptionId,
  type EmulatorFixture,
} from "../support/emulator-fixture.ts";

const rg = "rg-compute";
const location = "westeurope";


describe("emulator: Microsoft.Compute with @azure/arm-compute", () => {
  let f: EmulatorFixture;
  let work: string;
  const vhds: Record<string, string> = {};

  /** Uploads a local file as a page blob (padded to 512) and returns its URL. */
  async function uploadPageBlob(name: string, file: string): Promise<string> {
    const data = await readFile(file);
    const container = f.emu.blobs?.service.getContainerClient("vhds");
    assert.ok(container);
    await container.createIfNotExists();
    const page = container.getPageBlobClient(name);
    const size = Math.ceil(data.length / 512) * 512;
    await page.create(size);
    const padded = Buffer.alloc(size);
    data.copy(padded);
    for (let off = 0; off < size; off += 4 * 1024 * 1024) {
      const len = Math.min(4 * 1024 * 1024, size - off);
      await page.uploadPages(padded.subarray(off, off + len), off, len);
    }
    return page.url;
  }

  before(async () => {
    f = await startTestEmulator();
    work = await mkdtemp(join(tmpdir(), "aio-vhd-"));
    await f.resources.resourceGroups.createOrUpdate(rg, { location });
    // VHDs made by qemu-img, the way users make them.
    const raw = join(work, "disk.raw");
    await qemuImg(["create", "-f", "raw", raw, "21M"]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, join(work, "fixed.vhd")]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", raw, join(work, "dynamic.vhd")]);
    // Without force_size qemu-img rounds the size to a CHS geometry: not a whole number of MiB.
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", raw, join(work, "chs.vhd")]);
    for (const name of ["fixed", "dynamic", "chs"]) vhds[name] = await uploadPageBlob(`${name}.vhd`, join(work, `${name}.vhd`));
  });

  after(async () => {
    await f.emu.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("creates a managed image from a fixed VHD blob (images_createOrUpdate_fromBlob)", async () => {
    const image = await f.compute.images.createOrUpdate(
      rg,
      "img-blob",
      { location: "West Europe", storageProfile: { osDisk: { osType: "Linux", blobUri: vhds.fixed ?? "", osState: "Generalized" }, zoneResilient: true } },
      fast,
    );
    assert.equal(image.provisioningState, "Succeeded");
    assert.equal(image.location, "westeurope");
    assert.equal(image.type, "Microsoft.Compute/images");
    assert.equal(image.id, `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/images/img-blob`);
    const osDisk = Object.fromEntries(Object.entries(image.storageProfile?.osDisk ?? {}).filter(([, v]) => v !== undefined));
    assert.deepEqual(osDisk, { osType: "Linux", osState: "Generalized", blobUri: vhds.fixed, caching: "ReadWrite", diskSizeGB: 1 });
    assert.deepEqual(image.storageProfile?.dataDisks, []);
    const listed: string[] = [];
    for await (const i of f.compute.images.listByResourceGroup(rg)) listed.push(i.name ?? "");
    assert.ok(listed.includes("img-blob"));
  });

  it("refuses VHDs Azure refuses: dynamic, not a whole MiB, missing", async () => {
    const osDisk = (blobUri: string) => ({ location, storageProfile: { osDisk: { osType: "Linux" as const, osState: "Generalized" as const, blobUri } } });
    await refuses(f.compute.images.createOrUpdate(rg, "img-dyn", osDisk(vhds.dynamic ?? ""), fast), 400, "InvalidParameter", /dynamic VHD; only fixed VHDs/);
    await refuses(f.compute.images.createOrUpdate(rg, "img-chs", osDisk(vhds.chs ?? ""), fast), 400, "InvalidParameter", /unsupported virtual size of \d+ bytes\. The size must be a whole number \(in MBs\)/);
    await refuses(f.compute.images.createOrUpdate(rg, "img-none", osDisk(`${f.emu.blobs?.endpoint ?? ""}/vhds/missing.vhd`), fast), 400, "InvalidParameter", /does not exist/);
  });

  it("refuses missing properties, bad enums and a missing resource group", async () => {
    await refuses(
      f.compute.images.createOrUpdate(rg, "img-bad", { location, storageProfile: { osDisk: { osType: "Plan9" as "Linux", osState: "Generalized", blobUri: vhds.fixed ?? "" } } }, fast),
      400, "InvalidParameter", /osType/,
    );
    await refuses(
      f.compute.images.createOrUpdate(rg, "img-bad", { location, storageProfile: { osDisk: { osType: "Linux", blobUri: vhds.fixed ?? "" } as never } }, fast),
      400, "InvalidParameter", /osState/,
    );
    await refuses(f.compute.images.createOrUpdate("rg-nope", "img", { location, sourceVirtualMachine: { id: "x" } }, fast), 404, "ResourceGroupNotFound");
    await refuses(f.compute.images.get(rg, "no-such-image"), 404, "ResourceNotFound", /Microsoft\.Compute\/images\/no-such-image/);
  });

  it("uploads into a managed disk: Upload, grant Write, page writes to the SAS, revoke, image from the disk", async () => {
    const vhd = await readFile(join(work, "fixed.vhd"));
    const disk = await f.compute.disks.createOrUpdate(rg, "upload-disk", { location, creationData: { createOption: "Upload", uploadSizeBytes: vhd.length } }, fast);
    assert.equal(disk.diskState, "ReadyToUpload");
    assert.equal(disk.diskSizeBytes, vhd.length - 512);

    const access = await f.compute.disks.grantAccess(rg, "upload-disk", { access: "Write", durationInSeconds: 600 }, fast);
    assert.match(access.accessSAS ?? "", /^https:\/\/127\.0\.0\.1:\d+\/devstoreaccount1\/disks\/[^?]+\?.*sig=/);
    assert.equal((await f.compute.disks.get(rg, "upload-disk")).diskState, "ActiveUpload");
    const page = new PageBlobClient(access.accessSAS ?? "", new AnonymousCredential());
    await page.uploadPages(vhd, 0, vhd.length);
    await f.compute.disks.revokeAccess(rg, "upload-disk", fast);
    assert.equal((await f.compute.disks.get(rg, "upload-disk")).diskState, "Unattached");

    const image = await f.compute.images.createOrUpdate(rg, "img-disk", {
      location,
      hyperVGeneration: "V2",
      storageProfile: { osDisk: { osType: "Linux", osState: "Generalized", managedDisk: { id: disk.id ?? "" } } },
    }, fast);
    assert.equal(image.provisioningState, "Succeeded");
    assert.equal(image.hyperVGeneration, "V2");
  });

  it("refuses upload sizes out of range and writes to a disk not ready for upload", async () => {
    await refuses(
      f.compute.disks.createOrUpdate(rg, "tiny", { location, creationData: { createOption: "Upload", uploadSizeBytes: 1024 * 1024 + 512 } }, fast),
      400, "InvalidParameter", /out of range/,
    );
    await f.compute.disks.createOrUpdate(rg, "empty-disk", { location, diskSizeGB: 1, creationData: { createOption: "Empty" } }, fast);
    await refuses(f.compute.disks.grantAccess(rg, "empty-disk", { access: "Write", durationInSeconds: 60 }, fast), 409, "OperationNotAllowed", /ReadyToUpload/);
  });

  it("captures a VM the way Azure allows: deprovision, deallocate, generalize, image with data disks", async () => {
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "build-vm", location, osType: "Linux", dataDisks: 2 });
    const vmId = `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/build-vm`;
    const fromVm = { location, sourceVirtualMachine: { id: vmId }, hyperVGeneration: "V2" as const };

    await refuses(f.compute.images.createOrUpdate(rg, "img-vm", fromVm, fast), 409, "OperationNotAllowed", /requires the Virtual Machine 'build-vm' to be Generalized/);
    await refuses(f.compute.virtualMachines.generalize(rg, "build-vm"), 409, "OperationNotAllowed", /not allowed on VM 'build-vm' since the VM is running/);

    const run = await f.compute.virtualMachines.runCommand(rg, "build-vm", { commandId: "RunShellScript", script: ["sudo waagent -deprovision+user -force"] }, fast);
    assert.equal(run.value?.length, 1);
    assert.equal(run.value?.[0]?.code, "ProvisioningState/succeeded");
    assert.match(run.value?.[0]?.message ?? "", /^Enable succeeded: \n\[stdout\]\n[\s\S]*\[stderr\]\n/);

    await f.compute.virtualMachines.deallocate(rg, "build-vm", fast);
    let view = await f.compute.virtualMachines.instanceView(rg, "build-vm");
    assert.ok(view.statuses?.some((s) => s.code === "PowerState/deallocated"));
    await f.compute.virtualMachines.generalize(rg, "build-vm");
    view = await f.compute.virtualMachines.instanceView(rg, "build-vm");
    assert.ok(view.statuses?.some((s) => s.code === "OSState/generalized" && s.displayStatus === "VM generalized"));
    await refuses(f.compute.virtualMachines.start(rg, "build-vm", fast), 409, "OperationNotAllowed", /since the VM is generalized/);

    const image = await f.compute.images.createOrUpdate(rg, "img-vm", fromVm, fast);
    assert.equal(image.sourceVirtualMachine?.id, vmId);
    assert.equal(image.storageProfile?.osDisk?.osState, "Generalized");
    assert.match(image.storageProfile?.osDisk?.managedDisk?.id ?? "", /build-vm_OsDisk_1$/);
    assert.deepEqual(image.storageProfile?.dataDisks?.map((d) => d.lun), [0, 1]);

    // Snapshots of the VM's disks (what a capture takes before generalizing)
    const vm = await f.compute.virtualMachines.get(rg, "build-vm");
    const snap = await f.compute.snapshots.createOrUpdate(rg, "build-vm-os-snap", {
      location,
      incremental: true,
      creationData: { createOption: "Copy", sourceResourceId: vm.storageProfile?.osDisk?.managedDisk?.id ?? "" },
    }, fast);
    assert.equal(snap.provisioningState, "Succeeded");
    assert.equal(snap.incremental, true);
  });

  it("runs Windows commands: output in the two-entry shape, Sysprep /shutdown stops the VM and never reports success", async () => {
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "win-vm", location, osType: "Windows" });
    const echo = await f.compute.virtualMachines.runCommand(rg, "win-vm", { commandId: "RunPowerShellScript", script: ["Write-Output 'hello'"] }, fast);
    assert.deepEqual(echo.value?.map((v) => [v.code, v.message]), [
      ["ComponentStatus/StdOut/succeeded", "hello\n"],
      ["ComponentStatus/StdErr/succeeded", ""],
    ]);
    const sysprep = f.compute.virtualMachines.runCommand(rg, "win-vm", {
      commandId: "RunPowerShellScript",
      script: ["& $env:windir\\system32\\sysprep\\sysprep.exe /generalize /oobe /shutdown /quiet"],
    }, fast);
    await sysprep.submitted();
    await sysprep.poll();
    assert.equal(sysprep.isDone, false, "the command does not report success");
    const view = await f.compute.virtualMachines.instanceView(rg, "win-vm");
    assert.ok(view.statuses?.some((s) => s.code === "PowerState/stopped"), "the guest shut the VM down");
    const guest = (await admin(f.emu, "GET", "virtualMachines/win-vm")) as { guestDeprovisioned: boolean; generalized: boolean };
    assert.deepEqual([guest.guestDeprovisioned, guest.generalized], [true, false], "deprovisioned, not yet marked generalized in Azure");
  });

  it("runs managed Run Commands (virtualMachines/runCommands): a named resource whose instance view reports state, exit code and output", async () => {
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "managed-rc", location, osType: "Linux" });
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "managed-rc-bad", location, osType: "Linux", guestFault: "deprovisionFails" });
    const rc = f.compute.virtualMachineRunCommands;
    await rc.createOrUpdate(rg, "managed-rc", "deprovision", { location, source: { script: "waagent -deprovision+user -force" }, timeoutInSeconds: 600 }, fast);
    const done = await rc.getByVirtualMachine(rg, "managed-rc", "deprovision", { expand: "instanceView" });
    assert.equal(done.provisioningState, "Succeeded");
    assert.deepEqual([done.instanceView?.executionState, done.instanceView?.exitCode], ["Succeeded", 0]);
    assert.match(done.instanceView?.output ?? "", /waagent service will be stopped/);
    assert.equal(((await admin(f.emu, "GET", "virtualMachines/managed-rc")) as { guestDeprovisioned: boolean }).guestDeprovisioned, true);
    const plain = await rc.getByVirtualMachine(rg, "managed-rc", "deprovision");
    assert.equal(plain.instanceView, undefined, "the instance view only with $expand");

    // A failing script: the resource is provisioned, the execution failed with its exit code and stderr.
    await rc.createOrUpdate(rg, "managed-rc-bad", "deprovision", { location, source: { script: "waagent -deprovision+user -force" } }, fast);
    const failed = await rc.getByVirtualMachine(rg, "managed-rc-bad", "deprovision", { expand: "instanceView" });
    assert.deepEqual([failed.provisioningState, failed.instanceView?.executionState, failed.instanceView?.exitCode], ["Succeeded", "Failed", 1]);
    assert.match(failed.instanceView?.error ?? "", /userdel: user azureuser is currently used/);

    await refuses(rc.getByVirtualMachine(rg, "managed-rc", "missing"), 404, "ResourceNotFound");
    await f.compute.virtualMachines.deallocate(rg, "managed-rc", fast);
    await refuses(rc.createOrUpdate(rg, "managed-rc", "again", { location, source: { script: "echo hi" } }, fast), 409, "OperationNotAllowed");
    await rc.delete(rg, "managed-rc", "deprovision", fast);
    await refuses(rc.getByVirtualMachine(rg, "managed-rc", "deprovision"), 404, "ResourceNotFound");
  });

  it("ends an operation Failed when a fault says so, and the SDK reports it", async () => {
    await admin(f.emu, "POST", "faults", { operation: "Microsoft.Compute/images/write", lroFails: true, count: 1, code: "InternalDiskManagementError", message: "An internal disk error occurred." });
    await assert.rejects(
      f.compute.images.createOrUpdate(rg, "img-fault", { location, storageProfile: { osDisk: { osType: "Linux", osState: "Generalized", blobUri: vhds.fixed ?? "" } } }, fast),
      /InternalDiskManagementError|internal disk error/,
    );
    assert.equal((await f.compute.images.get(rg, "img-fault")).provisioningState, "Failed");
    await admin(f.emu, "DELETE", "faults");
  });

  it("answers injected 5xx, which the SDK retries, and 4xx, which it does not", async () => {
    await admin(f.emu, "DELETE", "counters");
    await admin(f.emu, "POST", "faults", { operation: "Microsoft.Compute/images/read", status: 500, code: "InternalServerError", count: 1 });
    assert.equal((await f.compute.images.get(rg, "img-blob")).name, "img-blob");
    await admin(f.emu, "POST", "faults", { operation: "Microsoft.Compute/images/read", status: 409, code: "Conflict", count: 1 });
    await refuses(f.compute.images.get(rg, "img-blob"), 409, "Conflict");
    const counters = (await admin(f.emu, "GET", "counters")) as Record<string, number>;
    assert.equal(counters["Microsoft.Compute/images/read 500"], 1);
    assert.equal(counters["Microsoft.Compute/images/read 409"], 1);
    assert.equal(counters["Microsoft.Compute/images/read 200"], 1);
    await admin(f.emu, "DELETE", "faults");
  });

  it("throttles like ARM: 429 with Retry-After once the read bucket is empty, and remaining-reads headers", async () => {
    await admin(f.emu, "PUT", "settings", { throttling: true, limits: { reads: { burst: 5, perSecond: 1 } } });
    await admin(f.emu, "DELETE", "counters");
    const remaining: string[] = [];
    for (let i = 0; i < 7; i++) {
      await f.compute.images.get(rg, "img-blob", {
        onResponse: (raw: { headers: { get(name: string): string | undefined } }) => {
          remaining.push(raw.headers.get("x-ms-ratelimit-remaining-subscription-reads") ?? "");
        },
      });
    }
    const counters = (await admin(f.emu, "GET", "counters")) as Record<string, number>;
    assert.ok((counters["Microsoft.Compute/images/read 429"] ?? 0) >= 1, `some reads were throttled: ${JSON.stringify(counters)}`);
    assert.ok(remaining.includes("4") && remaining.includes("0"), `remaining reads reported: ${remaining.join(",")}`);
    await admin(f.emu, "PUT", "settings", { throttling: false });
  });
});
