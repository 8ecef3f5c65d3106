import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { admin } from "../support/emulator-fixture.ts";
import { kstatus, type KStatus, type WithConditions } from "../support/kstatus.ts";
import { kubectl } from "../support/kubectl.ts";
import { credentials, OperatorEnv } from "../support/operator-fixture.ts";

const base = { location: "westeurope", resourceGroup: "rg-kstatus", osType: "Linux" };
const ubuntu = { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" };

/** Flux's view of live objects: kstatus computed over what the API server returns, polled as Flux's health checks do. */
describe("kstatus over live VmImage and ImageCapture objects (Flux health)", () => {
  let env: OperatorEnv;

  before(async () => {
    env = await OperatorEnv.start({ operationDurationMs: 600 });
  });

  after(async () => {
    await env.stop();
  });

  /**
   * The distinct kstatus values an object goes through until `until` is seen. An object the controller
   * has not written any status to yet is reported as "(no status)": kstatus calls such an object
   * Current, a window the controllers keep to one reconcile by writing Reconciling=True first.
   */
  async function trace(get: () => Promise<WithConditions>, until: KStatus, timeoutMs = 60_000): Promise<Array<KStatus | "(no status)">> {
    const seen: Array<KStatus | "(no status)"> = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const obj = await get();
      const s = obj.status === undefined ? "(no status)" : kstatus(obj);
      if (seen.at(-1) !== s) seen.push(s);
      if (s === until) return seen;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${until}; seen ${seen.join(" -> ")}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  it("VmImage: InProgress while reconciling, Current when Ready, InProgress again after a spec change, Terminating when deleted", async () => {
    await env.apply("flux", { ...base, source: { marketplace: ubuntu }, destination: { managedImage: {} } });
    const first = await trace(() => env.get("flux"), "Current");
    assert.deepEqual(first.filter((s) => s !== "(no status)"), ["InProgress", "Current"], first.join(" -> "));
    const ready = await env.get("flux");
    assert.equal(ready.status?.observedGeneration, ready.metadata?.generation);
    assert.ok(ready.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"));

    // A new generation is InProgress until the controller has observed it.
    await env.apply("flux", { ...base, source: { marketplace: ubuntu }, destination: { managedImage: {} }, tags: { team: "platform" } });
    const changed = await env.get("flux");
    assert.equal(changed.metadata?.generation, 2);
    const second = await trace(() => env.get("flux"), "Current");
    if (second.length > 1) assert.equal(second[0], "InProgress");
    assert.equal((await env.get("flux")).status?.observedGeneration, 2);

    await kubectl(env.cp.kubeconfigPath, ["delete", "vmimg", "flux", "--wait=false"]);
    const deleting = await env.get("flux").catch(() => undefined);
    if (deleting) assert.equal(kstatus(deleting), "Terminating");
  });

  it("VmImage: Failed when Stalled", async () => {
    const cis = { publisher: "center-for-internet-security-inc", offer: "cis-ubuntu-linux-2204-l1", sku: "cis-ubuntu2204-l1-gen2" };
    await env.apply("flux-stalled", { ...base, source: { marketplace: cis }, destination: { managedImage: {} } });
    const seen = await trace(() => env.get("flux-stalled"), "Failed");
    assert.ok(!seen.includes("Current"), seen.join(" -> "));
    const o = await env.get("flux-stalled");
    assert.equal(o.status?.conditions?.find((c) => c.type === "Ready")?.status, "False");
  });

  it("ImageCapture: InProgress through its steps, then Current; Failed when the VM does not exist", async () => {
    await admin(env.emu, "POST", "virtualMachines", { subscriptionId: credentials.subscriptionId, resourceGroup: "rg-kstatus", name: "flux-vm", location: "westeurope", osType: "Linux" });
    await env.applyCapture("flux-capture", { virtualMachine: { resourceGroup: "rg-kstatus", name: "flux-vm" }, destination: { managedImage: {} } });
    const seen = await trace(() => env.getCapture("flux-capture"), "Current");
    assert.deepEqual(seen.filter((s) => s !== "(no status)"), ["InProgress", "Current"], seen.join(" -> "));
    assert.equal((await env.getCapture("flux-capture")).status?.currentStep, "Done");

    await env.applyCapture("flux-novm", { virtualMachine: { resourceGroup: "rg-kstatus", name: "missing" }, destination: { managedImage: {} } });
    await trace(() => env.getCapture("flux-novm"), "Failed");
  });
});
