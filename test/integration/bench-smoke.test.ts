import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { runSyncBenchmark } from "../../bench/informer-sync.ts";
import { runUploadBenchmark } from "../../bench/upload.ts";

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
