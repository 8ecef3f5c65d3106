import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { findCondition, setCondition, setHealth, timestamp } from "../../../src/runtime/conditions.ts";

const t0 = Date.parse("2026-01-01T00:00:00Z");

describe("conditions", () => {
  it("stamps observedGeneration and keeps lastTransitionTime while the status holds", () => {
    let c = setCondition([], { type: "Ready", status: "False", reason: "Creating", message: "a" }, 1, t0);
    c = setCondition(c, { type: "Ready", status: "False", reason: "Waiting", message: "b" }, 2, t0 + 60_000);
    const ready = findCondition(c, "Ready");
    assert.ok(ready);
    assert.equal(ready.lastTransitionTime, "2026-01-01T00:00:00Z");
    assert.equal(ready.observedGeneration, 2);
    assert.equal(ready.reason, "Waiting");
    c = setCondition(c, { type: "Ready", status: "True", reason: "Available", message: "" }, 2, t0 + 120_000);
    assert.equal(findCondition(c, "Ready")?.lastTransitionTime, "2026-01-01T00:02:00Z");
  });

  it("does not modify its input", () => {
    const before = setCondition([], { type: "Ready", status: "False", reason: "R", message: "" }, 1, t0);
    const copy = structuredClone(before);
    setCondition(before, { type: "Ready", status: "True", reason: "S", message: "" }, 2, t0);
    assert.deepEqual(before, copy);
  });

  it("keeps Ready always and Reconciling/Stalled only while true (kstatus)", () => {
    let c = setHealth(undefined, { state: "reconciling", reason: "Uploading", message: "40%" }, 3, t0);
    assert.deepEqual(c.map((x) => [x.type, x.status]), [["Ready", "False"], ["Reconciling", "True"]]);
    c = setHealth(c, { state: "stalled", reason: "ChecksumMismatch", message: "bad" }, 3, t0);
    assert.deepEqual(c.map((x) => [x.type, x.status]), [["Ready", "False"], ["Stalled", "True"]]);
    c = setHealth(c, { state: "ready", reason: "Available", message: "" }, 3, t0);
    assert.deepEqual(c.map((x) => [x.type, x.status]), [["Ready", "True"]]);
  });

  it("writes timestamps with whole seconds", () => {
    assert.equal(timestamp(t0 + 1234), "2026-01-01T00:00:01Z");
  });
});
