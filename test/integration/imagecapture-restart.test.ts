import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { GROUP, IMAGECAPTURE, VERSION } from "../../src/api/group.ts";
import type { ImageCapture } from "../../src/api/types.ts";
import { startEmulator, type Emulator } from "../../src/emulator/index.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { ManagedProcess } from "../../src/localstack/processes.ts";
import { objectPath, type KubeClient } from "../../src/runtime/kube-client.ts";
import { admin } from "../support/emulator-fixture.ts";
import { kubectl } from "../support/kubectl.ts";
import { credentials } from "../support/operator-fixture.ts";
import { clientFor, eventually } from "../support/runtime-fixture.ts";

const mainEntry = fileURLToPath(new URL("../../src/main.ts", import.meta.url));
const RG = "rg-restart";

/**
 * The operator as a separate process, SIGKILLed while the capture is at each step in turn and started
 * again: the capture must finish, and the emulator's request log must show every Azure write of every
 * step exactly once.
 */
describe("ImageCapture across operator crashes", () => {
  let cp: ControlPlane;
  let emu: Emulator;
  let kube: KubeClient;
  let dir: string;
  let operator: ManagedProcess | undefined;
  let starts = 0;

  const startOperator = () => {
    starts++;
    const env = {
      AZURE_SUBSCRIPTION_ID: credentials.subscriptionId,
      AZURE_TENANT_ID: credentials.tenantId,
      AZURE_CLIENT_ID: credentials.clientId,
      AZURE_CLIENT_SECRET: credentials.clientSecret,
      AZURE_AUTHORITY_HOST: emu.baseUrl,
      AZURE_RESOURCE_MANAGER_ENDPOINT: emu.baseUrl,
      AZURE_CA_FILE: emu.tls.caFile,
    };
    operator = new ManagedProcess(
      `operator-${starts}`,
      "/usr/bin/env",
      [...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, mainEntry, "--kubeconfig", cp.kubeconfigPath, "--poll-interval", "200ms", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"],
      join(dir, "operator.log"),
    );
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-capture-restart-"));
    cp = await ControlPlane.start();
    await installCrds(cp.kubeConfig());
    // Every operation runs long enough for the operator to be killed in the middle of it.
    emu = await startEmulator({
      operationDurationMs: 1_500,
      replicationDurationMs: 1_500,
      retryAfterSeconds: 0,
      recordFile: join(dir, "requests.jsonl"),
      clients: [{ tenantId: credentials.tenantId, clientId: credentials.clientId, secret: credentials.clientSecret }],
    });
    kube = clientFor(cp);
  });

  after(async () => {
    await operator?.stop();
    kube.close();
    await emu.stop();
    await cp.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("resumes at the unfinished step after a SIGKILL during each step, repeating none", async (t) => {
    await admin(emu, "POST", "virtualMachines", { subscriptionId: credentials.subscriptionId, resourceGroup: RG, name: "crashy", location: "westeurope", osType: "Linux", dataDisks: 2 });
    const manifest = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: IMAGECAPTURE.kind,
      metadata: { name: "crashy", namespace: "default" },
      spec: {
        virtualMachine: { resourceGroup: RG, name: "crashy" },
        backup: { retain: false },
        destination: { managedImage: {}, gallery: { galleryName: "restarts", imageDefinition: "crashy" } },
      },
    };
    // Marking a VM generalized is a synchronous call; with its answer held back, the operator is killed
    // after Azure acted but before it heard so, and must find out by reading the VM instead of re-sending.
    await admin(emu, "POST", "faults", { operation: "Microsoft.Compute/virtualMachines/generalize/action", answerDelayMs: 1_500 });
    startOperator();
    await kubectl(cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(manifest));
    const path = objectPath({ group: GROUP, version: VERSION, plural: IMAGECAPTURE.plural }, "default", "crashy");
    const get = () => kube.get<ImageCapture>(path);
    const killedAt: string[] = [];
    for (const step of ["Backup", "Generalize", "Deallocate", "MarkGeneralized", "CreateImage", "CreateGalleryVersion", "Replicate", "Cleanup"]) {
      let seen: ImageCapture | undefined;
      await eventually(`capture at ${step}`, async () => (seen = await get()).status?.currentStep === step, 60_000).catch((err: unknown) => {
        throw new Error(`${String(err)}; status ${JSON.stringify(seen?.status)}; operator log:\n${operator?.logTail() ?? ""}`);
      });
      operator?.killNow();
      await operator?.waitForExit();
      killedAt.push(`${step}:${seen?.status?.steps?.find((s) => s.name === step)?.state ?? "?"}`);
      startOperator();
    }
    let last: ImageCapture | undefined;
    await eventually("Ready", async () => (last = await get()).status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false, 60_000).catch((err: unknown) => {
      throw new Error(`${String(err)}; status ${JSON.stringify(last?.status)}`);
    });
    assert.equal(killedAt.length, 8, killedAt.join(" "));
    t.diagnostic(`killed at (step:state) ${killedAt.join(" ")}`);
    assert.deepEqual(
      (last?.status?.steps ?? []).map((s) => s.state),
      ["Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded", "Succeeded"],
    );

    // Every write each step makes appears once in the emulator's request log.
    const requests = (await readFile(join(dir, "requests.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { method: string; url: string })
      .filter((r) => r.method !== "GET")
      .map((r) => `${r.method} ${r.url.split("?")[0] ?? ""}`.toLowerCase());
    const count = (pattern: RegExp) => requests.filter((r) => pattern.test(r)).length;
    assert.equal(count(/^put .*\/snapshots\/[^/]+-os$/), 1, "OS disk snapshot created once");
    assert.equal(count(/^put .*\/snapshots\/[^/]+-lun0$/), 1, "LUN 0 snapshot created once");
    assert.equal(count(/^put .*\/snapshots\/[^/]+-lun1$/), 1, "LUN 1 snapshot created once");
    assert.equal(count(/^put .*\/virtualmachines\/crashy\/runcommands\/[^/]+$/), 1, "generalized once");
    assert.equal(count(/^post .*\/virtualmachines\/crashy\/runcommand$/), 0, "no action Run Command");
    assert.equal(count(/^post .*\/virtualmachines\/crashy\/deallocate$/), 1, "deallocated once");
    assert.equal(count(/^post .*\/virtualmachines\/crashy\/generalize$/), 1, "marked generalized once");
    assert.equal(count(/^put .*\/providers\/microsoft.compute\/images\/[^/]+$/), 1, "one managed image");
    assert.equal(count(/^put .*\/galleries\/restarts\/images\/crashy$/), 1, "one image definition");
    assert.equal(count(/^put .*\/versions\/[^/]+$/), 1, "one gallery image version");
    assert.equal(count(/^delete .*\/snapshots\//), 3, "each snapshot deleted once");
    const vm = (await admin(emu, "GET", "virtualMachines/crashy")) as { power: string; generalized: boolean };
    assert.deepEqual([vm.power, vm.generalized], ["deallocated", true]);
  });
});
