import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FakeClock } from "../../../src/runtime/clock.ts";
import { ItemExponentialRateLimiter } from "../../../src/runtime/rate-limiter.ts";
import { WorkQueue } from "../../../src/runtime/workqueue.ts";

function queue(clock = new FakeClock()) {
  return { clock, q: new WorkQueue<string>({ clock, rateLimiter: new ItemExponentialRateLimiter(5, 1000) }) };
}

describe("WorkQueue", () => {
  it("holds a key once however many times it is added", async () => {
    const { q } = queue();
    for (let i = 0; i < 100; i++) q.add("a");
    q.add("b");
    assert.equal(q.len(), 2);
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), "b");
    assert.equal(q.len(), 0);
  });

  it("never hands a key that is being processed to a second worker", async () => {
    const { q } = queue();
    q.add("a");
    const first = await q.get();
    q.add("a");
    q.add("a");
    assert.equal(q.len(), 0, "re-added while processing: held back");
    let second: string | undefined;
    void q.get().then((k) => (second = k));
    await Promise.resolve();
    assert.equal(second, undefined);
    q.done(first ?? "");
    await Promise.resolve();
    assert.equal(second, "a", "queued again once, after done");
    assert.equal(q.len(), 0);
  });

  it("does not requeue a key on done when it was not added meanwhile", async () => {
    const { q } = queue();
    q.add("a");
    q.done((await q.get()) ?? "");
    assert.equal(q.len(), 0);
  });

  it("wakes a waiting worker when a key arrives", async () => {
    const { q } = queue();
    const pending = q.get();
    q.add("x");
    assert.equal(await pending, "x");
  });

  it("adds after a delay, keeping the earliest deadline for a key", () => {
    const { q, clock } = queue();
    q.addAfter("a", 1000);
    q.addAfter("a", 300);
    q.addAfter("a", 5000);
    clock.advance(299);
    assert.equal(q.len(), 0);
    clock.advance(1);
    assert.equal(q.len(), 1);
    clock.advance(10_000);
    assert.equal(q.len(), 1, "the later deadlines were dropped");
  });

  it("backs off exponentially per key on rate-limited adds, until forgotten", async () => {
    const { q, clock } = queue();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      const start = clock.now();
      q.addRateLimited("a");
      while (q.len() === 0) clock.advance(1);
      delays.push(clock.now() - start);
      q.done((await q.get()) ?? "");
    }
    assert.deepEqual(delays, [5, 10, 20, 40]);
    assert.equal(q.numRequeues("a"), 4);
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
  });

  it("on shutdown releases waiting workers and drops delayed adds", async () => {
    const { q, clock } = queue();
    q.addAfter("later", 100);
    const waiting = q.get();
    q.shutDown();
    assert.equal(await waiting, undefined);
    clock.advance(1000);
    q.add("b");
    assert.equal(q.len(), 0);
    assert.equal(await q.get(), undefined);
  });

  it("drains: shutDownWithDrain resolves only after in-flight keys are done", async () => {
    const { q } = queue();
    q.add("a");
    const key = await q.get();
    let drained = false;
    const drain = q.shutDownWithDrain().then(() => (drained = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(drained, false);
    q.done(key ?? "");
    await drain;
    assert.equal(drained, true);
  });
});
