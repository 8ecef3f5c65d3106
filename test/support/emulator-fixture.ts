import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import { ComputeManagementClient } from "@azure/arm-compute";
import { MarketplaceOrderingAgreements } from "@azure/arm-marketplaceordering";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ClientSecretCredential, type TokenCredential } from "@azure/identity";
import { startEmulator, type Emulator, type EmulatorOptions } from "../../src/emulator/index.ts";

export const subscriptionId = "00000000-0000-0000-0000-00000000a1b2";
export const tenantId = "72f988bf-0000-0000-0000-000000000001";
export const clientId = "11111111-2222-3333-4444-555555555555";
export const clientSecret = "emulator-test-secret";

export interface EmulatorFixture {
  emu: Emulator;
  credential: TokenCredential;
  compute: ComputeManagementClient;
  resources: ResourceManagementClient;
  terms: MarketplaceOrderingAgreements;
}

/** SDK clients pointed at `emu` only by configuration, as the operator's will be. */
export function clientsFor(emu: Emulator): Omit<EmulatorFixture, "emu"> {
  const credential = new ClientSecretCredential(tenantId, clientId, clientSecret, {
    authorityHost: emu.baseUrl,
    disableInstanceDiscovery: true,
  });
  return {
    credential,
    compute: new ComputeManagementClient(credential, subscriptionId, { endpoint: emu.baseUrl }),
    resources: new ResourceManagementClient(credential, subscriptionId, { endpoint: emu.baseUrl }),
    // An AutoRest (HLC) client: request host and token audience are set separately.
    terms: new MarketplaceOrderingAgreements(credential, subscriptionId, { $host: emu.baseUrl, endpoint: emu.baseUrl }),
  };
}

export async function startTestEmulator(opts: EmulatorOptions = {}): Promise<EmulatorFixture> {
  const emu = await startEmulator({
    operationDurationMs: 0,
    retryAfterSeconds: 0,
    replicationDurationMs: 0,
    clients: [{ tenantId, clientId, secret: clientSecret }],
    ...opts,
  });
  return { emu, ...clientsFor(emu) };
}

/** Poll quickly: operations in tests take milliseconds. */
export const fast = { updateIntervalInMs: 20 };

export const uniqueName = (prefix: string): string => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Calls the emulator's admin API (test control, not ARM). */
export async function admin(emu: Emulator, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${emu.baseUrl}/admin/${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin ${method} ${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as unknown) : undefined;
}

/** Runs qemu-img (Debian qemu-utils), the real tool the tests make VHDs with. */
export async function qemuImg(args: string[]): Promise<void> {
  await promisify(execFile)("qemu-img", args);
}

interface RestErrorLike {
  statusCode?: number;
  code?: string;
  message: string;
}

/** Asserts an SDK call fails with ARM's status and error code (and optionally a message). */
export async function refuses(call: Promise<unknown>, status: number, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(call, (err: RestErrorLike) => {
    assert.equal(err.statusCode, status, `status (${err.message})`);
    assert.equal(err.code, code, `code (${err.message})`);
    if (message) assert.match(err.message, message);
    return true;
  });
}
