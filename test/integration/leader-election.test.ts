import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { clientFor, createVmImage, eventually } from "../support/runtime-fixture.ts";
import type { KubeClient } from "../../src/runtime/kube-client.ts";

const entry = fileURLToPath(new URL("../support/manager-process.ts", import.meta.url));

interface Line {
  at: number;
  msg?: string;
  reconciled?: string;
  identity?: string;
}

/** A manager process and every JSON line it printed, time-stamped on arrival. */
class Candidate {
  readonly lines: Line[] = [];
  readonly child: ChildProcess;
  readonly identity: string;
  exitCode: number | null | undefined;

  constructor(kubeconfig: string, identity: string, env: NodeJS.ProcessEnv = {}) {
    this.identity = identity;
    this.child = spawn(process.execPath, [entry, kubeconfig, identity], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, ...env },
    });
    this.child.once("exit", (code) => (this.exitCode = code));
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
      try {
        this.lines.push({ at: Date.now(), ...(JSON.parse(text) as object) });
      } catch {
        // not a JSON line
      }
    });
  }

  has(pred: (l: Line) => boolean): Line | undefined {
    return this.lines.find(pred);
  }

  leading(): Line | undefined {
    return this.has((l) => l.msg === "became leader");
  }

  reconciled(): string[] {
    return this.lines.flatMap((l) => (l.reconciled ? [l.reconciled] : []));
  }

  async kill(signal: NodeJS.Signals): Promise<number> {
    const at = Date.now();
    if (this.exitCode === undefined) {
      this.child.kill(signal);
      await once(this.child, "exit");
    }
    return at;
  }
}

describe("leader election across two manager processes", () => {
  let cp: ControlPlane;
  let admin: KubeClient;
  const candidates: Candidate[] = [];

  before(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp.kubeConfig());
    admin = clientFor(cp);
  });

  after(async () => {
    for (const c of candidates) await c.kill("SIGKILL");
    admin.close();
    await cp.stop();
  });

  it("lets exactly one reconcile, hands over after SIGKILL and, faster, after SIGTERM", async (t) => {
    const a = new Candidate(cp.kubeconfigPath, "candidate-a");
    const b = new Candidate(cp.kubeconfigPath, "candidate-b");
    candidates.push(a, b);
    await eventually("a leader", () => Boolean(a.leading() ?? b.leading()), 30_000);
    const [leader, standby] = a.leading() ? [a, b] : [b, a];

    // Exactly one process reconciles
    for (const name of ["le-1", "le-2", "le-3"]) await createVmImage(admin, name);
    await eventually("leader reconciled all three", () => leader.reconciled().length >= 3);
    await sleep(1_000);
    assert.deepEqual(standby.reconciled(), [], "the standby reconciles nothing");
    assert.equal(standby.leading(), undefined);

    // SIGKILL: the lease is not released; the standby takes over once it expires (15 s)
    const killedAt = await leader.kill("SIGKILL");
    await eventually("standby takes over", () => Boolean(standby.leading()), 40_000);
    const afterKill = (standby.leading()?.at ?? 0) - killedAt;
    await createVmImage(admin, "le-4");
    await eventually("new leader reconciles", () => standby.reconciled().includes("default/le-4"));

    // SIGTERM: the leader stops its controllers and releases the lease; a standby takes it at once
    const c = new Candidate(cp.kubeconfigPath, "candidate-c");
    candidates.push(c);
    await eventually("c sees the leader", () => Boolean(c.has((l) => l.msg === "new leader observed")), 30_000);
    const termAt = await standby.kill("SIGTERM");
    assert.equal(standby.exitCode, 0, "graceful exit");
    assert.ok(standby.has((l) => l.msg === "released the lease"), "lease released");
    await eventually("c takes over", () => Boolean(c.leading()), 20_000);
    const afterTerm = (c.leading()?.at ?? 0) - termAt;
    await createVmImage(admin, "le-5");
    await eventually("c reconciles", () => c.reconciled().includes("default/le-5"));

    t.diagnostic(`handover after SIGKILL: ${afterKill} ms; after SIGTERM: ${afterTerm} ms`);
    assert.ok(afterKill <= 20_000, `SIGKILL handover within ~20 s (${afterKill} ms)`);
    assert.ok(afterTerm <= 3_500, `SIGTERM handover within ~3 s (${afterTerm} ms)`);
  });

  it("stops reconciling and exits non-zero when the lease cannot be renewed", async () => {
    const d = new Candidate(cp.kubeconfigPath, "candidate-d", { TEST_LEASE_TIMINGS: "short" });
    candidates.push(d);
    for (const c of candidates) if (c !== d) await c.kill("SIGTERM");
    await eventually("d leads", () => Boolean(d.leading()), 30_000);
    // When the API server is unreachable for longer than the renew deadline (3 s here)
    await cp.stopApiServer();
    try {
      await eventually("d gives up leadership", () => d.exitCode !== undefined, 30_000);
    } finally {
      await cp.restartApiServer();
    }
    assert.ok(d.has((l) => l.msg === "lost leadership: lease not renewed in time"));
    assert.equal(d.exitCode, 1);
  });
});
