import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ClientSecretCredential, WorkloadIdentityCredential, type AccessToken, type TokenCredential } from "@azure/identity";
import { BlobServiceClient } from "@azure/storage-blob";
import {
  admin,
  clientId,
  startTestEmulator,
  subscriptionId,
  tenantId,
  type EmulatorFixture,
} from "../support/emulator-fixture.ts";

/** A Kubernetes service-account token as the kubelet projects it for workload identity (unsigned is fine: Entra checks the issuer's keys, the emulator checks claims). */
function projectedToken(sub: string, expiresInSeconds = 3600): string {
  const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  return `${enc({ alg: "RS256", kid: "k" })}.${enc({ aud: ["api://AzureADTokenExchange"], iss: "https://oidc.example/cluster", sub, iat: now, exp: now + expiresInSeconds })}.c2ln`;
}

describe("emulator: Entra ID token endpoint with @azure/identity", () => {
  let f: EmulatorFixture;
  let dir: string;

  before(async () => {
    f = await startTestEmulator({ withoutBlobs: false });
    dir = await mkdtemp(join(tmpdir(), "aio-wi-"));
  });

  after(async () => {
    await f.emu.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("issues tokens to ClientSecretCredential that ARM accepts", async () => {
    const group = await f.resources.resourceGroups.createOrUpdate("rg-identity", { location: "westeurope" });
    assert.equal(group.name, "rg-identity");
    assert.equal(group.location, "westeurope");
    const token = await f.credential.getToken("https://management.azure.com/.default");
    assert.ok(token);
    const claims = JSON.parse(Buffer.from(token.token.split(".")[1] ?? "", "base64url").toString()) as Record<string, unknown>;
    assert.equal(claims.iss, `https://sts.windows.net/${tenantId}/`);
    assert.equal(claims.aud, "https://management.azure.com");
    assert.equal(claims.tid, tenantId);
    assert.ok(token.expiresOnTimestamp > Date.now() + 3_600_000);
  });

  it("refuses a wrong secret and an unknown client with Entra's error codes", async () => {
    const wrong = new ClientSecretCredential(tenantId, clientId, "not-the-secret", { authorityHost: f.emu.baseUrl, disableInstanceDiscovery: true });
    await assert.rejects(wrong.getToken("https://management.azure.com/.default"), /AADSTS7000215/);
    const unknown = new ClientSecretCredential(tenantId, "99999999-0000-0000-0000-000000000000", "x", { authorityHost: f.emu.baseUrl, disableInstanceDiscovery: true });
    await assert.rejects(unknown.getToken("https://management.azure.com/.default"), /AADSTS700016/);
  });

  it("exchanges a projected service-account token (workload identity)", async () => {
    const wiClient = "33333333-0000-0000-0000-000000000003";
    await admin(f.emu, "POST", "clients", { tenantId, clientId: wiClient, federatedSubject: "system:serviceaccount:azure-image-operator:controller" });
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, projectedToken("system:serviceaccount:azure-image-operator:controller"));
    const credential = new WorkloadIdentityCredential({ tenantId, clientId: wiClient, tokenFilePath: tokenFile, authorityHost: f.emu.baseUrl, disableInstanceDiscovery: true });
    const resources = new ResourceManagementClient(credential, subscriptionId, { endpoint: f.emu.baseUrl });
    const group = await resources.resourceGroups.get("rg-identity");
    assert.equal(group.name, "rg-identity");

    const otherFile = join(dir, "other");
    await writeFile(otherFile, projectedToken("system:serviceaccount:default:someone-else"));
    const impostor = new WorkloadIdentityCredential({ tenantId, clientId: wiClient, tokenFilePath: otherFile, authorityHost: f.emu.baseUrl, disableInstanceDiscovery: true });
    await assert.rejects(impostor.getToken("https://management.azure.com/.default"), /AADSTS70021/);
  });

  it("ARM refuses a token for another audience and a forged one", async () => {
    const storageToken = await f.credential.getToken("https://storage.azure.com/.default");
    assert.ok(storageToken);
    const fixed = (token: string): TokenCredential => ({
      getToken: (): Promise<AccessToken> => Promise.resolve({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
    });
    const wrongAudience = new ResourceManagementClient(fixed(storageToken.token), subscriptionId, { endpoint: f.emu.baseUrl });
    await assert.rejects(wrongAudience.resourceGroups.get("rg-identity"), (err: { statusCode?: number; code?: string }) =>
      err.statusCode === 401 && err.code === "InvalidAuthenticationTokenAudience");
    const [h, p] = storageToken.token.split(".");
    const forged = new ResourceManagementClient(fixed(`${h ?? ""}.${p ?? ""}.AAAA`), subscriptionId, { endpoint: f.emu.baseUrl });
    await assert.rejects(forged.resourceGroups.get("rg-identity"), (err: { statusCode?: number; code?: string }) =>
      err.statusCode === 401 && err.code === "InvalidAuthenticationToken");
  });

  it("issues storage tokens Azurite accepts for OAuth", async () => {
    const endpoint = f.emu.blobs?.endpoint ?? "";
    const service = new BlobServiceClient(endpoint, f.credential);
    const container = service.getContainerClient("oauth-check");
    await container.createIfNotExists();
    await container.getBlockBlobClient("hello.txt").upload("hi", 2);
    const names: string[] = [];
    for await (const b of container.listBlobsFlat()) names.push(b.name);
    assert.deepEqual(names, ["hello.txt"]);
  });
});
