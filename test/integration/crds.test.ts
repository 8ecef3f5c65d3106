import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { CustomObjectsApi, PatchStrategy, setHeaderOptions, Watch } from "@kubernetes/client-node";
import { GROUP, VERSION, VMIMAGE } from "../../src/api/group.ts";
import type { VmImage } from "../../src/api/types.ts";
import { ControlPlane } from "../../src/localstack/control-plane.ts";
import { installCrds } from "../../src/localstack/crds.ts";
import { kubectl } from "../support/kubectl.ts";
import { vmImage } from "../support/runtime-fixture.ts";

const namespace = "default";


interface WatchEvent {
  type: string;
  object: VmImage;
}

describe("VmImage CRD on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let api: CustomObjectsApi;
  const ref = { group: GROUP, version: VERSION, namespace, plural: VMIMAGE.plural };

  before(async () => {
    cp = await ControlPlane.start();
    api = cp.kubeConfig().makeApiClient(CustomObjectsApi);
  });

  after(async () => {
    await cp.stop();
  });

  it("runs against kube-apiserver and etcd", async (t) => {
    const version = await cp.version();
    t.diagnostic(`kube-apiserver ${version} at ${cp.server}, etcd at ${cp.etcdUrl}`);
    assert.match(version, /^v1\.\d+\.\d+/);
  });

  it("installs the CRDs, which carry CEL rules, with plain API calls", async () => {
    const names = await installCrds(cp.kubeConfig());
    assert.deepEqual(names.sort(), ["imagecaptures.azureimages.dev", "vmimages.azureimages.dev"]);
    const { stdout } = await kubectl(cp.kubeconfigPath, ["api-resources", "--api-group", GROUP, "-o", "wide"]);
    assert.match(stdout, /vmimages\s+vmimg\s+azureimages\.dev\/v1alpha1\s+true\s+VmImage/);
    assert.match(stdout, /imagecaptures\s+imgcap\s+azureimages\.dev\/v1alpha1\s+true\s+ImageCapture/);
  });

  it("creates with kubectl and client-node, watches, patches /status, and prints the columns", async () => {
    // Given a watch on VmImages from the list's resourceVersion
    const initial = (await api.listNamespacedCustomObject(ref)) as { metadata: { resourceVersion: string } };
    const events: WatchEvent[] = [];
    const waiters: Array<() => void> = [];
    const watch = new Watch(cp.kubeConfig());
    const controller = await watch.watch(
      `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${VMIMAGE.plural}`,
      { resourceVersion: initial.metadata.resourceVersion, allowWatchBookmarks: true },
      (type: string, object: VmImage) => {
        events.push({ type, object });
        for (const w of waiters.splice(0)) w();
      },
      () => {
        // the watch ends when the test aborts it
      },
    );
    const nextEvent = async (match: (e: WatchEvent) => boolean): Promise<WatchEvent> => {
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            reject(new Error("no matching watch event within 10 s"));
          }, 10_000);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    };

    try {
      // When one VmImage is applied with kubectl and another is created with client-node
      const manifest = JSON.stringify(vmImage("from-kubectl"));
      await kubectl(cp.kubeconfigPath, ["apply", "-f", "-"], manifest);
      await api.createNamespacedCustomObject({ ...ref, body: vmImage("from-client") });

      // Then the watch sees both, with the CRD's defaults applied by the server
      const added = await nextEvent((e) => e.type === "ADDED" && e.object.metadata?.name === "from-client");
      assert.equal(added.object.spec.osState, "Generalized");
      assert.equal(added.object.spec.deletionPolicy, "Delete");
      await nextEvent((e) => e.type === "ADDED" && e.object.metadata?.name === "from-kubectl");

      // When the status subresource is merge-patched with an explicit content type
      const status = {
        status: {
          observedGeneration: 1,
          resolvedVersion: "24.04.202611200",
          source: "marketplace Canonical:ubuntu-24_04-lts:server",
          destination: "image",
          conditions: [
            {
              type: "Ready",
              status: "True",
              observedGeneration: 1,
              lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
              reason: "Available",
              message: "image exists",
            },
          ],
        },
      };
      const patched = (await api.patchNamespacedCustomObjectStatus(
        { ...ref, name: "from-client", body: status },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )) as VmImage;

      // Then the status is stored, the generation did not move, and the watch reports the change
      assert.equal(patched.status?.resolvedVersion, "24.04.202611200");
      assert.equal(patched.metadata?.generation, 1);
      const modified = await nextEvent((e) => e.type === "MODIFIED" && e.object.metadata?.name === "from-client");
      assert.equal(modified.object.status?.conditions?.[0]?.reason, "Available");

      // And a spec change sent to /status is ignored, as the subresource contract says
      const ignored = (await api.patchNamespacedCustomObjectStatus(
        { ...ref, name: "from-client", body: { spec: { location: "northeurope" } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )) as VmImage;
      assert.equal(ignored.spec.location, "westeurope");

      // And kubectl prints the printer columns, through the short name and the category
      const { stdout } = await kubectl(cp.kubeconfigPath, ["get", "vmimg", "-n", namespace]);
      const lines = stdout.trim().split("\n");
      assert.match(lines[0] ?? "", /^NAME\s+READY\s+REASON\s+SOURCE\s+DESTINATION\s+VERSION\s+PROGRESS\s+AGE$/);
      assert.match(stdout, /from-client\s+True\s+Available\s+marketplace Canonical:ubuntu-24_04-lts:server\s+image\s+24\.04\.202611200\s+\S+/);
      assert.match(stdout, /from-kubectl\s+\S+\n/);
      const wide = await kubectl(cp.kubeconfigPath, ["get", "vmimg", "-o", "wide", "-n", namespace]);
      assert.match(wide.stdout.split("\n")[0] ?? "", /\bLOCATION\s+IMAGE\b/);
      const category = await kubectl(cp.kubeconfigPath, ["get", "azureimages", "-n", namespace, "-o", "name"]);
      assert.deepEqual(category.stdout.trim().split("\n").sort(), [
        "vmimage.azureimages.dev/from-client",
        "vmimage.azureimages.dev/from-kubectl",
      ]);
    } finally {
      controller.abort();
    }
  });

  it("accepts every sample in crds/samples (server-side dry run)", async () => {
    const { stdout } = await kubectl(cp.kubeconfigPath, ["apply", "--dry-run=server", "-n", namespace, "-f", fileURLToPath(new URL("../../crds/samples/", import.meta.url))]);
    const applied = stdout.trim().split("\n");
    assert.ok(applied.length >= 5, stdout);
    for (const line of applied) assert.match(line, /(created|configured|unchanged) \(server dry run\)$/);
  });

  it("rejects a VmImage that breaks the schema", async () => {
    const bad = vmImage("bad-os");
    (bad.spec as unknown as Record<string, unknown>).osType = "Plan9";
    await assert.rejects(
      kubectl(cp.kubeconfigPath, ["create", "--validate=false", "-f", "-"], JSON.stringify(bad)),
      /spec\.osType: Unsupported value: "Plan9"/,
    );
  });
});
