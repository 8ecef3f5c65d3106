import { execFile, spawn } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import { freePort } from "../src/localstack/processes.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const account = { name: "devstoreaccount1", key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==" };
const uploader = fileURLToPath(new URL("./upload-process.ts", import.meta.url));

export interface UploadRun {
  tool: "operator" | "azcopy";
  image: "dense" | "sparse";
  sizeMiB: number;
  seconds: number;
  mibPerSecond: number;
  cpuSeconds?: number;
  maxRssMiB?: number;
  bytesSkippedZero?: number;
  verified?: boolean;
}

/** A fixed VHD made by qemu-img from `sizeMiB` of data: all random (dense) or 10% random in 4 MiB blocks (sparse). */
async function makeImage(dir: string, kind: "dense" | "sparse", sizeMiB: number): Promise<string> {
  const raw = join(dir, `${kind}.raw`);
  const fh = await open(raw, "w");
  const block = Buffer.alloc(4 * MiB);
  for (let i = 0; i < sizeMiB / 4; i++) {
    if (kind === "dense" || i % 10 === 3) {
      randomFillSync(block);
      await fh.write(block, 0, block.length, i * 4 * MiB);
    }
  }
  await fh.truncate(sizeMiB * MiB);
  await fh.close();
  const vhd = join(dir, `${kind}.vhd`);
  await run("qemu-img", ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, vhd]);
  await rm(raw);
  return vhd;
}

