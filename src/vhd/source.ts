import { createHash, type Hash } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { pipeline, Readable } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { detectLayout, type Layout } from "./convert.ts";
import { SECTOR, VhdFormatError } from "./footer.ts";

/** A source URL as it may be shown: without its query string, which can hold a SAS signature. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}${u.search ? "?…" : ""}`;
  } catch {
    return "(invalid URL)";
  }
}

/** Why a source cannot be read: a condition reason and a message without secrets. */
export class SourceError extends Error {
  readonly reason: string;
  /** Whether trying again later may help (the server failed, the network dropped). */
  readonly retryable: boolean;

  constructor(reason: string, message: string, retryable = false) {
    super(message);
    this.name = "SourceError";
    this.reason = reason;
    this.retryable = retryable;
  }
}

async function get(url: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { headers, ...(signal ? { signal } : {}) });
  } catch (err) {
    throw new SourceError("SourceUnreachable", `cannot reach ${displayUrl(url)}: ${err instanceof Error ? err.message : String(err)}`, true);
  }
  if (res.status >= 400) {
    await res.body?.cancel();
    const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
    throw new SourceError(res.status === 404 ? "SourceNotFound" : "SourceRefused", `${displayUrl(url)} answered ${res.status} ${res.statusText}`, retryable);
  }
  return res;
}

export type Compression = "none" | "gzip" | "zstd";

