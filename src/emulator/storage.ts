import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import {
  BlobSASPermissions,
  BlobServiceClient,
  generateBlobSASQueryParameters,
  StorageSharedKeyCredential,
} from "@azure/storage-blob";
import type { TlsMaterial } from "./certs.ts";

/** Azurite's well-known development account (public, documented by Microsoft). */
export const devAccount = {
  name: "devstoreaccount1",
  key: "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
};

/** Azurite pins no SAS version newer than this (TEST-INFRA.md). */
const sasVersion = "2025-11-05";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => {
    resolve();
  }));
  if (!address || typeof address === "string") throw new Error("no free port");
  return address.port;
}

/**
 * Azurite as the emulator's blob service, over HTTPS with the emulator's certificate and with OAuth
 * enabled, data in `dir`. Disks, snapshots and uploaded VHDs live here as page blobs.
 */
export class BlobStore {
  readonly endpoint: string;
  readonly credential = new StorageSharedKeyCredential(devAccount.name, devAccount.key);
  readonly service: BlobServiceClient;
  private readonly child: ChildProcess;
  private exited = false;

  private constructor(endpoint: string, child: ChildProcess) {
    this.endpoint = endpoint;
    this.child = child;
    this.service = new BlobServiceClient(endpoint, this.credential);
    child.once("exit", () => (this.exited = true));
  }

