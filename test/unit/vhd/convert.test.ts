import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { BufferPool, detectLayout, toFixedVhd, type Chunk, type Layout } from "../../../src/vhd/convert.ts";
import type { VhdFormatError } from "../../../src/vhd/footer.ts";
import { MiB, parseFooter } from "../../../src/vhd/footer.ts";
import type { SourceError } from "../../../src/vhd/source.ts";
import { uploadChunks, type PageTarget } from "../../../src/vhd/upload.ts";

const qemuImg = (args: string[]) => promisify(execFile)("qemu-img", args);

async function headTail(file: string): Promise<{ size: number; head: Buffer; tail: Buffer }> {
  const size = (await stat(file)).size;
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(512);
    const tail = Buffer.alloc(512);
    await fh.read(head, 0, 512, 0);
    await fh.read(tail, 0, 512, size - 512);
    return { size, head, tail };
  } finally {
    await fh.close();
  }
}

/**
 * Runs the converter over a file and assembles the fixed VHD it describes. With `pool`, chunks come in
 * pooled buffers and are given back once copied.
 */
async function convert(file: string, hint: "auto" | "vhd" | "raw" = "auto", pool?: BufferPool): Promise<{ layout: Layout; vhd: Buffer }> {
  const { size, head, tail } = await headTail(file);
  const layout = detectLayout(size, head, tail, hint);
  const vhd = Buffer.alloc(layout.vhdSize);
  let last = -1;
  // Odd-sized source reads, so chunks are assembled from pieces that straddle their edges.
  for await (const chunk of toFixedVhd(createReadStream(file, { highWaterMark: 333 * 1024 }), layout, { chunkSize: 1024 * 1024, ...(pool ? { pool } : {}) })) {
    assert.ok(chunk.offset > last, "chunks come in increasing order");
    assert.equal(chunk.offset % 512, 0);
    assert.ok(chunk.data.length <= 1024 * 1024);
    chunk.data.copy(vhd, chunk.offset);
    chunk.release?.();
    last = chunk.offset;
  }
  return { layout, vhd };
}

