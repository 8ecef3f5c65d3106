import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { nextPass } from "../../src/controllers/shared/accept.ts";

const drift = 600_000;

describe("when an object is looked at again", () => {
  it("observes a Ready object after the drift period plus up to 10%, spread over that window", () => {
    const delays = Array.from({ length: 200 }, () => nextPass({ state: "ready", reason: "Available", message: "" }, drift, drift)?.requeueAfterMs ?? -1);
    assert.ok(delays.every((d) => d >= drift && d < drift * 1.1), "within [period, 1.1 period)");
    assert.ok(new Set(delays).size > 100, "not all at the same moment");
  });

  it("re-checks a Stalled object every drift period even when the pass asked for nothing", () => {
    const d = nextPass({ state: "stalled", reason: "TermsNotAccepted", message: "" }, undefined, drift)?.requeueAfterMs ?? -1;
    assert.ok(d >= drift && d < drift * 1.1);
  });

  it("keeps a shorter requeue of a Ready object (latestCheckInterval), jittered", () => {
    const d = nextPass({ state: "ready", reason: "Available", message: "" }, 60_000, drift)?.requeueAfterMs ?? -1;
    assert.ok(d >= 60_000 && d < 66_000);
  });

  it("leaves work in progress to its own poll interval, exactly", () => {
    assert.deepEqual(nextPass({ state: "reconciling", reason: "Uploading", message: "" }, 5_000, drift), { requeueAfterMs: 5_000 });
    assert.equal(nextPass({ state: "reconciling", reason: "Accepted", message: "" }, undefined, drift), undefined);
  });
});
