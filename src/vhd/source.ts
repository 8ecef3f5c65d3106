import { createHash, type Hash } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
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

export interface ProbedSource {
  layout: Layout;
  sourceBytes: number;
  rangeSupported: boolean;
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
    return { layout: detectLayout(size, head, tail, format), sourceBytes: size, rangeSupported };
  } catch (err) {
    if (err instanceof VhdFormatError) throw new SourceError(err.reason, `${displayUrl(url)}: ${err.message}`);
    throw err;
  }
}

/**
 * The source's bytes as a stream; with `hashed`, a sha256 is computed on the way so a checksum can be
 * verified at the end (it costs about 4 CPU-seconds per GiB on a machine without SHA extensions, so
 * only when asked).
 */
export async function openSource(url: string, opts: { signal?: AbortSignal; hashed?: boolean } = {}): Promise<{ stream: AsyncIterable<Buffer>; hash: Hash | undefined }> {
  const signal = opts.signal;
  // node:http streams the body as Buffers straight from the socket; fetch's web streams cost several
  // times the CPU per byte, which at a few hundred MiB/s is the bottleneck.
  const parsed = new URL(url);
  const requestFn = parsed.protocol === "https:" ? httpsRequest : parsed.protocol === "http:" ? httpRequest : undefined;
  if (!requestFn) throw new SourceError("SourceRefused", `${displayUrl(url)}: only http and https URLs can be imported`);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = requestFn(parsed, { ...(signal ? { signal } : {}) }, resolve);
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
  return { stream: body(), hash };
}
