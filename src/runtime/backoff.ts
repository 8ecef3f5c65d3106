/**
 * Exponential backoff with full jitter for reconnect loops: each failure doubles the ceiling from
 * `initialMs` up to `maxMs`; the wait is drawn between half the ceiling and the ceiling, so a fleet
 * of clients does not reconnect in lockstep.
 */
export class Backoff {
  private failures = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly random: () => number;

  constructor(initialMs = 1_000, maxMs = 30_000, random: () => number = Math.random) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.random = random;
  }

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.failures);
    this.failures++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  reset(): void {
    this.failures = 0;
  }
}

/** `base` scaled by a random factor in [1, 1 + fraction): spreads periodic work over time. */
export function jitter(baseMs: number, fraction = 0.1, random: () => number = Math.random): number {
  return Math.round(baseMs * (1 + random() * fraction));
}

/**
 * Reads an abort signal through a call, so that flow analysis does not treat `signal.aborted` as fixed
 * between two checks separated by an await.
 */
export function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
