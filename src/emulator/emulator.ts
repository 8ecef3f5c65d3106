import { randomUUID } from "node:crypto";
import { appendFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ArmError, type ArmErrorBody } from "./arm.ts";
import { ensureTlsMaterial, trustCa, type TlsMaterial } from "./certs.ts";
import { jsonBody, requestIds, Router, type ArmResponse } from "./http.ts";
import { Identity, type ClientRegistration } from "./identity.ts";
import {
  defaultCatalog,
  defaultGalleryCatalog,
  type CatalogImage,
  type GalleryCatalogImage,
} from "./providers/marketplace.ts";
import { BlobStore } from "./storage.ts";
import { Store, type Completion, type Operation } from "./store.ts";
import { Throttle, type BucketConfig, type RequestClass } from "./throttle.ts";

export interface EmulatorOptions {
  /** Keep resources, operations, certificates and blobs here across restarts; absent: a temp folder removed on stop. */
  stateDir?: string;
  port?: number;
  blobPort?: number;
  /** How long long-running operations take (default 2000 ms; 0 completes them at the first poll). */
  operationDurationMs?: number;
  /** Retry-After seconds on LRO answers (default 1; 0 lets clients use their own interval). */
  retryAfterSeconds?: number;
  /** How long a gallery image version takes to replicate to each region (default 3000 ms). */
  replicationDurationMs?: number;
  throttling?: boolean;
  /** Append every ARM request (method, url, body) as a JSON line to this file. */
  recordFile?: string;
  /** Skip Azurite (ARM and tokens only). */
  withoutBlobs?: boolean;
  clients?: ClientRegistration[];
}

/** An injected fault: the next `count` calls (or a `fraction` of calls) matching it fail. */
export interface Fault {
  /** RBAC-style operation name (Microsoft.Compute/images/write) or a regular expression over it. */
  operation: string;
  /** HTTP status and ARM error code the call fails with, unless `lroFails`. */
  status?: number;
  code?: string;
  message?: string;
  /** Fail this many times, then stop (default: until removed). */
  count?: number;
  /** Fail this fraction (0..1) of matching calls. */
  fraction?: number;
  /** Accept the call, then end its long-running operation Failed with `code`/`message`. */
  lroFails?: boolean;
  /** Add this much latency to matching calls, before they take effect. */
  latencyMs?: number;
  /** Delay the answer this long after the call took effect (a client that dies meanwhile never hears it). */
  answerDelayMs?: number;
}

export interface LroStart {
  kind: Operation["kind"];
  location: string;
  subscription: string;
  resourceId?: string;
  completion?: Completion;
  result?: unknown;
  /** Which headers the initial answer carries: CRP (Azure-AsyncOperation), DiskRP/POST (both + Location), gallery (capsOperations). */
  style: "async" | "location" | "gallery" | "disk";
  apiVersion: string;
  /** Override the configured duration. */
  durationMs?: number;
  failWith?: ArmErrorBody;
}

/**
 * The Azure emulator: an HTTPS server that answers ARM (Microsoft.Compute, resource groups,
 * Marketplace terms) and Entra ID token requests, with Azurite as its blob service. Providers
 * register their routes on `router`; the request pipeline applies api-version checks, authentication,
 * throttling, fault injection, counters and recording to all of them.
 */
export class Emulator {
  readonly router = new Router();
  readonly identity: Identity;
  readonly store: Store;
  readonly throttle: Throttle;
  readonly opts: Required<Pick<EmulatorOptions, "operationDurationMs" | "retryAfterSeconds" | "replicationDurationMs">> & EmulatorOptions;
  readonly counters = new Map<string, number>();
  readonly faults: Array<Fault & { id: string; hits: number }> = [];
  /** Marketplace images and shared/community gallery versions the emulator offers. */
  readonly catalog: CatalogImage[] = [...defaultCatalog];
  readonly galleryCatalog: GalleryCatalogImage[] = [...defaultGalleryCatalog];
  blobs: BlobStore | undefined;
  tls!: TlsMaterial;
  baseUrl = "";
  private server: Server | undefined;
  private readonly stateDir: string;
  private readonly ownsStateDir: boolean;

