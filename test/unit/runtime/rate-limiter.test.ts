import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../../../src/runtime/clock.ts";
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialRateLimiter,
} from "../../../src/runtime/rate-limiter.ts";

describe("rate limiters", () => {
  it("per-key exponential: doubles from the base and stops at the cap", () => {
    const l = new ItemExponentialRateLimiter<string>(5, 300_000);
    const delays = Array.from({ length: 20 }, () => l.when("k"));
    assert.deepEqual(delays.slice(0, 4), [5, 10, 20, 40]);
    assert.equal(delays.at(-1), 300_000);
    assert.equal(l.when("other"), 5, "keys are independent");
  });

  it("token bucket: free within the burst, then paced at qps", () => {
    const clock = new FakeClock();
    const l = new BucketRateLimiter<string>(10, 3, clock);
    assert.deepEqual([l.when(), l.when(), l.when()], [0, 0, 0]);
    assert.deepEqual([l.when(), l.when()], [100, 200]);
    clock.advance(1000);
    assert.equal(l.when(), 0, "refilled over time");
  });

  it("controller default: the longer of the two verdicts", () => {
    const clock = new FakeClock();
    const l = defaultControllerRateLimiter<string>(clock);
    const first = Array.from({ length: 100 }, (_, i) => l.when(`k${i}`));
    assert.ok(first.every((d) => d === 5), "burst of 100 distinct keys: per-key base delay");
    assert.equal(l.when("k100"), 100, "the bucket paces the 101st");
  });
});
