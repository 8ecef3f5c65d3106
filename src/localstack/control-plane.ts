import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { dump as toYaml } from "js-yaml";
import { freePort, ManagedProcess, waitUntil } from "./processes.ts";

const provisionScript = fileURLToPath(new URL("../../scripts/provision-control-plane.sh", import.meta.url));

/**
 * The folder holding kube-apiserver and etcd: KUBEBUILDER_ASSETS, else the machine's cache, else
 * provisioned from Debian's packages. The provisioning script is the one place that decides.
 */
export async function resolveAssets(): Promise<string> {
  const { stdout } = await promisify(execFile)(provisionScript, [], { maxBuffer: 16 * 1024 * 1024 });
  const dir = stdout.trim().split("\n").pop() ?? "";
  if (!existsSync(join(dir, "kube-apiserver")) || !existsSync(join(dir, "etcd"))) {
    throw new Error(`control-plane assets not found in '${dir}'`);
  }
  return dir;
}

/**
 * A real kube-apiserver and etcd on loopback, in the style of controller-runtime's envtest: random
 * free ports, a fresh data directory, token authentication with an admin token (group
 * system:masters), RBAC authorization, and service-account signing keys generated per run.
 */
export class ControlPlane {
  readonly dir: string;
  readonly adminToken = randomBytes(24).toString("hex");
  server = "";
  etcdUrl = "";
  caData = "";
  kubeconfigPath = "";

  private assets = "";
  private etcd?: ManagedProcess;
  private apiServer?: ManagedProcess;
  private apiServerArgs: string[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** `apiServerArgs`: extra kube-apiserver flags, for example `--watch-cache=false`. */
  static async start(opts: { apiServerArgs?: string[] } = {}): Promise<ControlPlane> {
    const cp = new ControlPlane(await mkdtemp(join(tmpdir(), "aio-control-plane-")));
    try {
      cp.assets = await resolveAssets();
      await cp.startEtcd();
      await cp.prepareApiServer(opts.apiServerArgs ?? []);
      await cp.startApiServer();
      await cp.writeKubeconfig();
    } catch (err) {
      await cp.stop();
      throw err;
    }
    return cp;
  }

  /** A client-node configuration that authenticates as the admin. */
  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromFile(this.kubeconfigPath);
    return kc;
  }

  /** GET a path of the API server as the admin; resolves with the status code and body. */
  get(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const url = new URL(path, this.server);
      const req = request(
        url,
        { ca: this.caData, headers: { authorization: `Bearer ${this.adminToken}` }, timeout: 5_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
      req.on("error", reject);
      req.end();
    });
  }

  /** The server's version, as `/version` reports it (for example v1.20.2). */
  async version(): Promise<string> {
    const { status, body } = await this.get("/version");
    if (status !== 200) throw new Error(`/version answered ${status}`);
    return (JSON.parse(body) as { gitVersion: string }).gitVersion;
  }

  /** Process IDs of etcd and kube-apiserver, while they run. */
  pids(): number[] {
    return [this.etcd, this.apiServer].flatMap((p) => (p?.running && p.pid !== undefined ? [p.pid] : []));
  }

  /** Stops the API server; etcd and the data stay. */
  async stopApiServer(): Promise<void> {
    await this.apiServer?.stop();
  }

  /** Starts the API server again, on the same port and etcd, after stopApiServer. */
  async restartApiServer(): Promise<void> {
    if (this.apiServer?.running) await this.apiServer.stop();
    await this.startApiServer();
  }

