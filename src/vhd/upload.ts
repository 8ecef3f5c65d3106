import { BufferPool, type Chunk } from "./convert.ts";
import { SourceError } from "./source.ts";
import { SECTOR } from "./footer.ts";

/** Where pages go: a page blob, or a managed disk's upload SAS (both are page blobs to the SDK). */
export interface PageTarget {
  uploadPages(data: Buffer, offset: number, count: number, options?: { abortSignal?: AbortSignal }): Promise<unknown>;
}

export interface TransferProgress {
  bytesTotal: number;
  /** Bytes of the image handled so far: written plus skipped. */
  bytesDone: number;
  bytesSkippedZero: number;
  bytesWritten: number;
  /**
   * Every byte before this offset is in the target (written, or zero and skipped): where an
   * interrupted upload can resume. Writes still in flight are after it.
   */
  confirmedOffset: number;
}

export interface UploadOptions {
  /** Writes in flight at once (default 8). */
  concurrency?: number;
  /** At most this many bytes per write; Azure's limit is 4 MiB. */
  maxWriteBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: TransferProgress) => void;
  /** The chunks continue an upload that is complete up to here (counted as done). */
  startOffset?: number;
  /**
   * A page write that has not finished after this long is abandoned and the upload fails (retryable):
   * a connection that stalls without closing must not hold its buffers forever. Default 5 minutes.
   */
  writeTimeoutMs?: number;
}

const MAX_PAGE_WRITE = 4 * 1024 * 1024;

/**
 * Buffers for converting a source while `concurrency` page writes are in flight: one per write, one
 * being filled and one ready, so reading never waits on a write that could already be sent.
 */
export function transferPool(concurrency: number): BufferPool {
  return new BufferPool(concurrency + 2, MAX_PAGE_WRITE);
}
const zeros = Buffer.alloc(MAX_PAGE_WRITE);

function isZero(data: Buffer): boolean {
  return data.equals(zeros.subarray(0, data.length));
}

/**
 * Writes the chunks of a fixed VHD as page writes of at most 4 MiB, several in flight, skipping ranges
 * that are all zeros (a new page blob or upload disk already reads as zeros). Memory stays bounded: at
 * most `concurrency` chunks are held at once.
 */
export async function uploadChunks(
  target: PageTarget,
  chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
  bytesTotal: number,
  opts: UploadOptions = {},
): Promise<TransferProgress> {
  const concurrency = opts.concurrency ?? 8;
  const maxWrite = Math.min(opts.maxWriteBytes ?? MAX_PAGE_WRITE, MAX_PAGE_WRITE);
  const progress: TransferProgress = { bytesTotal, bytesDone: 0, bytesSkippedZero: 0, bytesWritten: 0, confirmedOffset: opts.startOffset ?? 0 };
  progress.bytesDone = opts.startOffset ?? 0;
  const inFlight = new Set<Promise<void>>();
  const pending = new Set<number>();
  let scheduledEnd = opts.startOffset ?? 0;
  const confirm = () => {
    progress.confirmedOffset = pending.size > 0 ? Math.min(...pending) : scheduledEnd;
  };
  let failure: unknown;

  const writeTimeoutMs = opts.writeTimeoutMs ?? 300_000;
  const write = (offset: number, data: Buffer): Promise<void> => {
    pending.add(offset);
    const timeout = AbortSignal.timeout(writeTimeoutMs);
    const p = target
      .uploadPages(data, offset, data.length, { abortSignal: opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout })
      .then(() => {
        pending.delete(offset);
        confirm();
        progress.bytesWritten += data.length;
        progress.bytesDone += data.length;
        opts.onProgress?.(progress);
      })
      .catch((err: unknown) => {
        failure ??= timeout.aborted && !opts.signal?.aborted
          ? new SourceError("UploadTimedOut", `the page write at byte ${offset} did not finish within ${writeTimeoutMs >= 1000 ? `${Math.round(writeTimeoutMs / 1000)} s` : `${writeTimeoutMs} ms`}`, true)
          : err;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    return p;
  };

  try {
    for await (const chunk of chunks) {
      if (chunk.offset % SECTOR !== 0 || chunk.data.length % SECTOR !== 0) {
        chunk.release?.();
        throw new Error(`unaligned chunk at ${chunk.offset}`);
      }
      const writes: Array<Promise<void>> = [];
      for (let i = 0; i < chunk.data.length; i += maxWrite) {
        const piece = chunk.data.subarray(i, i + maxWrite);
        scheduledEnd = chunk.offset + i + piece.length;
        if (isZero(piece)) {
          progress.bytesSkippedZero += piece.length;
          progress.bytesDone += piece.length;
          confirm();
          continue;
        }
        while (inFlight.size >= concurrency) await Promise.race(inFlight);
        if (failure) break;
        writes.push(write(chunk.offset + i, piece));
      }
      // A pooled buffer goes back once every write from it has ended (writes never reject: a failure is
      // kept in `failure`).
      const release = chunk.release;
      if (release) {
        if (writes.length === 0) release();
        else void Promise.all(writes).then(release);
      }
      if (failure) break;
    }
  } catch (err) {
    // The source failed: the writes already sent end first, so nothing writes after this returns.
    await Promise.all(inFlight);
    throw err;
  }
  await Promise.all(inFlight);
  if (failure) throw failure instanceof Error ? failure : new Error("a page write failed", { cause: failure });
  // Every byte of the image not written reads as zero: a zero range skipped, or a hole the source never
  // stored (unallocated blocks of a dynamic VHD, padding to a whole MiB).
  progress.bytesSkippedZero = bytesTotal - progress.bytesWritten - (opts.startOffset ?? 0);
  progress.bytesDone = bytesTotal;
  progress.confirmedOffset = bytesTotal;
  opts.onProgress?.(progress);
  return progress;
}
