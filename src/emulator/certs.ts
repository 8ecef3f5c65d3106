import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { promisify } from "node:util";

export interface TlsMaterial {
  /** PEM of the CA clients must trust. */
  ca: string;
  caFile: string;
  cert: string;
  certFile: string;
  key: string;
  keyFile: string;
}

const run = promisify(execFile);

/**
 * Adds `caPem` to the CAs this process trusts by default, next to the system's. The emulator calls it
 * for itself (its ARM side talks to its Azurite over HTTPS); a process embedding the emulator trusts it
 * along the way.
 */
export function trustCa(caPem: string): void {
  const current = getCACertificates("default");
  if (!current.includes(caPem)) setDefaultCACertificates([...current, caPem]);
}

/**
 * A private CA and a server certificate for localhost/127.0.0.1 signed by it, made with openssl and
 * kept in `dir`: a restarted emulator with the same state folder serves the same certificate, so
 * clients configured with the CA keep working.
 */
export async function ensureTlsMaterial(dir: string): Promise<TlsMaterial> {
  await mkdir(dir, { recursive: true });
  const caFile = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const certFile = join(dir, "server.pem");
  const keyFile = join(dir, "server.key");
  if (!existsSync(caFile) || !existsSync(certFile) || !existsSync(keyFile)) {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await openssl([
      "req", "-x509", ...ec, "-keyout", caKey, "-out", caFile, "-days", "3650",
      "-subj", "/CN=azure-image-operator emulator CA",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    const csr = join(dir, "server.csr");
    await openssl(["req", ...ec, "-keyout", keyFile, "-out", csr, "-subj", "/CN=localhost"]);
    const ext = join(dir, "server.ext");
    await writeFile(
      ext,
      "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    await openssl([
      "x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial",
      "-out", certFile, "-days", "825", "-extfile", ext,
    ]);
  }
  const [ca, cert, key] = await Promise.all([caFile, certFile, keyFile].map((f) => readFile(f, "utf8")));
  return { ca: ca ?? "", caFile, cert: cert ?? "", certFile, key: key ?? "", keyFile };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: string };
    if (e.code === "ENOENT") throw new Error("the emulator needs the openssl command to make its TLS certificates", { cause: err });
    throw new Error(`openssl ${args[0] ?? ""} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}
