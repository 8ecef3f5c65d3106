import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { KubeConfig } from "@kubernetes/client-node";
import { loadAll } from "js-yaml";
import { GROUP, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { VmImage } from "../../src/api/types.ts";
import { createAzureClients } from "../../src/azure/clients.ts";
import { registerControllers } from "../../src/controllers/index.ts";
import { startEmulator, type Emulator } from "../../src/emulator/index.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { KubeApiError, KubeClient, objectPath } from "../../src/runtime/kube-client.ts";
import { Manager } from "../../src/runtime/manager.ts";
import { Metrics } from "../../src/runtime/metrics.ts";
import { kubectl } from "../support/kubectl.ts";
import { clientFor, eventually, testLogger } from "../support/runtime-fixture.ts";

const deployDir = fileURLToPath(new URL("../../deploy/", import.meta.url));
const overlays = ["base", "overlays/workload-identity", "overlays/client-secret"];

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
  spec?: unknown;
}

describe("deploy/: kustomize overlays against a real API server", () => {
  let cp: ControlPlane;
  const rendered = new Map<string, K8sObject[]>();

  before(async () => {
    cp = await ControlPlane.start();
    for (const o of overlays) {
      const { stdout } = await kubectl(cp.kubeconfigPath, ["kustomize", `${deployDir}${o}`]);
      rendered.set(o, loadAll(stdout) as K8sObject[]);
    }
  });

  after(async () => {
    await cp.stop();
  });

  it("render, and the server accepts every object in a dry run", async (t) => {
    const admin = clientFor(cp);
    const policyV1 = await admin.get("/apis/policy/v1").then(() => true, () => false);
    await kubectl(cp.kubeconfigPath, ["create", "namespace", "azure-image-operator"]);
    await installCrds(cp.kubeConfig());
    for (const [overlay, objects] of rendered) {
      const kinds = objects.map((o) => o.kind);
      for (const k of ["Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Role", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget"]) {
        assert.ok(kinds.includes(k), `${overlay} renders a ${k}`);
      }
      // This API server (1.20) predates policy/v1; the PodDisruptionBudget is checked on servers that have it.
      const checkable = objects.filter((o) => policyV1 || o.apiVersion !== "policy/v1");
      const { stdout } = await kubectl(cp.kubeconfigPath, ["apply", "--dry-run=server", "--validate=false", "-f", "-"], checkable.map((o) => JSON.stringify(o)).join("\n"));
      const lines = stdout.trim().split("\n");
      assert.equal(lines.length, checkable.length, stdout);
      for (const line of lines) assert.match(line, /\(server dry run\)$/);
      t.diagnostic(`${overlay}: ${checkable.length} objects accepted${policyV1 ? "" : " (PodDisruptionBudget policy/v1 not served by this API server)"}`);
    }
    admin.close();
  });

  it("harden the pod: non-root, read-only root, no privilege escalation, no capabilities, seccomp", () => {
    const deployment = rendered.get("base")?.find((o) => o.kind === "Deployment") as unknown as {
      spec: { replicas: number; template: { spec: { securityContext: Record<string, unknown>; containers: Array<{ securityContext: Record<string, unknown>; args: string[] }> } } };
    };
    const pod = deployment.spec.template.spec;
    assert.equal(deployment.spec.replicas, 2);
    assert.deepEqual(pod.securityContext, { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    assert.deepEqual(pod.containers[0]?.securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
    assert.deepEqual(pod.containers[0]?.args, ["--leader-elect"]);
  });

  it("grant the operator what it uses, and no access to Secrets", () => {
    const roles = (rendered.get("base") ?? []).filter((o) => o.kind === "ClusterRole" || o.kind === "Role");
    const grants = roles.flatMap((r) => r.rules ?? []).flatMap((rule) => rule.resources.map((res) => `${rule.apiGroups.join(",")}/${res}: ${rule.verbs.join(",")}`));
    assert.deepEqual(grants.sort(), [
      "/events: create,patch",
      "azureimages.dev/imagecaptures/finalizers: update",
      "azureimages.dev/imagecaptures/status: get,patch",
      "azureimages.dev/imagecaptures: get,list,watch,patch",
      "azureimages.dev/vmimages/finalizers: update",
      "azureimages.dev/vmimages/status: get,patch",
      "azureimages.dev/vmimages: get,list,watch,patch",
      "coordination.k8s.io/leases: get,create,update",
    ]);
  });

  it("the operator, with only the rendered RBAC, leads and reconciles a VmImage to Ready", async () => {
    // Apply the base for real (without the Deployment: no kubelet here), then act as its service account.
    const objects = (rendered.get("base") ?? []).filter((o) => !["Deployment", "CustomResourceDefinition", "Namespace", "PodDisruptionBudget"].includes(o.kind));
    await kubectl(cp.kubeconfigPath, ["apply", "--validate=false", "-f", "-"], objects.map((o) => JSON.stringify(o)).join("\n"));
    const admin = clientFor(cp);
    const token = await admin.create<{ status: { token: string } }>(
      "/api/v1/namespaces/azure-image-operator/serviceaccounts/azure-image-operator/token",
      { apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest", spec: { expirationSeconds: 3600 } } as never,
    );
    const adminKc = cp.kubeConfig();
    const cluster = adminKc.getCurrentCluster();
    assert.ok(cluster);
    const saKc = new KubeConfig();
    saKc.loadFromOptions({
      clusters: [cluster],
      users: [{ name: "operator", token: token.status.token }],
      contexts: [{ name: "operator", cluster: cluster.name, user: "operator" }],
      currentContext: "operator",
    });
    const secrets = await new KubeClient(saKc).get("/api/v1/namespaces/azure-image-operator/secrets").then(
      () => "allowed",
      (e: unknown) => (e instanceof KubeApiError ? e.code : "error"),
    );
    assert.equal(secrets, 403, "no access to Secrets");

    const creds = { subscriptionId: "00000000-0000-0000-0000-0000000000f1", tenantId: "00000000-0000-0000-0000-0000000000f2", clientId: "00000000-0000-0000-0000-0000000000f3", clientSecret: "rbac-test" };
    const team = { tenantId: "00000000-0000-0000-0000-0000000000e1", clientId: "00000000-0000-0000-0000-0000000000e2", secret: "team-a-rbac" };
    const emu: Emulator = await startEmulator({
      operationDurationMs: 0,
      retryAfterSeconds: 0,
      clients: [
        { tenantId: creds.tenantId, clientId: creds.clientId, secret: creds.clientSecret },
        { tenantId: team.tenantId, clientId: team.clientId, secret: team.secret },
      ],
    });
    const log = testLogger();
    const metrics = new Metrics();
    const kube = new KubeClient(saKc);
    const manager = new Manager({ client: kube, log, metrics, leaderElection: { namespace: "azure-image-operator", name: "azure-image-operator", identity: "rbac-test" } });
    const azureConfig = { ...creds, federatedTokenFile: undefined, authorityHost: emu.baseUrl, resourceManagerEndpoint: emu.baseUrl, caFile: undefined };
    const azure = createAzureClients(azureConfig);
    registerControllers(manager, { kube, azure, log, metrics, azureConfig }, { namespace: "", workers: 2, resyncPeriodMs: 600_000, pollMs: 200 });
    await manager.start();
    try {
      await kubectl(cp.kubeconfigPath, ["apply", "-f", fileURLToPath(new URL("../../crds/samples/vmimage-marketplace.yaml", import.meta.url))]);
      const ref = { group: GROUP, version: VERSION, plural: VMIMAGE.plural };
      await eventually("Ready under the operator's own RBAC", async () => {
        const o = await admin.get<VmImage>(objectPath(ref, "default", "ubuntu-2404"));
        return o.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
      }, 60_000);
      await kubectl(cp.kubeconfigPath, ["delete", "vmimg", "ubuntu-2404", "--timeout=30s"]);

      // Per-namespace credentials: refused until the namespace grants `get` on exactly that Secret.
      await kubectl(cp.kubeconfigPath, ["create", "namespace", "team-a"]);
      await kubectl(cp.kubeconfigPath, ["-n", "team-a", "create", "secret", "generic", "azure-credentials", `--from-literal=AZURE_TENANT_ID=${team.tenantId}`, `--from-literal=AZURE_CLIENT_ID=${team.clientId}`, `--from-literal=AZURE_CLIENT_SECRET=${team.secret}`]);
      const teamImage = { apiVersion: `${GROUP}/${VERSION}`, kind: VMIMAGE.kind, metadata: { name: "team-image", namespace: "team-a" }, spec: { location: "westeurope", resourceGroup: "team-a", osType: "Linux", credentialsRef: { name: "azure-credentials" }, source: { marketplace: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server" } }, destination: { managedImage: {} } } };
      await kubectl(cp.kubeconfigPath, ["apply", "-f", "-"], JSON.stringify(teamImage));
      const teamReady = async () => (await admin.get<VmImage>(objectPath(ref, "team-a", "team-image"))).status?.conditions?.find((c) => c.type === "Ready");
      await eventually("CredentialsForbidden", async () => (await teamReady())?.reason === "CredentialsForbidden", 30_000);
      await kubectl(cp.kubeconfigPath, ["apply", "-f", fileURLToPath(new URL("../../deploy/examples/namespace-credentials.yaml", import.meta.url))]);
      await kubectl(cp.kubeconfigPath, ["annotate", "vmimg", "-n", "team-a", "team-image", "retry=1"]);
      await eventually("Ready with the namespace's credentials", async () => (await teamReady())?.status === "True", 60_000);
      await kubectl(cp.kubeconfigPath, ["delete", "vmimg", "-n", "team-a", "team-image", "--timeout=30s"]);
    } finally {
      await manager.stop();
      await emu.stop();
      admin.close();
    }
  });
});
