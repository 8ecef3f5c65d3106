import { AnonymousCredential, PageBlobClient } from "@azure/storage-blob";
import type { AzureClients } from "../../azure/clients.ts";
import { classify } from "../../azure/errors.ts";
import { toFixedVhd, type Layout } from "../../vhd/convert.ts";
import { VhdFormatError } from "../../vhd/footer.ts";
import { openSource, SourceError, type Compression } from "../../vhd/source.ts";
import { uploadChunks, type TransferProgress } from "../../vhd/upload.ts";

/** An import running in the background, outside any reconcile. */
export interface UploadTask {
  generation: number | undefined;
  startedAt: Date;
  progress: TransferProgress;
  state: "running" | "succeeded" | "failed";
  /** Set when failed: a condition reason and a message without secrets, and whether to try again. */
  failure?: { reason: string; message: string; retryable: boolean };
  abort: AbortController;
}

export interface ImportJob {
  azure: AzureClients;
  resourceGroup: string;
  diskName: string;
  url: string;
  layout: Layout;
  checksum: string | undefined;
  concurrency: number;
  compression: Compression;
}

/**
 * Streams a source into an upload-ready managed disk: write access, page writes of the converted fixed
 * VHD, checksum check, access revoked. Runs as a background task; reconciles look at its progress.
 */
export async function importToDisk(job: ImportJob, task: UploadTask): Promise<void> {
  const disks = job.azure.compute.disks;
  const access = await disks.grantAccess(job.resourceGroup, job.diskName, { access: "Write", durationInSeconds: 24 * 3600 });
  if (!access.accessSAS) throw new SourceError("UploadFailed", "Azure granted no write access to the upload disk");
  const target = new PageBlobClient(access.accessSAS, new AnonymousCredential());
  const { stream, hash } = await openSource(job.url, { signal: task.abort.signal, hashed: job.checksum !== undefined, compression: job.compression });
  await uploadChunks(target, toFixedVhd(stream, job.layout), job.layout.vhdSize, {
    concurrency: job.concurrency,
    signal: task.abort.signal,
    onProgress: (p) => {
      task.progress = { ...p };
    },
  });
  if (job.checksum && hash) {
    const digest = `sha256:${hash.digest("hex")}`;
    if (job.checksum.toLowerCase() !== digest) throw new SourceError("ChecksumMismatch", `the source's checksum is ${digest}, not ${job.checksum}`);
  }
  await disks.revokeAccess(job.resourceGroup, job.diskName);
}

/** Background imports by object uid. */
export class UploadTasks {
  private readonly tasks = new Map<string, UploadTask>();

  get(uid: string): UploadTask | undefined {
    return this.tasks.get(uid);
  }

  /** Starts `job` for `uid`; `onFinish` runs when it ends, either way (to requeue the object). */
  start(uid: string, job: ImportJob, generation: number | undefined, onFinish: () => void): UploadTask {
    const task: UploadTask = {
      generation,
      startedAt: new Date(),
      progress: { bytesTotal: job.layout.vhdSize, bytesDone: 0, bytesSkippedZero: 0, bytesWritten: 0 },
      state: "running",
      abort: new AbortController(),
    };
    this.tasks.set(uid, task);
    importToDisk(job, task)
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
