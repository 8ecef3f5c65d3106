import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

/**
 * Serves the files of a folder over HTTP, as an image store would: with Range support (one range), or
 * without it when `ranges` is false. Counts requests per path.
 */
export class FileServer {
  readonly requests = new Map<string, number>();
  private readonly server: Server;
  url = "";

  private constructor(dir: string, ranges: boolean) {
    this.server = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://x").pathname;
      this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
      const file = join(dir, decodeURIComponent(path));
      stat(file).then(
        (st) => {
          const range = ranges ? /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "") : null;
          if (!range) {
            res.writeHead(200, { "content-length": st.size, ...(ranges ? { "accept-ranges": "bytes" } : {}) });
            createReadStream(file).pipe(res);
            return;
          }
          let start = range[1] ? Number(range[1]) : st.size - Number(range[2]);
          let end = range[1] && range[2] ? Number(range[2]) : st.size - 1;
          start = Math.max(0, start);
          end = Math.min(end, st.size - 1);
          res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${st.size}`, "accept-ranges": "bytes" });
          createReadStream(file, { start, end }).pipe(res);
        },
        () => {
          res.writeHead(404).end("not found");
        },
      );
    });
  }

  static async start(dir: string, ranges = true): Promise<FileServer> {
    const s = new FileServer(dir, ranges);
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
