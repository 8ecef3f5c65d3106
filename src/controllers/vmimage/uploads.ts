import { AnonymousCredential, PageBlobClient } from "@azure/storage-blob";
import type { AzureClients } from "../../azure/clients.ts";
import { classify } from "../../azure/errors.ts";
import { BufferPool, toFixedVhd, type Layout } from "../../vhd/convert.ts";
import { VhdFormatError } from "../../vhd/footer.ts";
import { openSource, SourceError, type Compression } from "../../vhd/source.ts";
import { sleep } from "../../runtime/backoff.ts";
import { uploadChunks, type TransferProgress } from "../../vhd/upload.ts";

/** An import running in the background, outside any reconcile. */
export interface UploadTask {
  generation: number | undefined;
  startedAt: Date;
  progress: TransferProgress;
  state: "running" | "succeeded" | "failed";
  /** Set when failed: a condition reason and a message without secrets, and whether to try again. */
  failure?: { reason: string; message: string; retryable: boolean };
  /** Downloads that broke off and were resumed by a Range request, each with where and why. */
  resumes: Array<{ offset: number; message: string }>;
  /** How many of `resumes` have been told in Events. */
  resumesReported: number;
  abort: AbortController;
}

export interface ImportJob {
  azure: AzureClients;
  url: string;
  layout: Layout;
  checksum: string | undefined;
  concurrency: number;
  compression: Compression;
  /** The source answers Range requests (from the probe): a broken-off download can continue. */
  rangeSupported: boolean;
  /** Where the fixed VHD goes: an upload disk (write SAS), or a page blob in the user's storage account. */
  destination: { kind: "disk"; resourceGroup: string; diskName: string } | { kind: "blob"; blobUrl: string; ownerUid: string; startOffset: number };
}

/** Downloads of one source per import: the first and up to four continuations after it broke off. */
const SOURCE_ATTEMPTS = 5;

/** Blob metadata of a page-blob upload: who owns it, how far it is confirmed, whether it is complete. */
export const BlobMeta = { owner: "azureimagesowner", confirmed: "azureimagesconfirmed", complete: "azureimagescomplete" } as const;

/**
 * Streams a source into its destination: page writes of the converted fixed VHD, checksum check, then
 * the destination is closed (an upload disk's write access revoked; a page blob marked complete). A
 * page-blob upload records how far it is confirmed in the blob's metadata every few seconds, so an
 * operator restart can resume there. Runs as a background task; reconciles look at its progress.
 */
