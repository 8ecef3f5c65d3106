import { ArmError } from "./arm.ts";

export type RequestClass = "reads" | "writes" | "deletes";

export interface BucketConfig {
  burst: number;
  perSecond: number;
}

/** ARM's token buckets per subscription and principal (2024 model): reads 250/25 s⁻¹, writes and deletes 200/10 s⁻¹. */
export const armLimits: Record<RequestClass, BucketConfig> = {
  reads: { burst: 250, perSecond: 25 },
  writes: { burst: 200, perSecond: 10 },
  deletes: { burst: 200, perSecond: 10 },
};

interface Bucket {
  tokens: number;
  last: number;
}

/**
 * Throttling as ARM does it: one token bucket per subscription, principal and request class. A
 * request takes a token or gets 429 TooManyRequests with Retry-After; every answer carries
 * `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`.
 */
export class Throttle {
  enabled: boolean;
  limits: Record<RequestClass, BucketConfig>;
  private readonly buckets = new Map<string, Bucket>();

  constructor(enabled = true, limits: Record<RequestClass, BucketConfig> = armLimits) {
    this.enabled = enabled;
    this.limits = { ...limits };
  }

  /** Takes a token; returns the headers to send, or throws the 429. */
  take(subscription: string, principal: string, cls: RequestClass, now = Date.now()): Record<string, string> {
    const limit = this.limits[cls];
    const key = `${subscription.toLowerCase()}|${principal}|${cls}`;
    const bucket = this.buckets.get(key) ?? { tokens: limit.burst, last: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.last) / 1000) * limit.perSecond);
    bucket.last = now;
    this.buckets.set(key, bucket);
    const header = `x-ms-ratelimit-remaining-subscription-${cls}`;
    if (this.enabled && bucket.tokens < 1) {
      const retryAfter = Math.max(1, Math.ceil((1 - bucket.tokens) / limit.perSecond));
      throw new ArmError(
        429,
        "TooManyRequests",
        `The request is being throttled as the limit has been reached for operation type - ${cls === "reads" ? "Read" : cls === "writes" ? "Write" : "Delete"}. For more information, see - https://aka.ms/safeguardthrottling`,
        { headers: { "retry-after": String(retryAfter), [header]: "0" } },
      );
    }
    if (this.enabled) bucket.tokens -= 1;
    return { [header]: String(Math.max(0, Math.floor(bucket.tokens))) };
  }

  reset(): void {
    this.buckets.clear();
  }
}
