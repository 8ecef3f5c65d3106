import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { ContainerClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { isAlive } from "../../src/localstack/processes.ts";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { gzipSync, zstdCompressSync } from "node:zlib";
import { FileServer } from "../support/file-server.ts";
import { kubectl } from "../support/kubectl.ts";

const start = fileURLToPath(new URL("../../src/localstack/start.ts", import.meta.url));
const sample = fileURLToPath(new URL("../../crds/samples/vmimage-marketplace.yaml", import.meta.url));
const captureSample = fileURLToPath(new URL("../../crds/samples/imagecapture-linux.yaml", import.meta.url));
const windowsSample = fileURLToPath(new URL("../../crds/samples/imagecapture-windows.yaml", import.meta.url));
const samplesDir = fileURLToPath(new URL("../../crds/samples/", import.meta.url));

const alive = isAlive;

/** Process ids of `pid`'s descendants, from /proc. */
async function descendants(pid: number): Promise<number[]> {
  const { readdir, readFile } = await import("node:fs/promises");
  const parents = new Map<number, number>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // the process ended meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, parent] of parents) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

describe("npm start: the whole local stack, used with kubectl", () => {
  let home: string;

  before(async () => {
    // A HOME without ~/.kube/config, and no Azure credentials: the stack must start everything itself.
    home = await mkdtemp(join(tmpdir(), "aio-home-"));
  });

  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it("starts, reconciles every VmImage and ImageCapture sample it can reach to Ready, deletes them, and stops everything on Ctrl-C", async (t) => {
    const unset = new Set(["KUBECONFIG", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_FEDERATED_TOKEN_FILE", "KUBERNETES_SERVICE_HOST"]);
    const env: NodeJS.ProcessEnv = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !unset.has(k))),
      HOME: home,
      // The control-plane cache stays where it is.
      XDG_CACHE_HOME: process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? "", ".cache"),
    };
    const started = Date.now();
    const stack = spawn(process.execPath, [start, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"], { env, stdio: ["ignore", "pipe", "pipe"] });
    const output: string[] = [];
    let kubeconfig = "";
    let readyLine = "";
    const ready = new Promise<void>((resolve, reject) => {
      createInterface({ input: stack.stdout }).on("line", (line) => {
        output.push(line);
        const m = /export KUBECONFIG=(\S+)/.exec(line);
        if (m) kubeconfig = m[1] ?? "";
        if (line.startsWith("Ready in")) readyLine = line;
        if (line.startsWith("Ctrl-C stops everything")) resolve();
      });
      stack.once("exit", (code) => {
        reject(new Error(`npm start exited (${String(code)}):\n${output.join("\n")}`));
      });
    });
    createInterface({ input: stack.stderr }).on("line", (line) => output.push(line));
    try {
      await ready;
      t.diagnostic(`${readyLine} (measured from spawn: ${Date.now() - started} ms)`);
      assert.ok(kubeconfig, "a KUBECONFIG path is printed");

      // As the printed instructions say
      await kubectl(kubeconfig, ["apply", "-f", sample]);
      await kubectl(kubeconfig, ["wait", "--for=condition=Ready", "vmimg/ubuntu-2404", "--timeout=90s"]);
      const { stdout } = await kubectl(kubeconfig, ["get", "vmimg", "ubuntu-2404", "-o", "jsonpath={.status.resolvedVersion} {.status.imageId}"]);
      assert.match(stdout, /^24\.04\.\d+ \/subscriptions\/.+\/providers\/Microsoft\.Compute\/images\/default-ubuntu-2404-[0-9a-f]{8}$/);
      await kubectl(kubeconfig, ["delete", "-f", sample, "--timeout=60s"]);

      // The other VmImage samples: a gallery destination in two regions, a plan image whose terms the
      // sample accepts, a VHD URL, and a VM image with two data disks uploaded into page blobs. Their
      // example.com URLs point at qemu-img images served here instead (zstd- and gzip-compressed where the
      // sample's names say so), and the staging storage account is the emulator's Azurite account.
      const qemu = (args: string[]) => promisify(execFile)("qemu-img", args);
      await qemu(["create", "-f", "vpc", "-o", "subformat=fixed,force_size=on", join(home, "appliance-2.4.vhd"), "24M"]);
      await qemu(["create", "-f", "vpc", "-o", "subformat=fixed,force_size=on", join(home, "os.vhd"), "16M"]);
      await qemu(["create", "-f", "vpc", "-o", "subformat=dynamic", join(home, "cache.vhd"), "8M"]);
      await qemu(["create", "-f", "vpc", "-o", "subformat=fixed,force_size=on", join(home, "tools.vhd"), "4M"]);
      await writeFile(join(home, "os.vhd.zst"), zstdCompressSync(await readFile(join(home, "os.vhd"))));
      await writeFile(join(home, "tools.vhd.gz"), gzipSync(await readFile(join(home, "tools.vhd"))));
      const printed = /blobs at (https:\/\/\S+\/devstoreaccount1), CA (\S+)/.exec(output.join("\n"));
      const blobs = printed?.[1];
      const caFile = printed?.[2];
      assert.ok(blobs && caFile, "npm start prints where its blobs are and its CA");
      // The VHD the blob sample registers, put into Azurite as a build pipeline would (Azurite's
      // well-known development key; the emulator's CA trusted by this process).
      tls.setDefaultCACertificates([...tls.getCACertificates("default"), await readFile(caFile, "utf8")]);
      const devKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
      const vhds = new ContainerClient(`${blobs}/vhds`, new StorageSharedKeyCredential("devstoreaccount1", devKey));
      await vhds.createIfNotExists();
      const appliance = await readFile(join(home, "appliance-2.4.vhd"));
      const page = vhds.getPageBlobClient("appliance-2.4.vhd");
      await page.create(appliance.length);
      for (let off = 0; off < appliance.length; off += 4 * 1024 * 1024) {
        const piece = appliance.subarray(off, off + 4 * 1024 * 1024);
        await page.uploadPages(piece, off, piece.length);
      }
      const files = await FileServer.start(home);
      try {
        const rewrite = async (name: string, replacements: Array<[string | RegExp, string]>) => {
          let text = await readFile(join(samplesDir, name), "utf8");
          for (const [from, to] of replacements) text = text.replaceAll(from, to);
          await writeFile(join(home, name), text);
          return join(home, name);
        };
        const vhdSample = await rewrite("vmimage-vhd-url.yaml", [["https://downloads.example.com", files.url]]);
        const dataDiskSample = await rewrite("vmimage-vhd-datadisks.yaml", [
          ["https://artifacts.example.com/build-agent", files.url],
          ["https://imagestaging.blob.core.windows.net", blobs],
          [/storageAccounts\/imagestaging/g, "storageAccounts/devstoreaccount1"],
        ]);
        const blobSample = await rewrite("vmimage-blob.yaml", [
          ["https://imagestaging.blob.core.windows.net", blobs],
          [/storageAccounts\/imagestaging/g, "storageAccounts/devstoreaccount1"],
        ]);
        const more = [
          ...["vmimage-gallery.yaml", "vmimage-marketplace-plan.yaml", "vmimage-marketplace-reference.yaml", "vmimage-community-gallery.yaml"].flatMap((f) => ["-f", join(samplesDir, f)]),
          ...[vhdSample, dataDiskSample, blobSample].flatMap((f) => ["-f", f]),
        ];
        await kubectl(kubeconfig, ["apply", ...more]);
        const names = ["ubuntu-golden", "cis-ubuntu-2204", "ubuntu-2404-pinned", "debian-12-community", "appliance-2-4", "build-agent-vm", "appliance-from-blob"];
        await kubectl(kubeconfig, ["wait", "--for=condition=Ready", ...names.map((n) => `vmimg/${n}`), "--timeout=150s"]);
        const pinned = await kubectl(kubeconfig, ["get", "vmimg", "ubuntu-2404-pinned", "-o", "jsonpath={.status.imageReference.version} {.status.imageId}"]);
        assert.match(pinned.stdout, /^24\.04\.\d+ $/, "a version to use, and no image made");
        const fromBlob = await kubectl(kubeconfig, ["get", "vmimg", "appliance-from-blob", "-o", "jsonpath={.status.imageId}"]);
        assert.match(fromBlob.stdout, /\/providers\/Microsoft\.Compute\/images\//);
        const vmImage = await kubectl(kubeconfig, ["get", "vmimg", "build-agent-vm", "-o", "jsonpath={.status.transfer.percent} {.status.galleryImageVersionId}"]);
        if (!vmImage.stdout.startsWith("100 ")) {
          const detail = await kubectl(kubeconfig, ["get", "vmimg", "build-agent-vm", "-o", "jsonpath={.status.transfer}"]);
          const events = await kubectl(kubeconfig, ["get", "events", "--field-selector", "involvedObject.name=build-agent-vm", "-o", "custom-columns=REASON:.reason,MESSAGE:.message"]);
          t.diagnostic(`transfer ${detail.stdout}\n${events.stdout}`);
        }
        assert.match(vmImage.stdout, /^100 \/subscriptions\/.+\/galleries\/platform_images\/images\/build-agent-vm\/versions\/1\.0\.0$/);
        await kubectl(kubeconfig, ["delete", ...more, "--timeout=60s"]);
      } finally {
        await files.stop();
      }

      // The capture samples, against the VMs npm start seeds for them.
      await kubectl(kubeconfig, ["apply", "-f", captureSample, "-f", windowsSample]);
      await kubectl(kubeconfig, ["wait", "--for=condition=Ready", "imgcap/build-vm-capture", "imgcap/windows-golden-capture", "--timeout=150s"]);
      const table = await kubectl(kubeconfig, ["get", "imgcap", "build-vm-capture"]);
      assert.match(table.stdout, /build-vm-capture\s+True\s+Done\s+Available/);
      const steps = await kubectl(kubeconfig, ["get", "imgcap", "build-vm-capture", "-o", "jsonpath={range .status.steps[*]}{.name}={.state} {end}"]);
      assert.equal(
        steps.stdout.trim(),
        "Validate=Succeeded Backup=Succeeded Generalize=Succeeded Deallocate=Succeeded MarkGeneralized=Succeeded CreateImage=Succeeded CreateGalleryVersion=Succeeded Replicate=Succeeded Cleanup=Skipped",
      );
      const windows = await kubectl(kubeconfig, ["get", "imgcap", "windows-golden-capture", "-o", "jsonpath={.status.currentStep} {.status.steps[?(@.name==\"Cleanup\")].message}"]);
      assert.equal(windows.stdout, "Done deleted the VM and its disks.");
      await kubectl(kubeconfig, ["delete", "-f", captureSample, "-f", windowsSample, "--timeout=60s"]);
    } finally {
      // Ctrl-C
      const children = await descendants(stack.pid ?? 0);
      if (stack.exitCode === null) {
        stack.kill("SIGINT");
        await once(stack, "exit");
      }
      const deadline = Date.now() + 15_000;
      while (children.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(children.filter(alive), [], "nothing left running");
    }
  });
});
