import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classify, redact } from "../../src/azure/errors.ts";

const restError = (statusCode: number | undefined, code: string, message: string, retryAfter?: string) => ({
  statusCode,
  code,
  message,
  response: { headers: { get: (name: string) => (name === "retry-after" ? retryAfter : undefined) } },
});

describe("Azure error classification", () => {
  it("404 is NotFound; 400 is Terminal", () => {
    assert.equal(classify(restError(404, "ResourceNotFound", "gone")).kind, "NotFound");
    const bad = classify(restError(400, "InvalidParameter", "osType is bad"));
    assert.equal(bad.kind, "Terminal");
    assert.equal(bad.code, "InvalidParameter");
  });

  it("throttling, conflicts, authorization and server errors are Retryable, with Retry-After", () => {
    const throttled = classify(restError(429, "TooManyRequests", "slow down", "17"));
    assert.equal(throttled.kind, "Retryable");
    assert.equal(throttled.retryAfterMs, 17_000);
    for (const status of [409, 401, 403, 500, 503]) assert.equal(classify(restError(status, "X", "x")).kind, "Retryable");
    assert.equal(classify({ code: "ECONNREFUSED", message: "connect ECONNREFUSED" }).kind, "Retryable");
  });

  it("a failed long-running operation is Terminal unless Azure says it was internal", () => {
    assert.equal(classify(new Error("The long-running operation has failed. InvalidParameter. bad")).kind, "Terminal");
    assert.equal(classify(new Error("The long-running operation has failed. InternalExecutionError. oops")).kind, "Retryable");
  });

  it("never carries a SAS signature or a bearer token in its message", () => {
    const err = classify(restError(403, "AuthorizationPermissionMismatch", "GET https://acct.blob.core.windows.net/c/d.vhd?sv=2025-11-05&se=2026-01-01&sp=r&sig=abc%2Bdef failed; Authorization: Bearer eyJhbGciOi.abc.def"));
    assert.doesNotMatch(err.message, /abc%2Bdef|eyJhbGciOi/);
    assert.match(redact("x?sig=secret&sp=r"), /sig=REDACTED&sp=REDACTED/);
  });
});
