import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runSyncBenchmark } from "../../bench/informer-sync.ts";
import { runUploadBenchmark } from "../../bench/upload.ts";
import { runArmBurst } from "../../bench/arm-burst.ts";

// A small run of the informer benchmark so it keeps working; figures are recorded by the full run
// (bench/README.md), never asserted here as timings.
describe("benchmark smoke: informer sync", () => {
  it("syncs and reconciles 200 objects and reports its figures", async (t) => {
    const result = await runSyncBenchmark(200, 2);
    t.diagnostic(JSON.stringify(result));
    assert.equal(result.objects, 200);
    for (const key of ["initialSyncSeconds", "allReconciledSeconds", "rssAfterSyncMiB", "idleCpuSeconds"] as const) {
      assert.ok(Number.isFinite(result[key]) && result[key] >= 0, `${key} is a measurement`);
    }
    assert.ok(result.allReconciledSeconds >= result.initialSyncSeconds);
  });
});

describe("benchmark smoke: VHD import", () => {
  it("imports 32 MiB dense and sparse qemu-img VHDs into Azurite and verifies the bytes", async (t) => {
    const runs = await runUploadBenchmark(32, false, true);
    t.diagnostic(JSON.stringify(runs));
    assert.deepEqual(runs.map((r) => [r.tool, r.image, r.verified]), [["operator", "dense", true], ["operator", "sparse", true]]);
    const sparse = runs.find((r) => r.image === "sparse");
    assert.ok((sparse?.bytesSkippedZero ?? 0) > 16 * 1024 * 1024, "the sparse image's zeros were not sent");
  });
});

describe("benchmark smoke: many VmImages against ARM's buckets", () => {
  it("brings 20 objects to Ready without a 429, then costs reads only, at most one per object and drift period", async (t) => {
    const result = await runArmBurst(20, 5, 10);
    t.diagnostic(JSON.stringify(result));
    assert.equal(result.objects, 20);
    assert.equal(result.throttled, 0, "ARM never answered 429");
    assert.ok(result.requests.writes >= 40, "each object made its disk and its image");
    assert.equal(result.steady.writes, 0, "a Ready object costs no writes");
    // A drift check is at least one period after the last (jitter only lengthens it): at most two per
    // object in a window of two periods.
    assert.ok(result.steady.reads > 0 && result.steady.reads <= 40, `${result.steady.reads} reads in two periods`);
  });
});
