import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { restorePoller } from "@azure/arm-compute";
import { startEmulator } from "../../src/emulator/index.ts";
import {
  admin,
  clientId,
  clientSecret,
  clientsFor,
  fast,
  startTestEmulator,
  subscriptionId,
  tenantId,
  type EmulatorFixture,
} from "../support/emulator-fixture.ts";

const rg = "rg-lro";
const location = "westeurope";

interface Exchange {
  method: string;
  url: string;
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Records every request the SDK sends and what came back, through a pipeline policy. */
function record(f: EmulatorFixture): Exchange[] {
  const log: Exchange[] = [];
  f.compute.pipeline.addPolicy({
    name: "record",
    sendRequest: async (request, next) => {
      const response = await next(request);
      log.push({
        method: request.method,
        url: request.url,
        status: response.status,
        headers: response.headers.toJSON(),
        body: response.bodyAsText ?? "",
      });
      return response;
    },
  });
  return log;
}

describe("emulator: long-running operations as ARM runs them", () => {
  let f: EmulatorFixture;
  let log: Exchange[];
  const vmId = `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/lro-vm`;

  before(async () => {
    f = await startTestEmulator({ operationDurationMs: 300 });
    log = record(f);
    await f.resources.resourceGroups.createOrUpdate(rg, { location });
    await admin(f.emu, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "lro-vm", location, osType: "Linux", power: "deallocated" });
  });

  after(async () => {
    await f.emu.stop();
  });

  it("PUT: 201 with an absolute Azure-AsyncOperation URL, 200 polls until Succeeded, then the final GET", async () => {
    log.length = 0;
    await f.compute.virtualMachines.generalize(rg, "lro-vm");
    log.length = 0;
    const image = await f.compute.images.createOrUpdate(rg, "lro-image", { location, sourceVirtualMachine: { id: vmId } }, fast);
    assert.equal(image.provisioningState, "Succeeded");
    const [put, ...rest] = log;
    assert.equal(put?.method, "PUT");
    assert.equal(put?.status, 201);
    assert.equal((JSON.parse(put?.body ?? "{}") as { properties: { provisioningState: string } }).properties.provisioningState, "Creating");
    const statusUrl = put?.headers["azure-asyncoperation"] ?? "";
    assert.match(statusUrl, new RegExp(`^${f.emu.baseUrl}/subscriptions/${subscriptionId}/providers/Microsoft\\.Compute/locations/westeurope/operations/[0-9a-f-]+\\?.*api-version=`));
    const polls = rest.filter((e) => e.url.startsWith(statusUrl.split("?")[0] ?? ""));
    assert.ok(polls.length >= 2, `polled while running (${polls.length} polls)`);
    assert.ok(polls.every((p) => p.status === 200));
    assert.deepEqual(polls.map((p) => (JSON.parse(p.body) as { status: string }).status).slice(-2), ["InProgress", "Succeeded"]);
    const final = rest.at(-1);
    assert.equal(final?.method, "GET");
    assert.equal(final?.url.split("?")[0], put?.url.split("?")[0]);
  });

  it("POST actions and DiskRP deletes: 202 with Location (monitor answers 202, then 200/204)", async () => {
    log.length = 0;
    await f.compute.virtualMachines.deallocate(rg, "lro-vm", fast);
    const post = log.find((e) => e.method === "POST");
    assert.equal(post?.status, 202);
    const monitor = post?.headers.location ?? "";
    assert.match(monitor, /\/operations\/[0-9a-f-]+\?.*monitor=true/);
    const monitorAnswers = log.filter((e) => e.url.includes("monitor=true")).map((e) => e.status);
    assert.equal(monitorAnswers.at(-1), 200, `the monitor ends with 200 (${monitorAnswers.join(",")})`);
    log.length = 0;
    await f.compute.disks.createOrUpdate(rg, "lro-disk", { location, diskSizeGB: 1, creationData: { createOption: "Empty" } }, fast);
    const put = log.find((e) => e.method === "PUT");
    assert.equal(put?.status, 202);
    assert.match(put?.headers.location ?? "", /\/DiskOperations\/[0-9a-f-]+\?.*monitor=true.*api-version=/);
    log.length = 0;
    await f.compute.disks.delete(rg, "lro-disk", fast);
    const del = log.find((e) => e.method === "DELETE");
    assert.equal(del?.status, 202);
    assert.ok(del?.headers.location && del.headers["azure-asyncoperation"]);
    await assert.rejects(f.compute.disks.get(rg, "lro-disk"), (err: { statusCode?: number }) => err.statusCode === 404);
  });

  it("refuses a request without api-version", async () => {
    const token = await f.credential.getToken("https://management.azure.com/.default");
    const res = await fetch(`${f.emu.baseUrl}/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/images/lro-image`, {
      headers: { authorization: `Bearer ${token?.token ?? ""}` },
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "MissingApiVersionParameter");
  });
});

describe("emulator: a poller survives an emulator restart", () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "aio-emu-state-"));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("resumes polling the same operation from its serialized state", async () => {
    const opts = {
      stateDir: dir,
      operationDurationMs: 1500,
      retryAfterSeconds: 0,
      clients: [{ tenantId, clientId, secret: clientSecret }],
    };
    const first = await startEmulator(opts);
    const port = Number(new URL(first.baseUrl).port);
    const blobPort = Number(new URL(first.blobs?.endpoint ?? "").port);
    let state: string;
    try {
      const c = clientsFor(first);
      await c.resources.resourceGroups.createOrUpdate(rg, { location });
      await admin(first, "POST", "virtualMachines", { subscriptionId, resourceGroup: rg, name: "vm", location, osType: "Linux", power: "deallocated" });
      await c.compute.virtualMachines.generalize(rg, "vm");
      const poller = c.compute.images.createOrUpdate(rg, "resumed", {
        location,
        sourceVirtualMachine: { id: `/subscriptions/${subscriptionId}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/vm` },
      }, fast);
      await poller.submitted();
      state = await poller.serialize();
    } finally {
      await first.stop();
    }

    // A new emulator process on the same state folder and ports, and a new client
    const second = await startEmulator({ ...opts, port, blobPort });
    try {
      const c = clientsFor(second);
      const image = await restorePoller(c.compute, state, c.compute.images.createOrUpdate, fast);
      assert.equal(image.provisioningState, "Succeeded");
      assert.equal((await c.compute.images.get(rg, "resumed")).provisioningState, "Succeeded");
    } finally {
      await second.stop();
    }
  });
});