  private constructor(opts: EmulatorOptions, stateDir: string, ownsStateDir: boolean) {
    this.opts = { operationDurationMs: 2000, retryAfterSeconds: 1, replicationDurationMs: 3000, ...opts };
    this.stateDir = stateDir;
    this.ownsStateDir = ownsStateDir;
    this.identity = new Identity(stateDir);
    this.store = new Store(stateDir);
    this.throttle = new Throttle(opts.throttling ?? true);
    for (const c of opts.clients ?? []) this.identity.register(c);
  }

  static async create(opts: EmulatorOptions = {}): Promise<Emulator> {
    const ownsStateDir = !opts.stateDir;
    const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), "azure-emulator-")));
    await mkdir(stateDir, { recursive: true });
    return new Emulator(opts, stateDir, ownsStateDir);
  }

  /** ARM audiences tokens are accepted for: public ARM and this emulator's own URL. */
  get armAudiences(): string[] {
    return ["https://management.azure.com", "https://management.core.windows.net", this.baseUrl];
  }

  async start(): Promise<void> {
    this.tls = await ensureTlsMaterial(join(this.stateDir, "tls"));
    trustCa(this.tls.ca);
    if (!this.opts.withoutBlobs) this.blobs = await BlobStore.start(join(this.stateDir, "blobs"), this.tls, this.opts.blobPort);
    const server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => {
      void this.handle(req, res);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port ?? 0, "127.0.0.1", resolve);
    });
    this.server = server;
    this.baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    if (this.server) {
      const server = this.server;
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
    }
    await this.blobs?.stop();
    if (this.ownsStateDir) await rm(this.stateDir, { recursive: true, force: true });
  }

  count(key: string): void {
    this.counters.set(key, (this.counters.get(key) ?? 0) + 1);
  }

  /** Starts a long-running operation and returns the initial answer's headers. */
  startLro(lro: LroStart): { op: Operation; headers: Record<string, string> } {
    const op = this.store.startOperation({
      subscription: lro.subscription,
      location: lro.location,
      collection: lro.style === "gallery" ? "capsOperations" : lro.style === "disk" ? "DiskOperations" : "operations",
      kind: lro.kind,
      doneAtMs: Date.now() + (lro.durationMs ?? this.opts.operationDurationMs),
      ...(lro.resourceId ? { resourceId: lro.resourceId } : {}),
      ...(lro.completion ? { completion: lro.completion } : {}),
      ...(lro.result !== undefined ? { result: lro.result } : {}),
      ...(lro.failWith ? { failWith: lro.failWith } : {}),
    });
    const status = this.operationUrl(op, lro.apiVersion, false);
    const headers: Record<string, string> = { "azure-asyncoperation": status };
    if (this.opts.retryAfterSeconds > 0) headers["retry-after"] = String(this.opts.retryAfterSeconds);
    if (lro.style === "location" || lro.style === "disk" || lro.kind === "delete" || lro.kind === "action") {
      headers.location = this.operationUrl(op, lro.apiVersion, true);
    }
    return { op, headers };
  }

  operationUrl(op: Operation, apiVersion: string, monitor: boolean): string {
    return (
      `${this.baseUrl}/subscriptions/${op.subscription}/providers/Microsoft.Compute/locations/${op.location}/${op.collection}/${op.id}` +
      `?p=${op.id}${monitor ? "&monitor=true" : ""}&api-version=${apiVersion}`
    );
  }

  addFault(fault: Fault): string {
    const id = randomUUID();
    this.faults.push({ ...fault, id, hits: 0 });
    return id;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  setThrottleLimits(limits: Partial<Record<RequestClass, BucketConfig>>, enabled?: boolean): void {
    Object.assign(this.throttle.limits, limits);
    if (enabled !== undefined) this.throttle.enabled = enabled;
    this.throttle.reset();
  }

  /** The first fault that applies to this call, consuming one of its uses. */
  private takeFault(operation: string): Fault | undefined {
    for (const f of this.faults) {
      const matches = f.operation === operation || new RegExp(`^${f.operation}$`, "i").test(operation);
      if (!matches) continue;
      if (f.count !== undefined && f.hits >= f.count) continue;
      if (f.fraction !== undefined && Math.random() >= f.fraction) continue;
      f.hits++;
      return f;
    }
    return undefined;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.baseUrl);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks);
    const method = req.method ?? "GET";
    let answer: ArmResponse;
    let operation = "unknown";
    try {
      const identityAnswer = this.identityRoute(method, url, raw);
      if (identityAnswer) {
        this.send(res, identityAnswer);
        return;
      }
      const matched = this.router.match(method, url.pathname);
      if (!matched) {
        throw this.router.pathKnown(url.pathname)
          ? new ArmError(405, "MethodNotAllowed", `The requested resource does not support http method '${method}'.`)
          : new ArmError(404, "InvalidResourceType", `The resource type could not be found in the namespace for path '${url.pathname}'.`);
      }
      const { route, params } = matched;
      operation = route.operation;
      const isAdmin = url.pathname.startsWith("/admin/");
      const apiVersion = url.searchParams.get("api-version") ?? "";
      let extraHeaders: Record<string, string> = {};
      let answerDelayMs = 0;
      if (!isAdmin) {
        if (!apiVersion) {
          throw new ArmError(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.");
        }
        const claims = this.identity.authenticate(req.headers.authorization, this.armAudiences);
        if (this.opts.recordFile) {
          await appendFile(this.opts.recordFile, JSON.stringify({ method, url: url.pathname + url.search, body: raw.length ? jsonBody(raw, req.headers["content-type"]) : undefined }) + "\n");
        }
        extraHeaders = this.throttle.take(params.subscriptionId ?? "", claims.oid, route.cls);
        const fault = this.takeFault(operation);
        if (fault?.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
        answerDelayMs = fault?.answerDelayMs ?? 0;
        if (fault && !fault.lroFails && (fault.status ?? 0) >= 400) {
          throw new ArmError(fault.status ?? 500, fault.code ?? "InternalServerError", fault.message ?? "An injected failure.");
        }
        if (fault?.lroFails) {
          params.__lroFailure = JSON.stringify({
            code: fault.code ?? "InternalExecutionError",
            message: fault.message ?? "An internal execution error occurred.",
          });
        }
      }
      answer = await route.handler({
        method,
        url,
        params,
        body: jsonBody(raw, req.headers["content-type"]),
        headers: req.headers,
        apiVersion,
      });
      answer = { ...answer, headers: { ...extraHeaders, ...answer.headers } };
      if (answerDelayMs > 0) await new Promise((r) => setTimeout(r, answerDelayMs));
    } catch (err) {
      if (err instanceof ArmError) {
        answer = { status: err.status, body: err.body(), headers: err.headers };
      } else {
        const message = err instanceof Error ? err.message : String(err);
        answer = { status: 500, body: { error: { code: "InternalServerError", message } } };
      }
    }
    this.count(`${operation} ${answer.status}`);
    this.send(res, answer);
  }

  /** Entra ID routes: OpenID configuration, keys, token. */
  private identityRoute(method: string, url: URL, raw: Buffer): ArmResponse | undefined {
    const m = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|discovery\/v2\.0\/keys|oauth2\/v2\.0\/token)$/.exec(url.pathname);
    if (!m) return undefined;
    const tenant = m[1] ?? "";
    const what = m[2] ?? "";
    if (what.startsWith("v2.0") && method === "GET") return { status: 200, body: this.identity.openidConfiguration(this.baseUrl, tenant) };
    if (what.startsWith("discovery") && method === "GET") return { status: 200, body: this.identity.jwks() };
    if (what.startsWith("oauth2") && method === "POST") {
      const answer = this.identity.token(tenant, new URLSearchParams(raw.toString("utf8")));
      this.count(`token ${answer.status}`);
      return answer;
    }
    return { status: 405, body: { error: "invalid_request" } };
  }

  private send(res: ServerResponse, answer: ArmResponse): void {
    const headers: Record<string, string> = { ...requestIds(), ...answer.headers };
    let payload: string | undefined;
    if (answer.body !== undefined) {
      payload = JSON.stringify(answer.body);
      headers["content-type"] = "application/json; charset=utf-8";
    }
    res.writeHead(answer.status, headers);
    res.end(payload);
  }
}

/** An LRO failure injected by a fault, passed to the handler through its params. */
export function injectedLroFailure(params: Record<string, string>): ArmErrorBody | undefined {
  const raw = params.__lroFailure;
  return raw ? (JSON.parse(raw) as ArmErrorBody) : undefined;
}
