import type { PipelinePolicy } from "@azure/core-rest-pipeline";

export type RequestClass = "reads" | "writes" | "deletes";

export interface BucketLimit {
  burst: number;
  perSecond: number;
}

/**
 * ARM's token buckets per subscription and principal (2024 model): reads 250 burst refilled at 25/s,
 * writes and deletes 200 at 10/s. The operator stays at 80% of them: requests released on time can
 * still arrive bunched, and other clients of the same principal keep some room.
 */
export const defaultArmLimits: Record<RequestClass, BucketLimit> = {
  reads: { burst: 200, perSecond: 20 },
  writes: { burst: 160, perSecond: 8 },
  deletes: { burst: 160, perSecond: 8 },
};

/** Tokens may go negative: each caller reserves one, possibly in the future, and waits for it. */
interface Bucket {
  tokens: number;
  last: number;
}

/**
 * A client-side limiter per subscription and request class, as an SDK pipeline policy: every ARM
 * request takes a token first and waits when the bucket is empty, so a thousand objects applied at
 * once queue here instead of drawing 429s from ARM.
 */
export class ArmRateLimiter {
  private readonly limits: Record<RequestClass, BucketLimit>;
  private readonly buckets = new Map<string, Bucket>();
  /** Requests that had to wait, and for how long in all (for metrics and tests). */
  readonly stats = { waited: 0, waitedMs: 0 };

  constructor(limits: Partial<Record<RequestClass, BucketLimit>> = {}) {
    this.limits = { ...defaultArmLimits, ...limits };
  }

  /** Reserves a token; resolves when it is available. */
  async acquire(subscription: string, cls: RequestClass): Promise<void> {
    const limit = this.limits[cls];
    const key = `${subscription.toLowerCase()}|${cls}`;
    const now = Date.now();
    const bucket = this.buckets.get(key) ?? { tokens: limit.burst, last: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.last) / 1000) * limit.perSecond);
    bucket.last = now;
    bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 0) return;
    const waitMs = Math.ceil((-bucket.tokens / limit.perSecond) * 1000);
    this.stats.waited++;
    this.stats.waitedMs += waitMs;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  policy(): PipelinePolicy {
    return {
      name: "armClientRateLimit",
      sendRequest: async (request, next) => {
        const subscription = /\/subscriptions\/([^/?]+)/i.exec(new URL(request.url).pathname)?.[1] ?? "";
        const cls: RequestClass = request.method === "GET" || request.method === "HEAD" ? "reads" : request.method === "DELETE" ? "deletes" : "writes";
        await this.acquire(subscription, cls);
        return next(request);
      },
    };
  }
}