/** A fresh Azurite over HTTP (a long-lived one slows down), in memory: the disk of a small VM would otherwise be measured. */
async function startAzurite(): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const main = join(dirname(createRequire(import.meta.url).resolve("azurite/package.json")), "dist", "src", "blob", "main.js");
  const child = spawn(process.execPath, [main, "--loose", "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--inMemoryPersistence", "--blobHost", "127.0.0.1", "--blobPort", String(port)], { stdio: "ignore" });
  let exited = false;
  child.once("exit", () => (exited = true));
  const endpoint = `http://127.0.0.1:${port}/${account.name}`;
  for (let i = 0; ; i++) {
    if (exited) throw new Error("Azurite exited during start-up");
    const ok = await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false);
    if (ok) break;
    if (i > 100) throw new Error("Azurite did not start within 10 s");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    stop: async () => {
      if (exited) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

function blobSas(endpoint: string, container: string, blob: string): string {
  const sas = generateBlobSASQueryParameters(
    { containerName: container, blobName: blob, permissions: BlobSASPermissions.parse("rcw"), expiresOn: new Date(Date.now() + 3600_000), version: "2025-11-05" },
    new StorageSharedKeyCredential(account.name, account.key),
  );
  return `${endpoint}/${container}/${blob}?${sas.toString()}`;
}

/** Serves a file over HTTP with Range support: the operator imports from a URL. */
async function serve(file: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const { createServer } = await import("node:http");
  const { createReadStream, statSync } = await import("node:fs");
  const size = statSync(file).size;
  const server = createServer((req, res) => {
    const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    if (!m) {
      res.writeHead(200, { "content-length": size });
      createReadStream(file, { highWaterMark: 4 * MiB }).pipe(res);
      return;
    }
    const start = m[1] ? Number(m[1]) : size - Number(m[2]);
    const end = m[1] && m[2] ? Number(m[2]) : size - 1;
    res.writeHead(206, { "content-length": end - start + 1, "content-range": `bytes ${start}-${end}/${size}` });
    createReadStream(file, { start, end, highWaterMark: 4 * MiB }).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${address.port}/image.vhd`,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => {
        r();
      });
    }),
  };
}

async function sha256File(file: string): Promise<string> {
  const { createReadStream } = await import("node:fs");
  const h = createHash("sha256");
  for await (const c of createReadStream(file, { highWaterMark: 4 * MiB })) h.update(c as Buffer);
  return h.digest("hex");
}

export async function runOperatorUpload(image: string, kind: "dense" | "sparse", sizeMiB: number, workDir: string, verify: boolean): Promise<UploadRun> {
  const azurite = await startAzurite();
  const source = await serve(image);
  try {
    const service = new BlobServiceClient(azurite.endpoint, new StorageSharedKeyCredential(account.name, account.key));
    await service.getContainerClient("bench").create();
    const child = spawn(process.execPath, [uploader, source.url, blobSas(azurite.endpoint, "bench", "image.vhd"), process.env.BENCH_CONCURRENCY ?? "8"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    const [code] = (await once(child, "exit")) as [number];
    if (code !== 0) throw new Error(`the upload process failed (${code})`);
    const r = JSON.parse(out) as { seconds: number; cpuSeconds: number; maxRssMiB: number; bytesSkippedZero: number };
    let verified: boolean | undefined;
    if (verify) {
      const downloaded = join(workDir, "downloaded.vhd");
      await service.getContainerClient("bench").getPageBlobClient("image.vhd").downloadToFile(downloaded);
      const fh = await open(downloaded, "r+");
      // The footer is ours (new timestamp and id); compare the disk data only.
      const size = (await fh.stat()).size;
      await fh.close();
      const { truncate } = await import("node:fs/promises");
      const data = join(workDir, "source-data");
      const { copyFile } = await import("node:fs/promises");
      await copyFile(image, data);
      await truncate(data, size - 512);
      await truncate(downloaded, size - 512);
      verified = (await sha256File(downloaded)) === (await sha256File(data));
      await rm(downloaded);
      await rm(data);
    }
    return { tool: "operator", image: kind, sizeMiB, seconds: round(r.seconds), mibPerSecond: round(sizeMiB / r.seconds), cpuSeconds: round(r.cpuSeconds), maxRssMiB: round(r.maxRssMiB), bytesSkippedZero: r.bytesSkippedZero, ...(verified === undefined ? {} : { verified }) };
  } finally {
    await source.stop();
    await azurite.stop();
  }
}

/** azcopy from its npm package, kept in the user's cache (not a project dependency); it needs libsecret. */
async function azcopyBinary(): Promise<string> {
  const hasLibsecret = await run("dpkg", ["-s", "libsecret-1-0"]).then(() => true, () => false);
  if (!hasLibsecret) {
    process.stderr.write("installing Debian's libsecret-1-0, which azcopy needs\n");
    await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "libsecret-1-0"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  }
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "azure-image-operator", "azcopy");
  const bin = join(dir, "azcopy");
  if (existsSync(bin)) return bin;
  await mkdir(dir, { recursive: true });
  const { stdout } = await run("npm", ["pack", "@azure-tools/azcopy-linux@10.32.2", "--pack-destination", dir], { cwd: dir });
  await run("tar", ["xzf", join(dir, stdout.trim().split("\n").pop() ?? ""), "-C", dir]);
  await run("cp", [join(dir, "package", "dist", "bin", "azcopy_linux_amd64"), bin]);
  await chmod(bin, 0o755);
  return bin;
}

export async function runAzcopyUpload(image: string, kind: "dense" | "sparse", sizeMiB: number, workDir: string): Promise<UploadRun> {
  const bin = await azcopyBinary();
  const azurite = await startAzurite();
  try {
    const service = new BlobServiceClient(azurite.endpoint, new StorageSharedKeyCredential(account.name, account.key));
    await service.getContainerClient("bench").create();
    const started = performance.now();
    await run(bin, ["copy", image, blobSas(azurite.endpoint, "bench", "image.vhd"), "--blob-type", "PageBlob", "--from-to", "LocalBlob", "--log-level", "ERROR"], {
      env: { ...process.env, AZCOPY_LOG_LOCATION: workDir, AZCOPY_JOB_PLAN_LOCATION: workDir, AZCOPY_CONCURRENCY_VALUE: "8" },
      maxBuffer: 16 * MiB,
    });
    const seconds = (performance.now() - started) / 1000;
    return { tool: "azcopy", image: kind, sizeMiB, seconds: round(seconds), mibPerSecond: round(sizeMiB / seconds) };
  } finally {
    await azurite.stop();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Both images, the operator's import, and (optionally) azcopy on a fresh Azurite each. */
export async function runUploadBenchmark(sizeMiB: number, withAzcopy: boolean, verify = true): Promise<UploadRun[]> {
  const work = await mkdtemp(join(tmpdir(), "aio-bench-upload-"));
  try {
    const results: UploadRun[] = [];
    for (const kind of ["dense", "sparse"] as const) {
      const image = await makeImage(work, kind, sizeMiB);
      results.push(await runOperatorUpload(image, kind, sizeMiB, work, verify));
      if (withAzcopy) results.push(await runAzcopyUpload(image, kind, sizeMiB, work));
      await rm(image);
    }
    return results;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ""}`) {
  const sizeMiB = Number(process.argv[2] ?? 1024);
  const withAzcopy = process.argv[3] !== "--no-azcopy";
  for (const r of await runUploadBenchmark(sizeMiB, withAzcopy)) process.stdout.write(JSON.stringify(r) + "\n");
}