describe("VHD conversion of images made by qemu-img", () => {
  let dir: string;
  let raw: Buffer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-vhd-unit-"));
    // 21 MiB with data in a few places and zeros elsewhere, like a real disk.
    raw = Buffer.alloc(21 * MiB);
    for (const at of [0, 3 * MiB + 512, 10 * MiB, 21 * MiB - 4096]) raw.fill(Buffer.from(`data@${at};`), at, at + 2048);
    await writeFile(join(dir, "disk.raw"), raw);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", join(dir, "disk.raw"), join(dir, "fixed.vhd")]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic", join(dir, "disk.raw"), join(dir, "dynamic.vhd")]);
    await qemuImg(["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", join(dir, "disk.raw"), join(dir, "chs.vhd")]);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("passes a fixed VHD through and checks its footer", async () => {
    const { layout, vhd } = await convert(join(dir, "fixed.vhd"));
    assert.deepEqual(layout, { format: "fixed", sourceDiskSize: 21 * MiB, virtualSize: 21 * MiB, vhdSize: 21 * MiB + 512 });
    assert.ok(vhd.subarray(0, 21 * MiB).equals(raw));
    const footer = parseFooter(vhd.subarray(21 * MiB));
    assert.equal(footer.diskType, 2);
    assert.equal(footer.currentSize, 21 * MiB);
  });

  it("expands a dynamic VHD by its block allocation table", async () => {
    const { layout, vhd } = await convert(join(dir, "dynamic.vhd"));
    assert.equal(layout.format, "dynamic");
    // qemu-img rounds a dynamic disk to its CHS geometry; whatever size it chose, the data must match.
    assert.ok(vhd.subarray(0, raw.length).equals(raw));
    assert.equal(parseFooter(vhd.subarray(layout.virtualSize)).currentSize, layout.virtualSize);
  });

  it("pads raw data to a whole MiB and gives it a correct footer", async () => {
    const odd = join(dir, "odd.raw");
    await writeFile(odd, raw.subarray(0, 5 * MiB + 1000));
    const { layout, vhd } = await convert(odd);
    assert.deepEqual(layout, { format: "raw", sourceDiskSize: 5 * MiB + 1000, virtualSize: 6 * MiB, vhdSize: 6 * MiB + 512 });
    assert.ok(vhd.subarray(0, 5 * MiB + 1000).equals(raw.subarray(0, 5 * MiB + 1000)));
    assert.ok(vhd.subarray(5 * MiB + 1000, 6 * MiB).every((b) => b === 0));
    const footer = parseFooter(vhd.subarray(6 * MiB));
    assert.equal(footer.currentSize, 6 * MiB);
    // qemu-img reads our fixed VHD back to the same data
    await writeFile(join(dir, "ours.vhd"), vhd);
    await qemuImg(["convert", "-f", "vpc", "-O", "raw", join(dir, "ours.vhd"), join(dir, "back.raw")]);
    const back = await readFile(join(dir, "back.raw"));
    assert.ok(back.length >= 5 * MiB + 1000);
    assert.ok(back.subarray(0, 5 * MiB + 1000).equals(raw.subarray(0, 5 * MiB + 1000)));
  });

  it("grows a VHD whose size is not a whole MiB (qemu-img's CHS rounding) to the next MiB", async () => {
    const { layout, vhd } = await convert(join(dir, "chs.vhd"));
    assert.equal(layout.format, "fixed");
    assert.ok(layout.sourceDiskSize % MiB !== 0, "qemu-img made it unaligned");
    assert.equal(layout.virtualSize % MiB, 0);
    assert.ok(vhd.subarray(0, raw.length).equals(raw));
  });

  it("gives the same disk through pooled buffers, and every buffer back", async () => {
    for (const name of ["fixed.vhd", "dynamic.vhd", "chs.vhd", "disk.raw"]) {
      const pool = new BufferPool(2, 1024 * 1024);
      const pooled = await convert(join(dir, name), "auto", pool);
      const plain = await convert(join(dir, name));
      assert.ok(pooled.vhd.subarray(0, -512).equals(plain.vhd.subarray(0, -512)), `${name}: same disk data`);
      assert.ok(pooled.vhd.subarray(0, raw.length).equals(raw), `${name}: the disk qemu-img was given`);
      assert.equal(pool.available, 2, `${name}: every buffer given back`);
    }
  });

  it("refuses a corrupt footer and a truncated file", async () => {
    const corrupt = join(dir, "corrupt.vhd");
    const bytes = await readFile(join(dir, "fixed.vhd"));
    bytes[bytes.length - 512 + 70] = (bytes[bytes.length - 512 + 70] ?? 0) ^ 0xff;
    await writeFile(corrupt, bytes);
    await assert.rejects(convert(corrupt, "vhd"), (e: VhdFormatError) => e.reason === "InvalidVhdFooter");
    const truncated = join(dir, "truncated.vhd");
    await writeFile(truncated, await readFile(join(dir, "fixed.vhd")));
    const { size, head, tail } = await headTail(truncated);
    const layout = detectLayout(size, head, tail);
    await truncate(truncated, 10 * MiB);
    await assert.rejects(async () => {
      let bytes = 0;
      for await (const chunk of toFixedVhd(createReadStream(truncated), layout)) bytes += chunk.data.length;
      return bytes;
    }, (e: VhdFormatError) => e.reason === "TruncatedSource");
  });
});

/** `image` in 1 MiB chunks, each copied into a buffer taken from `pool` and given back on release. */
async function* pooledChunks(pool: BufferPool, image: Buffer): AsyncGenerator<Chunk> {
  for (let off = 0; off < image.length; off += MiB) {
    const buffer = await pool.take();
    image.copy(buffer, 0, off, off + MiB);
    yield {
      offset: off,
      data: buffer,
      release: () => {
        pool.give(buffer);
      },
    };
  }
}