  /**
   * Compacts etcd's history up to its current revision, so a watch from any older resourceVersion
   * is answered with 410 Gone (when the API server's watch cache is off, the watch goes to etcd).
   */
  async compactEtcd(): Promise<number> {
    const range = await fetch(`${this.etcdUrl}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: Buffer.from("/").toString("base64") }),
    });
    const revision = Number(((await range.json()) as { header: { revision: string } }).header.revision);
    const compact = await fetch(`${this.etcdUrl}/v3/kv/compaction`, {
      method: "POST",
      body: JSON.stringify({ revision, physical: true }),
    });
    if (!compact.ok) throw new Error(`etcd compaction failed: ${compact.status} ${await compact.text()}`);
    return revision;
  }

  /** Stops both servers and removes the data directory. Safe to call more than once. */
  async stop(): Promise<void> {
    await this.apiServer?.stop();
    await this.etcd?.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async startEtcd(): Promise<void> {
    const clientPort = await freePort();
    const peerPort = await freePort();
    this.etcdUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    this.etcd = new ManagedProcess(
      "etcd",
      join(this.assets, "etcd"),
      [
        `--data-dir=${join(this.dir, "etcd")}`,
        `--listen-client-urls=${this.etcdUrl}`,
        `--advertise-client-urls=${this.etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        "--log-level=warn",
      ],
      join(this.dir, "etcd.log"),
      this.dir,
    );
    const etcd = this.etcd;
    await waitUntil(
      "etcd to report healthy",
      async () => {
        if (!etcd.running) throw new Error("etcd exited");
        const res = await fetch(`${this.etcdUrl}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === "true";
      },
      30_000,
      () => etcd.logTail(),
    );
  }

  private async prepareApiServer(extraArgs: string[]): Promise<void> {
    const certDir = join(this.dir, "certs");
    await mkdir(certDir, { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const saKey = join(this.dir, "sa.key");
    const saPub = join(this.dir, "sa.pub");
    await writeFile(saKey, privateKey.export({ type: "pkcs1", format: "pem" }), { mode: 0o600 });
    await writeFile(saPub, publicKey.export({ type: "spki", format: "pem" }));
    const tokens = join(this.dir, "tokens.csv");
    await writeFile(tokens, `${this.adminToken},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const port = await freePort();
    this.server = `https://127.0.0.1:${port}`;
    this.apiServerArgs = [
      `--etcd-servers=${this.etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--secure-port=${port}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      "--service-cluster-ip-range=10.0.0.0/24",
      `--token-auth-file=${tokens}`,
      "--authorization-mode=RBAC",
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      "--api-audiences=https://kubernetes.default.svc.cluster.local",
      "--allow-privileged=true",
      // No controller-manager runs, so nothing would create the token Secrets this plugin waits for.
      "--disable-admission-plugins=ServiceAccount",
      ...extraArgs,
    ];
  }

  private async startApiServer(): Promise<void> {
    const apiServer = new ManagedProcess(
      "kube-apiserver",
      join(this.assets, "kube-apiserver"),
      this.apiServerArgs,
      join(this.dir, "kube-apiserver.log"),
    );
    this.apiServer = apiServer;
    const certFile = join(this.dir, "certs", "apiserver.crt");
    await waitUntil(
      "kube-apiserver to become ready",
      async () => {
        if (!apiServer.running) throw new Error("kube-apiserver exited");
        if (!this.caData) {
          // The server generates a self-signed CA and serving certificate on first start and keeps
          // them in --cert-dir; the file holds the serving certificate followed by that CA.
          if (!existsSync(certFile)) return false;
          this.caData = await readFile(certFile, "utf8");
        }
        const { status } = await this.get("/readyz");
        return status === 200;
      },
      60_000,
      () => `kube-apiserver log (${apiServer.logFile}):\n${apiServer.logTail()}`,
    ).catch((err: unknown) => {
      if (!apiServer.running) {
        throw new Error(`kube-apiserver exited during start-up:\n${apiServer.logTail()}`, { cause: err });
      }
      throw err;
    });
  }

  private async writeKubeconfig(): Promise<void> {
    this.kubeconfigPath = join(this.dir, "kubeconfig");
    const kubeconfig = {
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "envtest",
          cluster: {
            server: this.server,
            "certificate-authority-data": Buffer.from(this.caData).toString("base64"),
          },
        },
      ],
      users: [{ name: "admin", user: { token: this.adminToken } }],
      contexts: [{ name: "envtest", context: { cluster: "envtest", user: "admin", namespace: "default" } }],
      "current-context": "envtest",
    };
    await writeFile(this.kubeconfigPath, toYaml(kubeconfig), { mode: 0o600 });
  }
}
