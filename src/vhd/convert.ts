import {
  buildFixedFooter,
  DiskType,
  isVhdFooter,
  MiB,
  parseDynamicHeader,
  parseFooter,
  SECTOR,
  VhdFormatError,
} from "./footer.ts";

/** A piece of the fixed VHD to write at `offset` (512-aligned, at most the chunk size). */
export interface Chunk {
  offset: number;
  data: Buffer;
  /**
   * Present when `data` lies in a pooled buffer: call it once the data is no longer needed (written or
   * skipped), so the buffer can hold a later chunk. The converter waits for free buffers.
   */
  release?: () => void;
}

/**
 * A fixed set of equal buffers handed out and given back, so a transfer copies each byte into memory
 * that is already mapped instead of allocating (and page-faulting, and collecting) a new buffer for
 * every chunk. At most `count` chunks exist at once: the pool also bounds memory.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<(b: Buffer) => void> = [];

  readonly count: number;
  readonly size: number;

  constructor(count: number, size: number) {
    this.count = count;
    this.size = size;
    for (let i = 0; i < count; i++) this.free.push(Buffer.allocUnsafeSlow(size));
  }

  /** A free buffer, waiting until one is given back. */
  take(): Promise<Buffer> | Buffer {
    return this.free.pop() ?? new Promise((resolve) => this.waiting.push(resolve));
  }

  give(b: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }

  /** Buffers not handed out. */
  get available(): number {
    return this.free.length;
  }
}

export type SourceFormat = "fixed" | "dynamic" | "raw";

/** What a source turns into: its format, the fixed VHD's virtual size, and the size to upload (virtual + footer). */
export interface Layout {
  format: SourceFormat;
  /** The disk size of the source (its footer's, or its length for raw data). */
  sourceDiskSize: number;
  /** The disk size written to Azure: the source's, rounded up to a whole MiB as Azure requires. */
  virtualSize: number;
  /** Bytes of the fixed VHD written to Azure: the virtual size plus the 512-byte footer. */
  vhdSize: number;
}

/** Azure takes whole MiB only; a disk a little short of one (CHS rounding, raw files) grows to the next. */
function layoutFor(format: SourceFormat, sourceDiskSize: number): Layout {
  if (sourceDiskSize <= 0) throw new VhdFormatError("TruncatedSource", "the source is empty");
  const virtualSize = Math.ceil(sourceDiskSize / MiB) * MiB;
  return { format, sourceDiskSize, virtualSize, vhdSize: virtualSize + SECTOR };
}

/**
 * Decides the layout from what can be read cheaply: the source's length, its first 512 bytes (a dynamic
 * VHD starts with a copy of its footer) and its last 512 bytes (a fixed VHD ends with its footer).
 * `hint` forces a format where detection is impossible.
 */
export function detectLayout(sourceBytes: number, head: Buffer, tail: Buffer | undefined, hint: "auto" | "vhd" | "raw" = "auto"): Layout {
  if (hint !== "raw" && isVhdFooter(head.subarray(0, SECTOR))) {
    const f = parseFooter(head.subarray(0, SECTOR));
    if (f.diskType === DiskType.Differencing) throw new VhdFormatError("UnsupportedVhd", "differencing VHDs cannot be imported; merge them into their parent first");
    if (f.diskType === DiskType.Dynamic) return layoutFor("dynamic", f.currentSize);
  }
  if (hint !== "raw" && tail && isVhdFooter(tail)) {
    const f = parseFooter(tail);
    if (f.diskType !== DiskType.Fixed) throw new VhdFormatError("InvalidVhdFooter", "the VHD ends with a footer that is not a fixed disk's, but does not start with one");
    if (f.currentSize + SECTOR !== sourceBytes) {
      throw new VhdFormatError("InvalidVhdFooter", `the VHD footer says ${f.currentSize} bytes of disk but the file holds ${sourceBytes - SECTOR}`);
    }
    return layoutFor("fixed", f.currentSize);
  }
  if (hint === "vhd") throw new VhdFormatError("InvalidVhdFooter", "the source was declared a VHD but has no VHD footer");
  return layoutFor("raw", sourceBytes);
}