describe("page uploads", () => {
  it("shares one pool between uploads running at once: each gets its bytes right, memory stays the pool's", async () => {
    const pool = new BufferPool(3, MiB);
    const images = [Buffer.alloc(12 * MiB), Buffer.alloc(12 * MiB)];
    images.forEach((img, n) => {
      for (let i = 0; i < 12; i++) img.fill(n * 16 + i + 1, i * MiB, (i + 1) * MiB);
    });
    let maxTaken = 0;
    const upload = async (image: Buffer) => {
      const written = Buffer.alloc(image.length);
      const target: PageTarget = {
        async uploadPages(data, offset) {
          maxTaken = Math.max(maxTaken, pool.count - pool.available);
          await new Promise((r) => setTimeout(r, 3));
          data.copy(written, offset);
        },
      };
      await uploadChunks(target, pooledChunks(pool, image), image.length, { concurrency: 2 });
      return written;
    };
    const [a, b] = await Promise.all(images.map(upload));
    assert.ok(a?.equals(images[0] ?? Buffer.alloc(0)) && b?.equals(images[1] ?? Buffer.alloc(0)), "each upload wrote its own image");
    assert.ok(maxTaken <= 3);
    assert.equal(pool.available, 3);
  });

  it("abandons a page write that never finishes, as a retryable UploadTimedOut", async () => {
    const target: PageTarget = {
      uploadPages(_data, _offset, _count, options) {
        return new Promise((_resolve, reject) => {
          options?.abortSignal?.addEventListener("abort", () => {
            reject(new Error("aborted"));
          });
        });
      },
    };
    function* chunks(): Generator<Chunk> {
      yield { offset: 0, data: Buffer.alloc(MiB, 1) };
    }
    await assert.rejects(uploadChunks(target, chunks(), MiB, { writeTimeoutMs: 50 }), (e: SourceError) => {
      assert.equal(e.reason, "UploadTimedOut");
      assert.equal(e.retryable, true);
      assert.match(e.message, /byte 0 did not finish within 50 ms/);
      return true;
    });
  });

  it("lets the writes in flight end before it reports a failed source, so nothing writes after it returns", async () => {
    let started = 0;
    let ended = 0;
    const target: PageTarget = {
      async uploadPages() {
        started++;
        await new Promise((r) => setTimeout(r, 30));
        ended++;
      },
    };
    function* chunks(): Generator<Chunk> {
      yield { offset: 0, data: Buffer.alloc(MiB, 1) };
      yield { offset: MiB, data: Buffer.alloc(MiB, 2) };
      throw new Error("the download broke off");
    }
    await assert.rejects(uploadChunks(target, chunks(), 4 * MiB, { concurrency: 4 }), /broke off/);
    assert.equal(started, 2);
    assert.equal(ended, 2, "both writes had ended when the failure came out");
  });

  it("gives a pooled buffer back only after its write ended, so reuse never changes data in flight", async () => {
    const image = Buffer.alloc(24 * MiB);
    for (let i = 0; i < 24; i++) if (i % 5 !== 2) image.fill(i + 1, i * MiB, (i + 1) * MiB);
    const pool = new BufferPool(3, 1 * MiB);
    const written = Buffer.alloc(image.length);
    let maxTaken = 0;
    const target: PageTarget = {
      async uploadPages(data, offset) {
        maxTaken = Math.max(maxTaken, pool.count - pool.available);
        // Writes end out of order; the data is read only at the end, as a socket would send it late.
        await new Promise((r) => setTimeout(r, (offset / MiB) % 3 === 0 ? 15 : 2));
        data.copy(written, offset);
      },
    };
    const p = await uploadChunks(target, pooledChunks(pool, image), image.length, { concurrency: 2 });
    assert.ok(written.equals(image), "no write saw a buffer refilled under it");
    assert.equal(p.bytesSkippedZero, 5 * MiB);
    assert.equal(pool.available, 3, "every buffer given back, the zero ones at once");
    assert.ok(maxTaken >= 2, "buffers were in use while writes ran");
  });

  it("writes at most 4 MiB at a time, skips zero ranges and bounds writes in flight", async () => {
    const image = Buffer.alloc(40 * MiB);
    image.fill(7, 5 * MiB, 6 * MiB);
    image.fill(9, 20 * MiB, 29 * MiB);
    let inFlight = 0;
    let maxInFlight = 0;
    const written = Buffer.alloc(image.length);
    const target: PageTarget = {
      async uploadPages(data, offset, count) {
        assert.ok(count <= 4 * MiB && count === data.length);
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        data.copy(written, offset);
        inFlight--;
      },
    };
    function* chunks() {
      for (let off = 0; off < image.length; off += 8 * MiB) yield { offset: off, data: image.subarray(off, off + 8 * MiB) };
    }
    const p = await uploadChunks(target, chunks(), image.length, { concurrency: 2 });
    assert.ok(written.equals(image));
    assert.equal(p.bytesWritten + p.bytesSkippedZero, image.length);
    assert.equal(p.bytesSkippedZero, 24 * MiB, "six all-zero 4 MiB pieces were not sent");
    assert.equal(p.bytesWritten, 16 * MiB);
    assert.ok(maxInFlight <= 2 && maxInFlight >= 1);
  });
});