/** The compression a source's first bytes announce (gzip and zstd magic numbers). */
export function compressionOf(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

export interface ProbedSource {
  layout: Layout;
  /** Bytes of the (decompressed) source. */
  sourceBytes: number;
  rangeSupported: boolean;
  compression: Compression;
}

/**
 * Reads what is needed to plan an import without downloading it: the size, the first 512 bytes (a
 * dynamic VHD's footer copy) and, where the server supports Range, the last 512 (a fixed VHD's footer).
 * Without Range support a fixed VHD cannot be told from raw data: `format` must say which.
 */
export async function probeSource(url: string, format: "auto" | "vhd" | "raw", signal?: AbortSignal): Promise<ProbedSource> {
  const first = await get(url, { range: `bytes=0-${SECTOR - 1}` }, signal);
  let size: number;
  let head: Buffer;
  let rangeSupported: boolean;
  if (first.status === 206) {
    const total = /\/(\d+)$/.exec(first.headers.get("content-range") ?? "")?.[1];
    if (!total) throw new SourceError("SourceRefused", `${displayUrl(url)} does not say its size (Content-Range)`);
    size = Number(total);
    head = Buffer.from(await first.arrayBuffer());
    rangeSupported = true;
  } else {
    const length = Number(first.headers.get("content-length"));
    if (!Number.isFinite(length) || length <= 0) {
      await first.body?.cancel();
      throw new SourceError("SourceRefused", `${displayUrl(url)} says neither its size nor supports Range requests`);
    }
    size = length;
    const reader = first.body?.getReader();
    const parts: Buffer[] = [];
    let got = 0;
    while (reader && got < SECTOR) {
      const r = (await reader.read()) as { done: boolean; value?: Uint8Array };
      if (r.done || !r.value) break;
      parts.push(Buffer.from(r.value));
      got += r.value.length;
    }
    await reader?.cancel();
    head = Buffer.concat(parts).subarray(0, SECTOR);
    rangeSupported = false;
  }
  const compression = compressionOf(head);
  if (compression !== "none") return probeCompressed(url, compression, format, signal);
  let tail: Buffer | undefined;
  if (rangeSupported && size >= SECTOR) {
    const last = await get(url, { range: `bytes=${size - SECTOR}-${size - 1}` }, signal);
    tail = Buffer.from(await last.arrayBuffer());
  }
  if (!tail && format === "auto" && !head.subarray(0, 8).equals(Buffer.from("conectix"))) {
    throw new SourceError(
      "SourceFormatUnknown",
      `${displayUrl(url)} does not support Range requests, so a fixed VHD cannot be told from raw data; set spec.source.vhd.format to vhd or raw`,
    );
  }
  try {
    return { layout: detectLayout(size, head, tail, format), sourceBytes: size, rangeSupported, compression };
  } catch (err) {
    if (err instanceof VhdFormatError) throw new SourceError(err.reason, `${displayUrl(url)}: ${err.message}`);
    throw err;
  }
}

/**
 * A compressed source says its size only at its end: it is decompressed once, in a stream, to learn
 * the length and read the first and last 512 bytes (a dynamic VHD is known from its first sector, so
 * that pass stops there). The import then streams it a second time.
 */
async function probeCompressed(url: string, compression: Compression, format: "auto" | "vhd" | "raw", signal?: AbortSignal): Promise<ProbedSource> {
  const { stream } = await openSource(url, { compression, ...(signal ? { signal } : {}) });
  let total = 0;
  let head = Buffer.alloc(0);
  let tail = Buffer.alloc(0);
  try {
    for await (const chunk of stream) {
      if (head.length < SECTOR) {
        head = Buffer.concat([head, chunk.subarray(0, SECTOR - head.length)]);
        if (head.length === SECTOR && format !== "raw" && head.subarray(0, 8).equals(Buffer.from("conectix"))) {
          const layout = detectLayout(Number.MAX_SAFE_INTEGER, head, undefined, format);
          if (layout.format === "dynamic") return { layout, sourceBytes: Number.NaN, rangeSupported: false, compression };
        }
      }
      total += chunk.length;
      tail = chunk.length >= SECTOR ? Buffer.from(chunk.subarray(chunk.length - SECTOR)) : Buffer.concat([tail, chunk]).subarray(-SECTOR);
    }
    return { layout: detectLayout(total, head, total >= SECTOR ? tail : undefined, format), sourceBytes: total, rangeSupported: false, compression };
  } catch (err) {
    if (err instanceof VhdFormatError) throw new SourceError(err.reason, `${displayUrl(url)} (${compression}): ${err.message}`);
    throw err;
  }
}

/**
 * The source's bytes as a stream; with `hashed`, a sha256 is computed on the way so a checksum can be
 * verified at the end (it costs about 4 CPU-seconds per GiB on a machine without SHA extensions, so
 * only when asked). A compressed source is decompressed on the way (zlib's gzip and zstd); its checksum
 * is that of the file as downloaded.
 */
export async function openSource(
  url: string,
  opts: { signal?: AbortSignal; hashed?: boolean; compression?: Compression; start?: number } = {},
): Promise<{ stream: AsyncIterable<Buffer>; hash: Hash | undefined }> {
  const signal = opts.signal;
  // node:http streams the body as Buffers straight from the socket; fetch's web streams cost several
  // times the CPU per byte, which at a few hundred MiB/s is the bottleneck.
  const parsed = new URL(url);
  const requestFn = parsed.protocol === "https:" ? httpsRequest : parsed.protocol === "http:" ? httpRequest : undefined;
  if (!requestFn) throw new SourceError("SourceRefused", `${displayUrl(url)}: only http and https URLs can be imported`);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const start = opts.start ?? 0;
    const req = requestFn(parsed, { ...(signal ? { signal } : {}), ...(start > 0 ? { headers: { range: `bytes=${start}-` } } : {}) }, resolve);
    req.on("error", (err) => {
      reject(new SourceError("SourceUnreachable", `cannot reach ${displayUrl(url)}: ${err.message}`, true));
    });
    req.end();
  });
  const status = res.statusCode ?? 0;
  if (status >= 300) {
    res.resume();
    const retryable = status >= 500 || status === 429 || status === 408;
    throw new SourceError(status === 404 ? "SourceNotFound" : "SourceRefused", `${displayUrl(url)} answered ${status} ${res.statusMessage ?? ""}`, retryable);
  }
  if ((opts.start ?? 0) > 0 && status !== 206) {
    res.resume();
    throw new SourceError("SourceRangeRefused", `${displayUrl(url)} did not answer a Range request with partial content`, true);
  }
  const expected = Number(res.headers["content-length"]);
  const hash = opts.hashed ? createHash("sha256") : undefined;
  async function* body(): AsyncGenerator<Buffer> {
    let received = 0;
    try {
      for await (const chunk of res) {
        const b = chunk as Buffer;
        hash?.update(b);
        received += b.length;
        yield b;
      }
    } catch (err) {
      throw new SourceError("SourceInterrupted", `the download of ${displayUrl(url)} broke off after ${received} bytes: ${err instanceof Error ? err.message : String(err)}`, true);
    }
    if (Number.isFinite(expected) && received !== expected) {
      throw new SourceError("SourceInterrupted", `the download of ${displayUrl(url)} ended after ${received} of ${expected} bytes`, true);
    }
  }
  const compression = opts.compression ?? "none";
  if (compression === "none") return { stream: body(), hash };
  const decompressed = compression === "gzip" ? createGunzip() : createZstdDecompress();
  // A failure of the download or of the decompression destroys `decompressed` with its error, which
  // its iteration below then throws.
  pipeline(Readable.from(body(), { objectMode: false }), decompressed, () => undefined);
  async function* inflated(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of decompressed) yield chunk as Buffer;
    } catch (err) {
      if (err instanceof SourceError) throw err;
      throw new SourceError("CorruptSource", `${displayUrl(url)} is not valid ${compression} data: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { stream: inflated(), hash };
}