/** Pull-based reading of exact byte counts from an async stream of buffers. */
class Reader {
  private readonly it: AsyncIterator<Buffer>;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  position = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer | Uint8Array>) {
    const inner = source[Symbol.asyncIterator]();
    this.it = {
      next: async () => {
        const r = await inner.next();
        return r.done ? r : { done: false, value: Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value) };
      },
    };
  }

  /** Fetches the next piece of the source into `pending`; false at the end of the source. */
  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    if (r.value.length > 0) {
      this.pending.push(r.value);
      this.pendingBytes += r.value.length;
    }
    return true;
  }

  /** Drops `n` bytes from the front of the first pending piece (at most its length). */
  private consume(n: number): void {
    const head = this.pending[0] as Buffer;
    this.pendingBytes -= n;
    this.position += n;
    if (n === head.length) this.pending.shift();
    else this.pending[0] = head.subarray(n);
  }

  /** Up to `n` bytes; fewer only at the end of the source. */
  async read(n: number): Promise<Buffer> {
    while (this.pendingBytes < n && (await this.more()));
    const all = this.pending.length === 1 ? (this.pending[0] ?? Buffer.alloc(0)) : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    this.position += out.length;
    return out;
  }

  /** Copies up to `n` bytes into `target` (fewer only at the end of the source); returns how many. */
  async readInto(target: Buffer, n: number): Promise<number> {
    let filled = 0;
    while (filled < n) {
      if (this.pending.length === 0) {
        if (!(await this.more())) break;
        continue;
      }
      const head = this.pending[0] as Buffer;
      const take = Math.min(head.length, n - filled);
      head.copy(target, filled, 0, take);
      filled += take;
      this.consume(take);
    }
    return filled;
  }

  async readExactly(n: number, what: string): Promise<Buffer> {
    const b = await this.read(n);
    if (b.length !== n) throw new VhdFormatError("TruncatedSource", `the source ended early while reading ${what} (at byte ${this.position})`);
    return b;
  }

  async skipTo(offset: number, what: string): Promise<void> {
    if (offset < this.position) throw new VhdFormatError("UnsupportedVhd", `${what} lies before data already read; blocks out of order cannot be streamed`);
    while (this.position < offset) {
      if (this.pending.length === 0) {
        if (!(await this.more())) throw new VhdFormatError("TruncatedSource", `the source ended early while reading ${what} (at byte ${this.position})`);
        continue;
      }
      this.consume(Math.min((this.pending[0] as Buffer).length, offset - this.position));
    }
  }

  async atEnd(): Promise<boolean> {
    const b = await this.read(1);
    if (b.length === 0) return true;
    this.pending.unshift(b);
    this.pendingBytes += b.length;
    this.position -= b.length;
    return false;
  }
}

export interface ConvertOptions {
  /** Largest chunk yielded (default 4 MiB, Azure's largest page write). */
  chunkSize?: number;
  /** Resume: the source starts at this byte of the image (fixed VHD or raw only, 512-aligned). */
  startOffset?: number;
  /**
   * Data chunks are read into these buffers (of at least `chunkSize` bytes) and carry a `release`
   * the consumer must call; without a pool every chunk gets its own buffer.
   */
  pool?: BufferPool;
}

