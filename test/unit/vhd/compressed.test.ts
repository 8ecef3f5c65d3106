import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { toFixedVhd } from "../../../src/vhd/convert.ts";
import { MiB, parseFooter } from "../../../src/vhd/footer.ts";
import { openSource, probeSource, SourceError, type ProbedSource } from "../../../src/vhd/source.ts";
import { FileServer } from "../../support/file-server.ts";

const qemuImg = (args: string[]) => promisify(execFile)("qemu-img", args);

/** Same disk contents and same footer, apart from what a footer made now differs in (time stamp, unique id). */
function assertSameVhd(actual: Buffer, expected: Buffer): void {
  assert.equal(actual.length, expected.length);
  assert.ok(actual.subarray(0, -512).equals(expected.subarray(0, -512)), "same disk contents");
  const [a, e] = [parseFooter(actual.subarray(-512)), parseFooter(expected.subarray(-512))];
  assert.deepEqual([a.diskType, a.currentSize, a.originalSize], [e.diskType, e.currentSize, e.originalSize], "same footer");
}

/** Probes and streams a URL through the converter, as an import does, and assembles the fixed VHD. */
async function importBytes(url: string, hashed = false): Promise<{ probed: ProbedSource; vhd: Buffer; digest: string | undefined }> {
  const probed = await probeSource(url, "auto");
  const { stream, hash } = await openSource(url, { compression: probed.compression, hashed });
  const vhd = Buffer.alloc(probed.layout.vhdSize);
  for await (const chunk of toFixedVhd(stream, probed.layout)) chunk.data.copy(vhd, chunk.offset);
  return { probed, vhd, digest: hash?.digest("hex") };
}

describe("gzip- and zstd-compressed sources", () => {
  let dir: string;
  let files: FileServer;
  let noRange: FileServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-compressed-"));
    const raw = Buffer.alloc(21 * MiB + 1536);
    for (const at of [0, 5 * MiB, 20 * MiB]) raw.fill(Buffer.from(`data@${at};`), at, at + 4096);
    await writeFile(join(dir, "disk.raw"), raw);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", join(dir, "disk.raw"), join(dir, "fixed.vhd")]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", join(dir, "disk.raw"), join(dir, "dynamic.vhd")]);
    for (const f of ["fixed.vhd", "dynamic.vhd", "disk.raw"]) {
      const bytes = await readFile(join(dir, f));
      await writeFile(join(dir, `${f}.gz`), gzipSync(bytes));
      await writeFile(join(dir, `${f}.zst`), zstdCompressSync(bytes));
    }
    await writeFile(join(dir, "corrupt.gz"), Buffer.concat([gzipSync(Buffer.alloc(MiB)).subarray(0, 2000), Buffer.alloc(3000, 7)]));
    files = await FileServer.start(dir);
    noRange = await FileServer.start(dir, false);
  });

  after(async () => {
    await files.stop();
    await noRange.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const source of ["fixed.vhd", "dynamic.vhd", "disk.raw"]) {
    for (const [compression, ext] of [["gzip", "gz"], ["zstd", "zst"]] as const) {
      it(`${source}.${ext} imports with the same disk contents as ${source}`, async () => {
        const plain = await importBytes(`${files.url}/${source}`);
        const packed = await importBytes(`${files.url}/${source}.${ext}`, true);
        assert.equal(plain.probed.compression, "none");
        assert.equal(packed.probed.compression, compression);
        assert.deepEqual(packed.probed.layout, plain.probed.layout);
        assertSameVhd(packed.vhd, plain.vhd);
        // The checksum is the file's as downloaded (what sha256sum prints for the .gz/.zst file).
        assert.equal(packed.digest, createHash("sha256").update(await readFile(join(dir, `${source}.${ext}`))).digest("hex"));
      });
    }
  }

  it("needs no Range support from the server", async () => {
    const { probed, vhd } = await importBytes(`${noRange.url}/fixed.vhd.zst`);
    const ref = await importBytes(`${files.url}/fixed.vhd`);
    assert.equal(probed.layout.format, "fixed");
    assertSameVhd(vhd, ref.vhd);
  });

  it("reports corrupt compressed data as CorruptSource", async () => {
    await assert.rejects(probeSource(`${files.url}/corrupt.gz`, "auto"), (err: unknown) => err instanceof SourceError && err.reason === "CorruptSource" && !err.retryable);
  });
});
