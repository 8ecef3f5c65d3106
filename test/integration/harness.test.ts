import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isAlive, waitUntil } from "../../src/localstack/processes.ts";

const holder = fileURLToPath(new URL("../support/hold-control-plane.ts", import.meta.url));

const alive = isAlive;

describe("control-plane harness", () => {
  for (const signal of ["SIGKILL", "SIGINT"] as const) {
    it(`leaves no server running when the test process gets ${signal}`, async (t) => {
      // Given a process that started etcd and kube-apiserver
      const child = spawn(process.execPath, [holder], { stdio: ["ignore", "pipe", "inherit"] });
      const lines = createInterface({ input: child.stdout });
      const [first] = (await once(lines, "line")) as [string];
      const { pids, dir } = JSON.parse(first) as { pids: number[]; dir: string };
      assert.equal(pids.length, 2);
      assert.ok(pids.every(alive));

      // When it is killed without a chance to clean up (SIGKILL), or interrupted (SIGINT, as Ctrl-C)
      child.kill(signal);
      await once(child, "exit");

      // Then both servers are gone soon after, and so is their data directory
      const killedAt = Date.now();
      await waitUntil("the servers to exit", () => Promise.resolve(!pids.some(alive)), 15_000, () =>
        `still running: ${pids.filter(alive).join(", ")}`,
      );
      await waitUntil("the data directory to be removed", () => Promise.resolve(!existsSync(dir)), 10_000);
      t.diagnostic(`servers gone and ${dir} removed ${Date.now() - killedAt} ms after ${signal}`);
    });
  }
});
