import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { probeSource } from "../../src/vhd/source.ts";
import { FileServer } from "../support/file-server.ts";
import { OperatorEnv, readyCondition as ready } from "../support/operator-fixture.ts";
import { eventually } from "../support/runtime-fixture.ts";

const MiB = 1024 * 1024;
const qemuImg = (args: string[]) => promisify(execFile)("qemu-img", args);

describe("VmImage controller: VHDs streamed from a URL into a managed image", () => {
  let env: OperatorEnv;
  let files: FileServer;
  let dir: string;
  let raw: Buffer;

  const apply = (name: string, vhd: Record<string, unknown>) =>
    env.apply(name, { location: "westeurope", resourceGroup: "rg-vhd", osType: "Linux", source: { vhd }, destination: { managedImage: {} } });
  const get = (name: string) => env.get(name);
  const disksLeft = async () => {
    const names: string[] = [];
    for await (const d of env.azure.compute.disks.listByResourceGroup("rg-vhd")) names.push(d.name ?? "");
    return names;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-vhd-it-"));
    raw = Buffer.alloc(24 * MiB);
    for (const at of [0, 7 * MiB, 23 * MiB]) raw.fill(Buffer.from(`block@${at}`), at, at + 64 * 1024);
    await writeFile(join(dir, "disk.raw"), raw);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", join(dir, "disk.raw"), join(dir, "fixed.vhd")]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", join(dir, "disk.raw"), join(dir, "dynamic.vhd")]);
    await writeFile(join(dir, "odd.raw"), raw.subarray(0, 21 * MiB + 3000));
    await writeFile(join(dir, "dynamic.vhd.zst"), zstdCompressSync(await readFile(join(dir, "dynamic.vhd"))));
    await writeFile(join(dir, "fixed.vhd.gz"), gzipSync(await readFile(join(dir, "fixed.vhd"))));
    files = await FileServer.start(dir);
    env = await OperatorEnv.start();
  });

  after(async () => {
    await env.stop();
    await files.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [name, file] of [["fixed", "fixed.vhd"], ["dynamic", "dynamic.vhd"], ["odd-raw", "odd.raw"], ["dynamic-zstd", "dynamic.vhd.zst"], ["fixed-gzip", "fixed.vhd.gz"]] as const) {
    it(`imports a ${name} source made by qemu-img and registers the image`, async () => {
      const bytes = await readFile(join(dir, file));
      const checksum = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
      await apply(`vhd-${name}`, { url: `${files.url}/${file}`, checksum });
      await eventually(`${name} Ready`, async () => ready(await get(`vhd-${name}`))?.status === "True", 60_000);
      const obj = await get(`vhd-${name}`);
      const t = obj.status?.transfer;
      assert.ok(t?.bytesTotal && t.bytesTotal % MiB === 512, `whole MiB plus footer (${String(t?.bytesTotal)})`);
      assert.equal(t.percent, 100);
      assert.ok((t.bytesSkippedZero ?? 0) > 0, "zero ranges were skipped");
      const image = await env.azure.compute.images.get("rg-vhd", obj.status?.imageId?.split("/").pop() ?? "");
      assert.equal(image.storageProfile?.osDisk?.osState, "Generalized");
      await eventually("upload disk removed", async () => !(await disksLeft()).some((d) => d.includes(`vhd-${name}`)));
    });
  }

  it("makes a VM image with two data disks: into a managed disk each for a managed image, into page blobs for a gallery version", async () => {
    const dataDisks = [
      { lun: 0, url: `${files.url}/dynamic.vhd` },
      { lun: 1, url: `${files.url}/odd.raw` },
    ];
    await env.apply("vm-image", { location: "westeurope", resourceGroup: "rg-vhd", osType: "Linux", source: { vhd: { url: `${files.url}/fixed.vhd`, dataDisks } }, destination: { managedImage: {} } });
    await eventually("Ready", async () => ready(await get("vm-image"))?.status === "True", 60_000);
    const obj = await get("vm-image");
    const image = await env.azure.compute.images.get("rg-vhd", obj.status?.imageId?.split("/").pop() ?? "");
    assert.deepEqual(image.storageProfile?.dataDisks?.map((d) => [d.lun, /-lun\d-source$/.test(d.managedDisk?.id ?? "")]), [[0, true], [1, true]]);
    // The three disks' transfers are counted together.
    let expected = 0;
    for (const url of [`${files.url}/fixed.vhd`, ...dataDisks.map((d) => d.url)]) expected += (await probeSource(url, "auto")).layout.vhdSize;
    assert.equal(obj.status?.transfer?.bytesTotal, expected);
    assert.equal(obj.status.transfer?.percent, 100);
    await eventually("source disks removed", async () => !(await disksLeft()).some((d) => d.includes("vm-image")));

    const storageAccountId = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-vhd/providers/Microsoft.Storage/storageAccounts/devstoreaccount1";
    await env.apply("vm-image-gallery", {
      location: "westeurope",
      resourceGroup: "rg-vhd",
      osType: "Linux",
      source: { vhd: { url: `${files.url}/fixed.vhd`, uploadContainerUrl: `${env.emu.blobs?.endpoint ?? ""}/vmimages`, storageAccountId, dataDisks } },
      destination: { gallery: { galleryName: "vhds", imageDefinition: "vm-image", targetRegions: [{ name: "westeurope" }, { name: "northeurope" }] } },
    });
    await eventually("Ready", async () => ready(await get("vm-image-gallery"))?.status === "True", 60_000);
    const version = await env.azure.compute.galleryImageVersions.get("rg-vhd", "vhds", "vm-image", "1.0.0");
    assert.match(version.storageProfile?.osDiskImage?.source?.uri ?? "", /\/vmimages\/default-vm-image-gallery-[0-9a-f]{8}\.vhd$/);
    assert.deepEqual(version.storageProfile?.dataDiskImages?.map((d) => [d.lun, /-lun\d\.vhd$/.test(d.source?.uri ?? "")]), [[0, true], [1, true]]);
    // Three uploads ran at once through the operator's shared buffers: each blob holds its own source.
    const blobData = async (uri: string | undefined) => {
      const [, container = "", name = ""] = /\/([^/]+)\/([^/]+)$/.exec(new URL(uri ?? "").pathname) ?? [];
      const data = await env.emu.blobs?.service.getContainerClient(container).getPageBlobClient(decodeURIComponent(name)).downloadToBuffer();
      return data?.subarray(0, -512) ?? Buffer.alloc(0);
    };
    const padded = Buffer.concat([raw.subarray(0, 21 * MiB + 3000), Buffer.alloc(22 * MiB - (21 * MiB + 3000))]);
    assert.ok((await blobData(version.storageProfile?.osDiskImage?.source?.uri)).equals(raw), "OS disk: the fixed VHD's disk");
    const dataDisks0 = version.storageProfile?.dataDiskImages ?? [];
    // qemu-img rounds a dynamic VHD's size to a CHS geometry (a little over 24 MiB), which grows to 25 MiB.
    const lun0 = await blobData(dataDisks0.find((d) => d.lun === 0)?.source?.uri);
    assert.equal(lun0.length, 25 * MiB);
    assert.ok(lun0.equals(Buffer.concat([raw, Buffer.alloc(MiB)])), "lun 0: the dynamic VHD expanded");
    assert.ok((await blobData(dataDisks0.find((d) => d.lun === 1)?.source?.uri)).equals(padded), "lun 1: the raw file padded to a whole MiB");
  });

  it("uploads into a page blob in a named container and, after an operator restart, resumes where it stopped", async (t) => {
    // 40 MiB of incompressible data as a qemu-img fixed VHD, served at about 6 MiB/s.
    await writeFile(join(dir, "slow.raw"), randomBytes(40 * MiB));
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", join(dir, "slow.raw"), join(dir, "slow.vhd")]);
    const slow = await FileServer.start(dir, true, 6 * MiB);
    try {
      const container = `${env.emu.blobs?.endpoint ?? ""}/staging`;
      await apply("vhd-blob", { url: `${slow.url}/slow.vhd`, uploadContainerUrl: container });
      await eventually("Uploading", async () => ((await get("vhd-blob")).status?.transfer?.bytesDone ?? 0) > 8 * MiB, 30_000);
      const obj = await get("vhd-blob");
      const blob = env.emu.blobs?.service.getContainerClient("staging").getPageBlobClient(`default-vhd-blob-${(obj.metadata?.uid ?? "").slice(0, 8)}.vhd`);
      assert.ok(blob);
      let confirmed = 0;
      await eventually("progress recorded in the blob", async () => (confirmed = Number((await blob.getProperties()).metadata?.azureimagesconfirmed ?? 0)) > 0, 20_000);
      await env.restartOperator();
      await eventually("Ready", async () => ready(await get("vhd-blob"))?.status === "True", 60_000);
      const events = await env.kube.get<{ items: Array<{ reason: string; message: string; involvedObject: { name: string } }> }>("/api/v1/namespaces/default/events");
      const resumed = events.items.find((e) => e.involvedObject.name === "vhd-blob" && e.reason === "UploadResumed");
      assert.ok(resumed, "an UploadResumed Event");
      const resumedAt = Number(/at byte (\d+)/.exec(resumed.message)?.[1]);
      assert.ok(resumedAt >= confirmed && resumedAt < 40 * MiB, `resumed at ${resumedAt}`);
      assert.ok(slow.ranges.includes(`/slow.vhd bytes=${resumedAt}-`), `the source was asked from byte ${resumedAt}: ${slow.ranges.join(", ")}`);
      t.diagnostic(`resumed at byte ${resumedAt} of ${40 * MiB + 512}`);
      // The blob is the source, byte for byte (apart from the footer the operator writes itself), and marked complete.
      const [written, source] = [await blob.downloadToBuffer(), await readFile(join(dir, "slow.vhd"))];
      assert.equal(written.length, source.length);
      assert.ok(written.subarray(0, -512).equals(source.subarray(0, -512)), "same disk contents");
      assert.equal((await blob.getProperties()).metadata?.azureimagescomplete, "true");
      const image = await env.azure.compute.images.get("rg-vhd", (await get("vhd-blob")).status?.imageId?.split("/").pop() ?? "");
      assert.equal(image.storageProfile?.osDisk?.blobUri, blob.url);
      // Deleting the object (policy Delete) deletes the blob with the image.
      await env.kube.delete(env.path("vhd-blob"));
      await eventually("blob deleted", async () => !(await blob.exists()), 30_000);
    } finally {
      await slow.stop();
    }
  });

  it("registers an existing page blob in place or copies it first, and relays Azure's refusal of a dynamic VHD", async () => {
    const container = env.emu.blobs?.service.getContainerClient("vhds");
    assert.ok(container);
    await container.createIfNotExists();
    const urls: Record<string, string> = {};
    for (const file of ["fixed.vhd", "dynamic.vhd"]) {
      const bytes = await readFile(join(dir, file));
      const size = Math.ceil(bytes.length / 512) * 512;
      const page = container.getPageBlobClient(file);
      await page.create(size);
      const padded = Buffer.alloc(size);
      bytes.copy(padded);
      for (let off = 0; off < size; off += 4 * MiB) await page.uploadPages(padded.subarray(off, Math.min(size, off + 4 * MiB)), off, Math.min(4 * MiB, size - off));
      urls[file] = page.url;
    }
    await env.apply("blob-fixed", { location: "westeurope", resourceGroup: "rg-vhd", osType: "Linux", source: { vhd: { blobUri: urls["fixed.vhd"] } }, destination: { managedImage: {} } });
    await eventually("Ready", async () => ready(await get("blob-fixed"))?.status === "True", 30_000);
    const image = await env.azure.compute.images.get("rg-vhd", (await get("blob-fixed")).status?.imageId?.split("/").pop() ?? "");
    assert.equal(image.storageProfile?.osDisk?.blobUri, urls["fixed.vhd"]);

    // Copied first: the image is made from a managed disk imported from the blob, which is then removed.
    const storageAccountId = "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg-vhd/providers/Microsoft.Storage/storageAccounts/devstoreaccount1";
    await env.apply("blob-copied", { location: "westeurope", resourceGroup: "rg-vhd", osType: "Linux", source: { vhd: { blobUri: urls["fixed.vhd"], storageAccountId, copy: true } }, destination: { managedImage: {} } });
    await eventually("Ready", async () => ready(await get("blob-copied"))?.status === "True", 30_000);
    const copied = await env.azure.compute.images.get("rg-vhd", (await get("blob-copied")).status?.imageId?.split("/").pop() ?? "");
    assert.equal(copied.storageProfile?.osDisk?.blobUri, undefined);
    assert.match(copied.storageProfile?.osDisk?.managedDisk?.id ?? "", /\/disks\/default-blob-copied-[0-9a-f]{8}-source$/);
    await eventually("imported disk removed", async () => !(await disksLeft()).some((d) => d.includes("blob-copied")));

    await env.apply("blob-dynamic", { location: "westeurope", resourceGroup: "rg-vhd", osType: "Linux", source: { vhd: { blobUri: urls["dynamic.vhd"] } }, destination: { managedImage: {} } });
    await eventually("Stalled", async () => ready(await get("blob-dynamic"))?.reason === "InvalidParameter", 30_000);
    assert.match(ready(await get("blob-dynamic"))?.message ?? "", /only fixed VHDs/);
  });

  it("stalls on a checksum mismatch and leaves no disk behind", async () => {
    await apply("vhd-badsum", { url: `${files.url}/fixed.vhd`, checksum: `sha256:${"0".repeat(64)}` });
    await eventually("Stalled", async () => {
      const o = await get("vhd-badsum");
      return ready(o)?.reason === "ChecksumMismatch" && (o.status?.conditions?.some((c) => c.type === "Stalled" && c.status === "True") ?? false);
    }, 60_000);
    await eventually("no disk", async () => !(await disksLeft()).some((d) => d.includes("vhd-badsum")));
    assert.equal((await get("vhd-badsum")).status?.imageId, undefined, "nothing registered");
  });

  it("stalls with InvalidVhdFooter on a corrupt footer, before any disk exists", async () => {
    const bytes = await readFile(join(dir, "fixed.vhd"));
    // A byte of the footer its checksum covers (the creator's host OS field).
    bytes[bytes.length - 512 + 36] = (bytes[bytes.length - 512 + 36] ?? 0) ^ 0xff;
    await writeFile(join(dir, "corrupt.vhd"), bytes);
    await apply("vhd-corrupt", { url: `${files.url}/corrupt.vhd` });
    await eventually("Stalled", async () => ready(await get("vhd-corrupt"))?.reason === "InvalidVhdFooter", 30_000);
    assert.match(ready(await get("vhd-corrupt"))?.message ?? "", /checksum does not match/);
    assert.ok(!(await disksLeft()).some((d) => d.includes("vhd-corrupt")), "no disk was created");
  });

  it("continues a download that breaks off with a Range request, into the same page blob, byte for byte", async () => {
    await writeFile(join(dir, "flaky.vhd"), await readFile(join(dir, "fixed.vhd")));
    files.breakOff("/flaky.vhd", 5 * MiB + 1000, 1);
    await apply("vhd-flaky", { url: `${files.url}/flaky.vhd`, uploadContainerUrl: `${env.emu.blobs?.endpoint ?? ""}/flaky` });
    await eventually("Ready", async () => ready(await get("vhd-flaky"))?.status === "True", 60_000);
    const obj = await get("vhd-flaky");
    const continued = files.ranges.filter((r) => r.startsWith("/flaky.vhd bytes=") && r.endsWith("-")).map((r) => Number(/=(\d+)-$/.exec(r)?.[1]));
    assert.equal(continued.length, 1, `one continuation: ${files.ranges.join(", ")}`);
    const at = continued[0] ?? 0;
    assert.ok(at > 0 && at <= 5 * MiB && at % 512 === 0, `continued at byte ${at}, at most where the connection broke`);
    const events = await env.kube.get<{ items: Array<{ involvedObject: { name: string }; reason: string; type: string; message: string }> }>("/api/v1/namespaces/default/events");
    const resumed = events.items.find((e) => e.involvedObject.name === "vhd-flaky" && e.reason === "DownloadResumed");
    assert.equal(resumed?.type, "Warning");
    assert.match(resumed?.message ?? "", new RegExp(`continues at byte ${at} `));
    const blob = env.emu.blobs?.service.getContainerClient("flaky").getPageBlobClient(`default-vhd-flaky-${(obj.metadata?.uid ?? "").slice(0, 8)}.vhd`);
    assert.ok(blob);
    const [written, source] = [await blob.downloadToBuffer(), await readFile(join(dir, "flaky.vhd"))];
    assert.ok(written.subarray(0, -512).equals(source.subarray(0, -512)), "same disk contents");
  });

  it("starts a download that breaks off over on a fresh disk when a checksum must see every byte", async () => {
    const source = await readFile(join(dir, "fixed.vhd"));
    await writeFile(join(dir, "flaky-sum.vhd"), source);
    files.breakOff("/flaky-sum.vhd", 5 * MiB, 1);
    await apply("vhd-flaky-sum", { url: `${files.url}/flaky-sum.vhd`, checksum: `sha256:${createHash("sha256").update(source).digest("hex")}` });
    const reasons = new Set<string>();
    const messages = new Set<string>();
    await eventually("Ready", async () => {
      const r = ready(await get("vhd-flaky-sum"));
      if (r?.reason) reasons.add(r.reason);
      if (r?.message) messages.add(r.message);
      return r?.status === "True";
    }, 90_000);
    assert.ok(reasons.has("SourceInterrupted"), `said why it was retrying: ${[...reasons].join(", ")}`);
    assert.ok([...messages].some((m) => m.includes("the import starts over because the checksum must see every byte")), `said why it starts over: ${[...messages].join(" | ")}`);
    assert.ok(!files.ranges.some((r) => r.startsWith("/flaky-sum.vhd bytes=") && r.endsWith("-")), "never asked for the rest only");
    const obj = await get("vhd-flaky-sum");
    assert.equal(obj.status?.transfer?.percent, 100);
    const image = await env.azure.compute.images.get("rg-vhd", obj.status?.imageId?.split("/").pop() ?? "");
    assert.equal(image.provisioningState, "Succeeded");
    await eventually("source disk removed", async () => !(await disksLeft()).some((d) => d.includes("vhd-flaky-sum")));
    const events = await env.kube.get<{ items: Array<{ involvedObject: { name: string }; reason: string; type: string }> }>("/api/v1/namespaces/default/events");
    assert.ok(events.items.some((e) => e.involvedObject.name === "vhd-flaky-sum" && e.reason === "SourceInterrupted" && e.type === "Warning"), "a Warning Event named the cause");
  });

  it("stalls with SourceNotFound when the URL answers 404", async () => {
    await apply("vhd-missing", { url: `${files.url}/no-such.vhd` });
    await eventually("Stalled", async () => ready(await get("vhd-missing"))?.reason === "SourceNotFound", 30_000);
    assert.doesNotMatch(ready(await get("vhd-missing"))?.message ?? "", /sig=/);
  });
});
