import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ArmRateLimiter } from "../../src/azure/rate-limit.ts";
import { OperatorEnv, readyCondition as ready } from "../support/operator-fixture.ts";
import { eventually } from "../support/runtime-fixture.ts";

// ARM's buckets, scaled down so the test is short: the emulator enforces them; the operator's
// client-side limiter stays at 80% of them, as its defaults do against ARM's real buckets (requests
// released on time can still arrive bunched).
const limits = { reads: { burst: 10, perSecond: 10 }, writes: { burst: 6, perSecond: 4 }, deletes: { burst: 6, perSecond: 4 } };
const operatorLimits = { reads: { burst: 8, perSecond: 8 }, writes: { burst: 5, perSecond: 3.2 }, deletes: { burst: 5, perSecond: 3.2 } };

describe("VmImage controller: many objects at once stay under ARM's throttling", () => {
  let env: OperatorEnv;
  const limiter = new ArmRateLimiter(operatorLimits);

  before(async () => {
    env = await OperatorEnv.start({ operationDurationMs: 50, throttling: true }, limiter);
    await fetch(`${env.emu.baseUrl}/admin/settings`, { method: "PUT", body: JSON.stringify({ throttling: true, limits }), headers: { "content-type": "application/json" } });
  });

  after(async () => {
    await env.stop();
  });

  it("applies 12 VmImages together: all Ready, no 429 from ARM, the limiter did the waiting", async (t) => {
    const names = Array.from({ length: 12 }, (_, i) => `burst-${i}`);
    await Promise.all(
      names.map((name) =>
        env.apply(name, {
          location: "westeurope",
          resourceGroup: "rg-burst",
          osType: "Linux",
          source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } },
          destination: { managedImage: {} },
        }),
      ),
    );
    await eventually("all Ready", async () => {
      for (const n of names) if (ready(await env.get(n))?.status !== "True") return false;
      return true;
    }, 120_000);
    const counters = (await (await fetch(`${env.emu.baseUrl}/admin/counters`)).json()) as Record<string, number>;
    const throttled = Object.entries(counters).filter(([k]) => k.endsWith(" 429"));
    t.diagnostic(`limiter waited ${limiter.stats.waited} times, ${limiter.stats.waitedMs} ms in all`);
    assert.deepEqual(throttled, [], "no request was throttled by ARM");
    assert.ok(limiter.stats.waited > 0, "the burst exceeded the buckets, so the limiter queued requests");
  });
});
