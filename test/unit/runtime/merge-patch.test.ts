import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createMergePatch } from "../../../src/runtime/merge-patch.ts";

describe("createMergePatch", () => {
  it("is undefined when nothing changed", () => {
    assert.equal(createMergePatch({ a: 1, b: { c: [1] } }, { a: 1, b: { c: [1] } }), undefined);
  });

  it("carries changed and new keys, nulls removed ones, replaces arrays whole", () => {
    const patch = createMergePatch(
      { keep: 1, drop: "x", nested: { a: 1, b: 2 }, list: [1, 2] },
      { keep: 1, nested: { a: 1, b: 3, c: 4 }, list: [2], added: true },
    );
    assert.deepEqual(patch, { drop: null, nested: { b: 3, c: 4 }, list: [2], added: true });
  });
});
