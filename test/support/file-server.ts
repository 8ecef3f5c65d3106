import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { Transform } from "node:stream";

/** Passes bytes on at about `bytesPerSecond`, like a slow link. */
function paced(bytesPerSecond: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      setTimeout(() => {
        done(null, chunk);
      }, (chunk.length / bytesPerSecond) * 1000);
    },
  });
}

/**
 * Serves the files of a folder over HTTP, as an image store would: with Range support (one range), or
 * without it when `ranges` is false, optionally at a limited rate. Counts requests per path and
 * records the Range headers it was sent.
 */
export class FileServer {
  readonly requests = new Map<string, number>();
  readonly ranges: string[] = [];
  /** Per path: how many more downloads break off, and after how many bytes. */
  private readonly breaks = new Map<string, { afterBytes: number; times: number }>();
  private readonly server: Server;
  url = "";

  private constructor(dir: string, ranges: boolean, bytesPerSecond: number | undefined) {
    const send = (file: string, res: ServerResponse, opts: { start?: number; end?: number } = {}, path = "") => {
      const rule = this.breaks.get(path);
      if (rule && rule.times > 0 && (opts.end ?? Infinity) - (opts.start ?? 0) + 1 > rule.afterBytes) {
        // The headers promised the whole body; part of it is sent, then the connection drops.
        rule.times--;
        const start = opts.start ?? 0;
        const part = createReadStream(file, { start, end: start + rule.afterBytes - 1 });
        part.on("end", () => setTimeout(() => res.destroy(), 20));
        part.pipe(res, { end: false });
        return;
      }
      const body = createReadStream(file, { ...opts, highWaterMark: 256 * 1024 });
      if (bytesPerSecond) body.pipe(paced(bytesPerSecond)).pipe(res);
      else body.pipe(res);
    };
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
      if (req.headers.range) this.ranges.push(`${path} ${req.headers.range}`);
      const file = join(dir, decodeURIComponent(path));
      stat(file).then(
        (st) => {
          const range = ranges ? /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "") : null;
          if (!range) {
            res.writeHead(200, { "content-length": st.size, ...(ranges ? { "accept-ranges": "bytes" } : {}) });
            send(file, res, { end: st.size - 1 }, path);
            return;
          }
          let start = range[1] ? Number(range[1]) : st.size - Number(range[2]);
          let end = range[1] && range[2] ? Number(range[2]) : st.size - 1;
          start = Math.max(0, start);
          end = Math.min(end, st.size - 1);
          res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${st.size}`, "accept-ranges": "bytes" });
          send(file, res, { start, end }, path);
        },
        () => {
          res.writeHead(404).end("not found");
        },
      );
    });
  }

  /** The next `times` downloads of `path` longer than `afterBytes` send that many bytes and break off. */
  breakOff(path: string, afterBytes: number, times: number): void {
    this.breaks.set(path, { afterBytes, times });
  }

  static async start(dir: string, ranges = true, bytesPerSecond?: number): Promise<FileServer> {
    const s = new FileServer(dir, ranges, bytesPerSecond);
    await new Promise<void>((resolve) => s.server.listen(0, "127.0.0.1", resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => {
      resolve();
    }));
  }
}