  static async start(dir: string, tls: TlsMaterial, port?: number): Promise<BlobStore> {
    await mkdir(dir, { recursive: true });
    const blobPort = port ?? (await freePort());
    const pkg = createRequire(import.meta.url).resolve("azurite/package.json");
    const main = join(dirname(pkg), "dist", "src", "blob", "main.js");
    const child = spawn(
      process.execPath,
      [
        main,
        "--loose",
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
        "--location", dir,
        "--blobHost", "127.0.0.1",
        "--blobPort", String(blobPort),
        "--cert", tls.certFile,
        "--key", tls.keyFile,
        "--oauth", "basic",
      ],
      {
        stdio: ["ignore", "ignore", "pipe"],
        // Azurite fetches copy sources over HTTPS from itself: it must trust the emulator's CA.
        env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.caFile },
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const store = new BlobStore(`https://127.0.0.1:${blobPort}/${devAccount.name}`, child);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (store.exited) throw new Error(`Azurite exited during start-up: ${stderr}`);
      try {
        await store.service.getProperties();
        return store;
      } catch (err) {
        if (Date.now() > deadline) {
          await store.stop();
          throw new Error(`Azurite did not answer within 30 s: ${(err as Error).message} ${stderr}`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  stop(): Promise<void> {
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      this.child.once("exit", () => {
        resolve();
      });
      this.child.kill("SIGTERM");
    });
  }

  /** A service SAS URL for one blob, signed with the account key. */
  sasUrl(container: string, blob: string, permissions: string, expiresInSeconds: number): string {
    const now = Date.now();
    const sas = generateBlobSASQueryParameters(
      {
        containerName: container,
        blobName: blob,
        permissions: BlobSASPermissions.parse(permissions),
        startsOn: new Date(now - 5 * 60_000),
        expiresOn: new Date(now + expiresInSeconds * 1000),
        version: sasVersion,
      },
      this.credential,
    );
    return `${this.endpoint}/${container}/${encodeURIComponent(blob)}?${sas.toString()}`;
  }

  async createPageBlob(container: string, blob: string, size: number): Promise<void> {
    const c = this.service.getContainerClient(container);
    await c.createIfNotExists();
    await c.getPageBlobClient(blob).create(size);
  }

  /** A page blob of `virtualSize` + 512 bytes holding a fixed-VHD footer and no data (reads as zeros). */
  async createVhd(container: string, blob: string, virtualSize: number): Promise<void> {
    await this.createPageBlob(container, blob, virtualSize + 512);
    const page = this.service.getContainerClient(container).getPageBlobClient(blob);
    await page.uploadPages(fixedVhdFooter(virtualSize), virtualSize, 512);
  }

  async deleteBlob(container: string, blob: string): Promise<void> {
    await this.service.getContainerClient(container).getBlobClient(blob).deleteIfExists();
  }

  /** Size and last 512 bytes of a blob, or undefined when it does not exist. */
  async tail(container: string, blob: string): Promise<{ size: number; footer: Buffer; blobType: string } | undefined> {
    const client = this.service.getContainerClient(container).getBlobClient(blob);
    try {
      const props = await client.getProperties();
      const size = props.contentLength ?? 0;
      const footer = size >= 512 ? await client.downloadToBuffer(size - 512, 512) : Buffer.alloc(0);
      return { size, footer, blobType: props.blobType ?? "" };
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined;
      throw err;
    }
  }

  /** Copies a blob within Azurite (server side; completes at once). */
  async copy(fromContainer: string, fromBlob: string, toContainer: string, toBlob: string): Promise<void> {
    const to = this.service.getContainerClient(toContainer);
    await to.createIfNotExists();
    const source = this.sasUrl(fromContainer, fromBlob, "r", 3600);
    const poller = await to.getBlobClient(toBlob).beginCopyFromURL(source);
    await poller.pollUntilDone();
  }

  /** Container and blob name of a blob URL on this store, or undefined for a URL elsewhere. */
  locate(url: string): { container: string; blob: string } | undefined {
    const prefix = `${this.endpoint}/`;
    const bare = url.split("?")[0] ?? "";
    if (!bare.startsWith(prefix)) return undefined;
    const rest = bare.slice(prefix.length);
    const i = rest.indexOf("/");
    if (i <= 0) return undefined;
    return { container: rest.slice(0, i), blob: decodeURIComponent(rest.slice(i + 1)) };
  }
}

/** What a VHD footer says, as far as Azure cares. */
export interface VhdFooterInfo {
  valid: boolean;
  diskType: number;
  currentSize: number;
  problem?: string;
}

/** Reads the 512-byte footer at the end of a VHD: cookie, checksum, disk type and current size. */
export function readVhdFooter(footer: Buffer): VhdFooterInfo {
  if (footer.length !== 512 || footer.toString("latin1", 0, 8) !== "conectix") {
    return { valid: false, diskType: 0, currentSize: 0, problem: "it has no VHD footer" };
  }
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += footer[i] ?? 0;
  const checksum = ~sum >>> 0;
  const diskType = footer.readUInt32BE(60);
  const currentSize = Number(footer.readBigUInt64BE(48));
  if (checksum !== footer.readUInt32BE(64)) return { valid: false, diskType, currentSize, problem: "its footer checksum is wrong" };
  return { valid: true, diskType, currentSize };
}

/**
 * A fixed-VHD footer for a disk of `size` bytes (CHS geometry per the VHD specification). The operator
 * has its own (src/vhd): the emulator imports nothing from the operator, so that it stays an independent
 * stand-in for Azure rather than agreeing with the operator by construction.
 */
export function fixedVhdFooter(size: number): Buffer {
  const f = Buffer.alloc(512);
  f.write("conectix", 0, "latin1");
  f.writeUInt32BE(2, 8);
  f.writeUInt32BE(0x00010000, 12);
  f.writeBigUInt64BE(0xffffffffffffffffn, 16);
  f.writeUInt32BE(Math.floor((Date.now() - Date.UTC(2000, 0, 1)) / 1000), 24);
  f.write("aemu", 28, "latin1");
  f.writeUInt32BE(0x00010000, 32);
  f.write("Wi2k", 36, "latin1");
  f.writeBigUInt64BE(BigInt(size), 40);
  f.writeBigUInt64BE(BigInt(size), 48);
  let total = Math.floor(size / 512);
  if (total > 65535 * 16 * 255) total = 65535 * 16 * 255;
  let spt: number;
  let heads: number;
  let cth: number;
  if (total >= 65535 * 16 * 63) {
    spt = 255;
    heads = 16;
    cth = Math.floor(total / spt);
  } else {
    spt = 17;
    cth = Math.floor(total / spt);
    heads = Math.max(4, Math.floor((cth + 1023) / 1024));
    if (cth >= heads * 1024 || heads > 16) {
      spt = 31;
      heads = 16;
      cth = Math.floor(total / spt);
    }
    if (cth >= heads * 1024) {
      spt = 63;
      heads = 16;
      cth = Math.floor(total / spt);
    }
  }
  f.writeUInt16BE(Math.floor(cth / heads), 56);
  f.writeUInt8(heads, 58);
  f.writeUInt8(spt, 59);
  f.writeUInt32BE(2, 60);
  for (let i = 68; i < 84; i++) f[i] = Math.floor(Math.random() * 256);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += f[i] ?? 0;
  f.writeUInt32BE(~sum >>> 0, 64);
  return f;
}
