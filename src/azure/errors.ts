/** How the operator reacts to an Azure failure; decided once, here, so controllers never see raw SDK errors. */
export type AzureErrorKind = "NotFound" | "Retryable" | "Terminal";

/** An Azure failure, classified, with a message safe to show in status and Events. */
export class AzureError extends Error {
  readonly kind: AzureErrorKind;
  readonly status: number | undefined;
  /** ARM's error code (InvalidParameter, OperationNotAllowed...), or a network error code. */
  readonly code: string;
  readonly retryAfterMs: number | undefined;

  constructor(kind: AzureErrorKind, code: string, message: string, status?: number, retryAfterMs?: number) {
    super(message);
    this.name = "AzureError";
    this.kind = kind;
    this.code = code;
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Removes SAS signatures and bearer tokens from text that may end up in status, Events or logs. */
export function redact(text: string): string {
  return text
    .replace(/([?&](?:sig|se|st|sp|sv|sr|skoid|sktid|skt|ske|sks|skv|spr|srt|ss)=)[^&\s"']*/gi, "$1REDACTED")
    .replace(/(Bearer\s+)[A-Za-z0-9._~+/=-]+/g, "$1REDACTED");
}

interface RestErrorLike {
  statusCode?: number;
  code?: string;
  message?: string;
  response?: { headers?: { get?(name: string): string | undefined } };
}

const networkCodes = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EPIPE", "UND_ERR_SOCKET", "REQUEST_SEND_ERROR"]);

function retryAfter(err: RestErrorLike): number | undefined {
  const value = err.response?.headers?.get?.("retry-after");
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/**
 * Classifies an error from an Azure SDK call: 404 is NotFound; throttling (429), timeouts (408),
 * server errors (5xx), conflicts (409: another operation or a state that will change), authorization
 * failures (401/403: a role assignment may still be propagating) and network failures are Retryable;
 * anything else (400 InvalidParameter, a refused purchase...) is Terminal until the spec changes.
 */
export function classify(err: unknown): AzureError {
  if (err instanceof AzureError) return err;
  const e = (typeof err === "object" && err !== null ? err : { message: String(err) }) as RestErrorLike;
  const message = redact(e.message ?? "unknown error");
  const status = e.statusCode;
  const code = e.code ?? (status ? `Http${status}` : "Unknown");
  if (status === 404) return new AzureError("NotFound", code, message, status);
  if (status === undefined) {
    const lroFailure = /long-running operation has failed/i.test(message);
    if (lroFailure) {
      const lroCode = /failed\. (\w+)\./.exec(message)?.[1] ?? "OperationFailed";
      const transient = /Internal|Timeout|Throttl|TooMany/i.test(lroCode);
      return new AzureError(transient ? "Retryable" : "Terminal", lroCode, message);
    }
    // No HTTP answer: the network (or something unforeseen); retrying with backoff is the safe default.
    return new AzureError("Retryable", networkCodes.has(code) ? code : "RequestFailed", message);
  }
  if (status === 408 || status === 429 || status >= 500 || status === 409 || status === 401 || status === 403) {
    return new AzureError("Retryable", code, message, status, retryAfter(e));
  }
  return new AzureError("Terminal", code, message, status);
}

/** Runs an Azure call and returns undefined when the resource does not exist. */
export async function getOrUndefined<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    const c = classify(err);
    if (c.kind === "NotFound") return undefined;
    throw c;
  }
}
