import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { createInterface } from "node:readline";
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";

/** A Kubernetes `Status` object, as the API server returns with errors. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: Array<{ message?: string; field?: string }> };
}

/** An error answer from the API server: the HTTP status plus the server's `Status` reason and message. */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly retryAfterSeconds: number | undefined;
  /** The server's field-level reasons (validation failures carry them). */
  readonly causes: string[];

  constructor(code: number, status: KubeStatus | undefined, what: string, retryAfterSeconds?: number) {
    const causes = (status?.details?.causes ?? []).map((c) => c.message ?? "").filter(Boolean);
    const detail = causes.length > 0 ? ` (${causes.join("; ")})` : "";
    super(`${what}: ${code} ${status?.reason ?? ""}: ${status?.message ?? "(no message)"}${detail}`);
    this.name = "KubeApiError";
    this.code = code;
    this.reason = status?.reason ?? "";
    this.retryAfterSeconds = retryAfterSeconds;
    this.causes = causes;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof KubeApiError && err.code === 409;
export const isGone = (err: unknown): boolean => err instanceof KubeApiError && err.code === 410;
/**
 * A JSON Patch whose `test` failed: the object moved on since it was read, like a conflict. The API
 * server answers 422 Invalid with a generic message and, unlike a schema violation, no causes.
 */
export const isPatchTestFailed = (err: unknown): boolean =>
  err instanceof KubeApiError && err.code === 422 && err.causes.length === 0;

export const MERGE_PATCH = "application/merge-patch+json";
export const JSON_PATCH = "application/json-patch+json";

export interface RequestInit {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export interface ObjectList<T> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

/**
 * A small JSON client for the Kubernetes API on one keep-alive agent.
 *
 * client-node supplies the configuration and the authentication (tokens, client certificates, exec
 * and OIDC plugins, in-cluster service account); its generated APIs open a new connection pool per
 * call and its watch has a fixed inactivity timeout, so the controller runtime does its own transport:
 * every request and watch shares one agent, and watch timing is the reflector's to choose.
 */
export class KubeClient {
  readonly server: URL;
  private readonly kc: KubeConfig;
  private readonly agent: HttpAgent;

  constructor(kc: KubeConfig, opts: { maxSockets?: number } = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster");
    this.kc = kc;
    this.server = new URL(cluster.server);
    const agentOpts = { keepAlive: true, maxSockets: opts.maxSockets ?? 32, keepAliveMsecs: 30_000 };
    this.agent = this.server.protocol === "https:" ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
  }

  /** Closes idle connections; call when the process is done with the client. */
  close(): void {
    this.agent.destroy();
  }

  async request<T>(method: string, path: string, init: RequestInit = {}): Promise<T> {
    const res = await this.send(method, path, init);
    const text = await readBody(res);
    if ((res.statusCode ?? 0) >= 300) throw apiError(res, text, `${method} ${path}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, init?: RequestInit): Promise<T> {
    return this.request<T>("GET", path, init);
  }

  create<T>(path: string, body: T, init: RequestInit = {}): Promise<T> {
    return this.request<T>("POST", path, { ...init, body });
  }

  replace<T>(path: string, body: T, init: RequestInit = {}): Promise<T> {
    return this.request<T>("PUT", path, { ...init, body });
  }

  patch<T>(path: string, body: unknown, contentType: string, init: RequestInit = {}): Promise<T> {
    return this.request<T>("PATCH", path, { ...init, body, contentType });
  }

  delete<T>(path: string, init?: RequestInit): Promise<T> {
    return this.request<T>("DELETE", path, init);
  }

  /**
   * Opens a watch and calls `onEvent` for each event until the server ends the stream (resolves),
   * the signal aborts it (resolves) or the connection fails (rejects). A non-200 answer rejects with a
   * KubeApiError; an ERROR event is passed to `onEvent` like any other.
   */
  async watch<T>(
    path: string,
    query: RequestInit["query"],
    onEvent: (event: WatchEvent<T>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const res = await this.send("GET", path, { query: { ...query, watch: true }, signal });
    if (res.statusCode !== 200) {
      throw apiError(res, await readBody(res), `watch ${path}`);
    }
    const lines = createInterface({ input: res, crlfDelay: Infinity });
    try {
      for await (const line of lines) {
        if (line.trim() === "") continue;
        onEvent(JSON.parse(line) as WatchEvent<T>);
      }
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    } finally {
      // A watch left early (an ERROR event, a handler that threw) must not keep its connection.
      if (!res.complete) res.destroy();
    }
    if (!res.complete && !signal.aborted) throw new Error(`watch ${path}: connection closed mid-stream`);
  }

  private async send(method: string, path: string, init: RequestInit): Promise<IncomingMessage> {
    const url = new URL(this.server.pathname.replace(/\/$/, "") + path, this.server);
    for (const [k, v] of Object.entries(init.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const opts: RequestOptions & { ca?: unknown; cert?: unknown; key?: unknown; rejectUnauthorized?: boolean } = {
      headers: {},
    };
    // Resolves credentials (and refreshes expiring ones) for every request; the agent it would set is
    // replaced by the shared keep-alive agent.
    await this.kc.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = { accept: "application/json" };
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v !== undefined) headers[k.toLowerCase()] = String(v);
    }
    let payload: Buffer | undefined;
    if (init.body !== undefined) {
      payload = Buffer.from(JSON.stringify(init.body));
      headers["content-type"] = init.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    const requestFn = url.protocol === "https:" ? httpsRequest : httpRequest;
    const tls = url.protocol === "https:" ? { ca: opts.ca, cert: opts.cert, key: opts.key } : {};
    return new Promise((resolve, reject) => {
      const req = requestFn(
        url,
        {
          method,
          headers,
          agent: this.agent,
          ...tls,
          ...(opts.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: opts.rejectUnauthorized }),
          ...(init.signal ? { signal: init.signal } : {}),
        } as RequestOptions,
        resolve,
      );
      req.on("error", reject);
      if (init.timeoutMs) {
        req.setTimeout(init.timeoutMs, () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
      }
      req.end(payload);
    });
  }
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function apiError(res: IncomingMessage, text: string, what: string): KubeApiError {
  let status: KubeStatus | undefined;
  try {
    status = JSON.parse(text) as KubeStatus;
  } catch {
    status = { message: text.slice(0, 200) };
  }
  const retryAfter = Number(res.headers["retry-after"]);
  return new KubeApiError(res.statusCode ?? 0, status, what, Number.isFinite(retryAfter) ? retryAfter : undefined);
}

/** Where a kind of object lives in the API. */
export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  /** Restrict to one namespace; empty or absent means all namespaces (or a cluster-scoped kind). */
  namespace?: string;
}

/** The collection path of a resource (`/apis/g/v/namespaces/ns/plural`, `/api/v1/plural`). */
export function collectionPath(ref: ResourceRef, namespace = ref.namespace): string {
  const base = ref.group === "" ? `/api/${ref.version}` : `/apis/${ref.group}/${ref.version}`;
  return namespace ? `${base}/namespaces/${namespace}/${ref.plural}` : `${base}/${ref.plural}`;
}

/** The path of one object, or of one of its subresources (`status`). */
export function objectPath(ref: ResourceRef, namespace: string | undefined, name: string, sub?: string): string {
  const path = `${collectionPath(ref, namespace)}/${encodeURIComponent(name)}`;
  return sub ? `${path}/${sub}` : path;
}

/** The cache and queue key of an object: `namespace/name`, or `name` for cluster-scoped objects. */
export function objectKey(obj: KubernetesObject): string {
  const ns = obj.metadata?.namespace;
  const name = obj.metadata?.name ?? "";
  return ns ? `${ns}/${name}` : name;
}

export function splitKey(key: string): { namespace: string | undefined; name: string } {
  const i = key.indexOf("/");
  return i < 0 ? { namespace: undefined, name: key } : { namespace: key.slice(0, i), name: key.slice(i + 1) };
}