/** Reads up to `n` bytes as a chunk at `offset`: into a pooled buffer when there is a pool. */
async function readChunk(r: Reader, n: number, offset: number, pool: BufferPool | undefined): Promise<Chunk> {
  if (!pool) return { offset, data: await r.read(n) };
  const buffer = await pool.take();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    pool.give(buffer);
  };
  try {
    const got = await r.readInto(buffer, n);
    return { offset, data: buffer.subarray(0, got), release };
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * Turns a source stream into the pieces of a fixed VHD, in one pass and bounded memory: a fixed VHD is
 * checked and passed through; a dynamic VHD is expanded by following its block allocation table (blocks
 * must appear in the file in increasing order, as every tool writes them); raw data is passed through
 * and given a fixed-VHD footer. Sizes short of a whole MiB are padded with zeros. Every yielded chunk is
 * 512-aligned and at most `chunkSize` bytes; the footer comes last. A fixed or raw source can be
 * resumed: given the stream from `startOffset` on, the chunks start there.
 */
export async function* toFixedVhd(source: AsyncIterable<Buffer | Uint8Array>, layout: Layout, opts: ConvertOptions = {}): AsyncGenerator<Chunk> {
  const chunkSize = opts.chunkSize ?? 4 * MiB;
  const startOffset = opts.startOffset ?? 0;
  const pool = opts.pool;
  if (pool && pool.size < chunkSize) throw new Error(`pooled buffers of ${pool.size} bytes cannot hold chunks of ${chunkSize}`);
  const r = new Reader(source);
  if (startOffset % SECTOR !== 0 || (startOffset > 0 && layout.format === "dynamic")) {
    throw new Error(`cannot start a ${layout.format} source at byte ${startOffset}`);
  }
  if (layout.format === "dynamic") {
    yield* expandDynamic(r, layout, chunkSize, pool);
  } else {
    const dataBytes = layout.format === "fixed" ? layout.sourceDiskSize : undefined;
    let offset = startOffset;
    for (;;) {
      const want = dataBytes === undefined ? chunkSize : Math.min(chunkSize, dataBytes - offset);
      if (want <= 0) break;
      const chunk = await readChunk(r, want, offset, pool);
      const got = chunk.data.length;
      if (got === 0) {
        chunk.release?.();
        break;
      }
      const problem =
        dataBytes !== undefined && got < want
          ? new VhdFormatError("TruncatedSource", `the source ended after ${offset + got} of ${dataBytes} bytes`)
          : offset + Math.ceil(got / SECTOR) * SECTOR > layout.virtualSize
            ? new VhdFormatError("SourceTooLarge", `the source holds more than the ${layout.virtualSize} bytes expected`)
            : undefined;
      if (problem) {
        chunk.release?.();
        throw problem;
      }
      if (got % SECTOR !== 0) {
        // Only the last chunk of a raw source: padded with zeros to a whole sector, in a buffer of its own.
        const padded = Buffer.concat([chunk.data, Buffer.alloc(SECTOR - (got % SECTOR))]);
        chunk.release?.();
        yield { offset, data: padded };
        offset += got;
        continue;
      }
      yield chunk;
      offset += got;
    }
    if (layout.format === "fixed") {
      const footer = parseFooter(await r.readExactly(SECTOR, "the VHD footer"));
      if (footer.diskType !== DiskType.Fixed || footer.currentSize !== layout.sourceDiskSize) {
        throw new VhdFormatError("InvalidVhdFooter", "the VHD footer at the end differs from the one the source was detected by");
      }
    } else if (offset === 0) {
      throw new VhdFormatError("TruncatedSource", "the source is empty");
    }
    if (!(await r.atEnd())) throw new VhdFormatError("SourceTooLarge", "the source holds more bytes than its size says");
  }
  yield { offset: layout.virtualSize, data: buildFixedFooter(layout.virtualSize) };
}

async function* expandDynamic(r: Reader, layout: Layout, chunkSize: number, pool: BufferPool | undefined): AsyncGenerator<Chunk> {
  const footer = parseFooter(await r.readExactly(SECTOR, "the VHD footer copy"));
  await r.skipTo(Number(footer.dataOffset), "the dynamic header");
  const header = parseDynamicHeader(await r.readExactly(1024, "the dynamic header"));
  await r.skipTo(header.batOffset, "the block allocation table");
  const batBytes = Math.ceil((header.maxTableEntries * 4) / SECTOR) * SECTOR;
  const bat = await r.readExactly(batBytes, "the block allocation table");
  const bitmapBytes = Math.ceil(header.blockSize / SECTOR / 8 / SECTOR) * SECTOR;
  const blocks: Array<{ index: number; fileOffset: number }> = [];
  for (let i = 0; i < header.maxTableEntries; i++) {
    const sector = bat.readUInt32BE(i * 4);
    if (sector !== 0xffffffff) blocks.push({ index: i, fileOffset: sector * SECTOR });
  }
  blocks.sort((a, b) => a.fileOffset - b.fileOffset);
  for (const block of blocks) {
    const virtualStart = block.index * header.blockSize;
    if (virtualStart >= layout.sourceDiskSize) throw new VhdFormatError("InvalidVhdFooter", `block ${block.index} lies beyond the disk's size`);
    await r.skipTo(block.fileOffset, `block ${block.index}`);
    const bitmap = await r.readExactly(bitmapBytes, `the sector bitmap of block ${block.index}`);
    const length = Math.min(header.blockSize, layout.sourceDiskSize - virtualStart);
    for (let done = 0; done < length; ) {
      const want = Math.min(chunkSize, length - done);
      const chunk = await readChunk(r, want, virtualStart + done, pool);
      const piece = chunk.data;
      if (piece.length !== want) {
        chunk.release?.();
        throw new VhdFormatError("TruncatedSource", `the source ended early while reading block ${block.index} (at byte ${r.position})`);
      }
      // Sectors the bitmap marks unwritten read as zeros, whatever bytes the file holds there.
      for (let s = 0; s < piece.length / SECTOR; s++) {
        const sector = (done / SECTOR) + s;
        if (((bitmap[sector >> 3] ?? 0) & (0x80 >> (sector & 7))) === 0) piece.fill(0, s * SECTOR, (s + 1) * SECTOR);
      }
      yield chunk;
      done += piece.length;
    }
  }
}