export async function importSource(job: ImportJob, task: UploadTask, pool: BufferPool): Promise<void> {
  const dest = job.destination;
  let target: PageBlobClient;
  let startOffset = 0;
  let saveProgress: (confirmed: number) => Promise<unknown> = () => Promise.resolve();
  if (dest.kind === "disk") {
    const access = await job.azure.compute.disks.grantAccess(dest.resourceGroup, dest.diskName, { access: "Write", durationInSeconds: 24 * 3600 });
    if (!access.accessSAS) throw new SourceError("UploadFailed", "Azure granted no write access to the upload disk");
    target = new PageBlobClient(access.accessSAS, new AnonymousCredential());
  } else {
    target = new PageBlobClient(dest.blobUrl, job.azure.credential);
    startOffset = dest.startOffset;
    const meta = (confirmed: number) => ({ [BlobMeta.owner]: dest.ownerUid, [BlobMeta.confirmed]: String(confirmed) });
    // A fresh start gets a fresh blob: every page reads as zero, so zero ranges need not be sent.
    if (startOffset === 0) await target.create(job.layout.vhdSize, { metadata: meta(0) });
    saveProgress = (confirmed) => target.setMetadata(meta(confirmed));
  }
  // A download that breaks off continues where the target is complete, over a Range request, as long
  // as the source can be read from the middle (not compressed, not a dynamic VHD) and no checksum needs
  // every byte in one pass; otherwise the task fails and the reconciler starts over.
  const notResumable = !job.rangeSupported
    ? "the source does not support Range requests"
    : job.compression !== "none"
      ? `a ${job.compression}-compressed source cannot be read from the middle`
      : job.layout.format === "dynamic"
        ? "a dynamic VHD cannot be read from the middle"
        : job.checksum !== undefined
          ? "the checksum must see every byte in one pass"
          : undefined;
  let saved = Date.now();
  let saving: Promise<unknown> = Promise.resolve();
  let start = startOffset;
  for (let attempt = 1; ; attempt++) {
    try {
      const { stream, hash } = await openSource(job.url, { signal: task.abort.signal, hashed: job.checksum !== undefined, compression: job.compression, start });
      await uploadChunks(target, toFixedVhd(stream, job.layout, { startOffset: start, pool }), job.layout.vhdSize, {
        concurrency: job.concurrency,
        signal: task.abort.signal,
        startOffset: start,
        onProgress: (p) => {
          task.progress = { ...p };
          if (Date.now() - saved > 2_000) {
            saved = Date.now();
            // One metadata write at a time, in order: a late one must not undo a later one.
            const confirmed = p.confirmedOffset;
            saving = saving.then(() => saveProgress(confirmed)).catch(() => undefined);
          }
        },
      });
      if (job.checksum && hash) {
        const digest = `sha256:${hash.digest("hex")}`;
        if (job.checksum.toLowerCase() !== digest) throw new SourceError("ChecksumMismatch", `the source's checksum is ${digest}, not ${job.checksum}`);
      }
      break;
    } catch (err) {
      const broken = err instanceof SourceError && err.retryable && !task.abort.signal.aborted;
      if (broken && notResumable !== undefined) throw new SourceError(err.reason, `${err.message}; the import starts over because ${notResumable}`, true);
      if (!broken || attempt >= SOURCE_ATTEMPTS) throw err;
      start = Math.max(start, task.progress.confirmedOffset);
      task.resumes.push({ offset: start, message: err.message });
      await sleep(1000 * 2 ** (attempt - 1), task.abort.signal);
    }
  }
  // The last progress write ends before the blob is marked complete, so it cannot overwrite that mark.
  await saving;
  if (dest.kind === "disk") await job.azure.compute.disks.revokeAccess(dest.resourceGroup, dest.diskName);
  else await target.setMetadata({ [BlobMeta.owner]: dest.ownerUid, [BlobMeta.confirmed]: String(job.layout.vhdSize), [BlobMeta.complete]: "true" });
}

/**
 * Transfer buffers of 4 MiB shared by every import of the operator: 64 MiB in all, however many images
 * and disks upload at once (several uploads share the writes in flight instead of multiplying memory).
 */
const TRANSFER_BUFFERS = 16;

/** Background imports by object uid. */
export class UploadTasks {
  private readonly tasks = new Map<string, UploadTask>();
  private readonly pool = new BufferPool(TRANSFER_BUFFERS, 4 * 1024 * 1024);

  get(uid: string): UploadTask | undefined {
    return this.tasks.get(uid);
  }

  /** Starts `job` for `uid`; `onFinish` runs when it ends, either way (to requeue the object). */
  start(uid: string, job: ImportJob, generation: number | undefined, onFinish: () => void): UploadTask {
    const task: UploadTask = {
      generation,
      startedAt: new Date(),
      progress: { bytesTotal: job.layout.vhdSize, bytesDone: 0, bytesSkippedZero: 0, bytesWritten: 0, confirmedOffset: 0 },
      state: "running",
      resumes: [],
      resumesReported: 0,
      abort: new AbortController(),
    };
    this.tasks.set(uid, task);
    importSource(job, task, this.pool)
      .then(() => {
        task.state = "succeeded";
      })
      .catch((err: unknown) => {
        task.state = "failed";
        if (err instanceof SourceError) task.failure = { reason: err.reason, message: err.message, retryable: err.retryable };
        else if (err instanceof VhdFormatError) task.failure = { reason: err.reason, message: err.message, retryable: false };
        else {
          const c = classify(err);
          task.failure = { reason: c.code, message: c.message, retryable: c.kind !== "Terminal" };
        }
      })
      .finally(onFinish);
    return task;
  }

  forget(uid: string): void {
    this.tasks.get(uid)?.abort.abort();
    this.tasks.delete(uid);
  }

  /** Stops every running import (operator shutdown). */
  abortAll(): void {
    for (const t of this.tasks.values()) t.abort.abort();
  }
}
