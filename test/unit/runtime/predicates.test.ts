import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { KubernetesObject } from "@kubernetes/client-node";
import {
  annotationsChanged,
  deletionChanged,
  generationChanged,
  specOrMetadataChanged,
} from "../../../src/runtime/predicates.ts";

const base: KubernetesObject = { metadata: { name: "x", generation: 1, resourceVersion: "10", annotations: { a: "1" } } };
const withMeta = (m: object): KubernetesObject => ({ metadata: { ...base.metadata, ...m } });
const any = (o: KubernetesObject, n: KubernetesObject) => specOrMetadataChanged.some((p) => p(o, n));

describe("predicates", () => {
  it("a status-only write (new resourceVersion, same generation) passes none", () => {
    const statusWrite = withMeta({ resourceVersion: "11" });
    assert.equal(any(base, statusWrite), false);
  });

  it("a spec change bumps the generation", () => {
    assert.equal(generationChanged(base, withMeta({ generation: 2 })), true);
  });

  it("annotation changes pass", () => {
    assert.equal(annotationsChanged(base, withMeta({ annotations: { a: "2" } })), true);
    assert.equal(annotationsChanged(base, withMeta({ annotations: { a: "1" } })), false);
  });

  it("deletion and finalizer changes pass", () => {
    assert.equal(deletionChanged(base, withMeta({ deletionTimestamp: "2026-01-01T00:00:00Z" })), true);
    assert.equal(deletionChanged(base, withMeta({ finalizers: ["f"] })), true);
  });
});
