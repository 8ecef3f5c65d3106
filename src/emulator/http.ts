import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { ArmError } from "./arm.ts";
import type { RequestClass } from "./throttle.ts";

/** A request as handlers see it. */
export interface ArmRequest {
  method: string;
  url: URL;
  params: Record<string, string>;
  body: unknown;
  headers: IncomingMessage["headers"];
  /** The api-version query parameter (required on ARM routes). */
  apiVersion: string;
}

export interface ArmResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Handler = (req: ArmRequest) => ArmResponse | Promise<ArmResponse>;

export interface Route {
  method: string;
  regex: RegExp;
  keys: string[];
  handler: Handler;
  /** RBAC-style operation name, used by counters and fault injection: Microsoft.Compute/images/write. */
  operation: string;
  cls: RequestClass;
}

/**
 * A route table over ARM paths: `{name}` captures one segment; literal segments match
 * case-insensitively, as ARM's do.
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, pattern: string, operation: string, handler: Handler): void {
    const keys: string[] = [];
    const source = pattern
      .split("/")
      .map((seg) => {
        const m = /^\{(\w+)\}$/.exec(seg);
        if (m) {
          keys.push(m[1] ?? "");
          return "([^/]+)";
        }
        return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      })
      .join("/");
    const cls: RequestClass = method === "GET" || method === "HEAD" ? "reads" : method === "DELETE" ? "deletes" : "writes";
    this.routes.push({ method, regex: new RegExp(`^${source}/?$`, "i"), keys, handler, operation, cls });
  }

  match(method: string, path: string): { route: Route; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1] ?? "")));
      return { route, params };
    }
    return undefined;
  }

  /** Whether some route matches the path with another method (405 rather than 404). */
  pathKnown(path: string): boolean {
    return this.routes.some((r) => r.regex.test(path));
  }
}

export function jsonBody(raw: Buffer, contentType: string | undefined): unknown {
  if (raw.length === 0) return undefined;
  if (contentType?.includes("application/x-www-form-urlencoded")) return new URLSearchParams(raw.toString("utf8"));
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.");
  }
}

export const requestIds = (): Record<string, string> => {
  const id = randomUUID();
  return { "x-ms-request-id": id, "x-ms-correlation-request-id": randomUUID(), "x-ms-routing-request-id": `LOCAL:${id}` };
};
