import type { InstanceViewStatus } from "@azure/arm-compute";
import type { Logger } from "pino";
import { FINALIZER, Reasons } from "../../api/group.ts";
import { imageCaptureSpecProblems } from "../../api/validation.ts";
import type { CaptureStep, CapturedVm, ImageCapture, ImageCaptureStatus, OsType } from "../../api/types.ts";
import type { AzureClients } from "../../azure/clients.ts";
import { AzureError, classify, getOrUndefined, redact } from "../../azure/errors.ts";
import { findCondition, READY, setHealth, type Health } from "../../runtime/conditions.ts";
import type { ReconcileContext, ReconcileRequest, ReconcileResult } from "../../runtime/controller.ts";
import type { EventRecorder } from "../../runtime/events.ts";
import type { Informer } from "../../runtime/informer.ts";
import type { KubeClient, ResourceRef } from "../../runtime/kube-client.ts";
import { removeFinalizer, updateStatus } from "../../runtime/objects.ts";
import { acceptObject, nextPass, reportStalled } from "../shared/accept.ts";
import { currentAzure, withCredentials, type NamespaceCredentials } from "../shared/credentials.ts";
import { ensureGalleryVersion, ensureResourceGroup, forgetResourceGroups, submit, type GalleryDeps, type ImageTarget, type Outcome } from "../shared/gallery.ts";
import { ensureManagedImage, type ManagedImageSource } from "../shared/managed-image.ts";
import { azureName, OWNER_TAG } from "../shared/names.ts";
import { currentStep, finishStep, initialSteps, OUTPUT_STEPS, planOf, startStep, type CapturePlan } from "./steps.ts";

export interface ImageCaptureReconcilerDeps {
  kube: KubeClient;
  ref: ResourceRef;
  informer: Informer<ImageCapture>;
  azure: AzureClients;
  /** Clients from an object's spec.credentialsRef; without it every object uses `azure`. */
  credentials?: NamespaceCredentials;
  events: EventRecorder;
  /** How often a finished capture's outputs are checked, and a stalled one looked at again. */
  driftCheckMs: number;
  /** How soon to look again at a running Azure operation. */
  pollMs: number;
}

/** Default generalization scripts (Run Command). */
export const GENERALIZE_SCRIPTS: Record<OsType, { script: string[] }> = {
  Linux: { script: ["waagent -deprovision+user -force"] },
  Windows: { script: ["& $env:SystemRoot\\System32\\Sysprep\\Sysprep.exe /generalize /oobe /shutdown /quiet"] },
};

/** A refusal found by the controller itself (not by Azure): Stalled with `reason`. */
class CaptureProblem extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

type StepResult = { done: string } | Outcome;

/**
 * Captures a VM, once, as a sequence of recorded steps. Each reconcile works on the first unfinished
 * step only and writes status before the next one starts, so a restart resumes exactly there. Steps
 * with Azure side effects are idempotent by observation: snapshots and outputs have deterministic
 * names (a GET finds what a crashed pass created, the generalization command included: it is a managed
 * Run Command named after the object), and power and generalization are read from the VM's instance
 * view before anything is sent.
 */
export class ImageCaptureReconciler {
  private readonly d: ImageCaptureReconcilerDeps;
  /**
   * Per key, the resourceVersion our last status write was based on. While the cache still shows
   * that version it has not seen the write yet, and acting on it could repeat a finished step.
   */
  private readonly writtenOver = new Map<string, string>();

  /** The Azure clients of the object being reconciled (its credentialsRef, or the operator's). */
  private get azure(): AzureClients {
    return currentAzure(this.d.azure);
  }

  constructor(deps: ImageCaptureReconcilerDeps) {
    this.d = deps;
  }

  readonly reconcile = async (req: ReconcileRequest, ctx: ReconcileContext): Promise<ReconcileResult | undefined> => {
    const obj = this.d.informer.get(req.key);
    if (!obj) {
      this.writtenOver.delete(req.key);
      return undefined;
    }
    if (obj.metadata?.resourceVersion !== undefined && this.writtenOver.get(req.key) === obj.metadata.resourceVersion) {
      return { requeueAfterMs: 100 };
    }
    return withCredentials(
      this.d.credentials,
      obj,
      "Retain",
      async (problem) => {
        await this.recordTransition(obj, { state: "stalled", reason: problem.reason, message: problem.message });
        return reportStalled(this.d.kube, this.d.ref, obj, problem.reason, problem.message, Math.min(this.d.driftCheckMs, 60_000));
      },
      () => this.reconcileObject(req, obj, ctx),
    );
  };

  private readonly reconcileObject = async (req: ReconcileRequest, obj: ImageCapture, ctx: ReconcileContext): Promise<ReconcileResult | undefined> => {
    if (obj.metadata?.deletionTimestamp) return this.finalize(obj, ctx.log);
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) {
      await acceptObject(this.d.kube, this.d.ref, obj, "ImageCapture");
      return undefined;
    }
    const generation = obj.metadata.generation;
    const status: ImageCaptureStatus = structuredClone(obj.status ?? {});
    const plan = planOf(obj.spec);
    let outcome: Outcome;
    const invalid = imageCaptureSpecProblems(obj.spec);
    if (invalid.length > 0 && status.startedGeneration === undefined) {
      // What CEL refuses on newer clusters, refused here for the others.
      outcome = { health: { state: "stalled", reason: Reasons.InvalidSpec, message: invalid.join("; ") } };
    } else if (status.startedGeneration !== undefined && status.startedGeneration !== generation) {
      // Clusters without CEL accept spec changes; the capture goes on only with the spec it started with.
      outcome = {
        health: {
          state: "stalled",
          reason: "SpecImmutable",
          message: `The spec changed after the capture started (generation ${status.startedGeneration}); an ImageCapture runs once. Restore the spec or create a new ImageCapture.`,
        },
      };
    } else {
      if (!status.steps || (status.startedGeneration === undefined && status.observedGeneration !== generation)) {
        // Nothing has changed in Azure yet: a new or edited spec starts from a fresh plan.
        status.steps = initialSteps(plan);
        delete status.virtualMachine;
      }
      outcome = await this.advance(obj, status, plan, ctx.log);
    }
    status.currentStep = currentStep(status.steps ?? [])?.name ?? "Done";
    status.observedGeneration = generation;
    status.conditions = setHealth(status.conditions, outcome.health, generation);
    await this.recordTransition(obj, outcome.health);
    const written = await updateStatus(this.d.kube, this.d.ref, obj, status);
    if (written && obj.metadata.resourceVersion) this.writtenOver.set(req.key, obj.metadata.resourceVersion);
    return nextPass(outcome.health, outcome.requeueAfterMs, this.d.driftCheckMs);
  };

  /** Works on the first unfinished step; a finished step requeues at once so the next starts after it is recorded. */
  private async advance(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, log: Logger): Promise<Outcome> {
    const steps = status.steps ?? [];
    const step = currentStep(steps);
    if (!step) return this.observeOutputs(obj, status);
    if (step.state === "Failed" && !OUTPUT_STEPS.has(step.name)) {
      // A failed step that touched the VM is not retried blindly: it stays failed until the object is recreated.
      return { health: { state: "stalled", reason: `${step.name}Failed`, message: step.message ?? `${step.name} failed.` } };
    }
    const wasPending = step.state === "Pending";
    startStep(step);
    if (wasPending) log.info({ step: step.name }, "capture step started");
    let result: StepResult;
    try {
      result = await this.runStep(obj, status, plan, step);
      delete status.lastError;
    } catch (err) {
      return this.stepFailed(obj, status, step, err);
    }
    if ("done" in result) {
      finishStep(step, "Succeeded", result.done);
      await this.event(obj, "Normal", `${step.name}Succeeded`, `${step.name}: ${result.done}`);
      const next = currentStep(steps);
      if (!next) return this.observeOutputs(obj, status);
      return { health: { state: "reconciling", reason: next.name, message: `${step.name} succeeded; next: ${next.name}.` }, requeueAfterMs: 1 };
    }
    if (wasPending) await this.event(obj, "Normal", `${step.name}Started`, `${step.name}: ${result.health.message}`);
    step.message = result.health.message;
    return result;
  }

  private stepFailed(obj: ImageCapture, status: ImageCaptureStatus, step: CaptureStep, err: unknown): Outcome {
    const problem = err instanceof CaptureProblem ? { kind: "Terminal" as const, code: err.reason, message: err.message, retryAfterMs: undefined } : classify(err);
    if (!(err instanceof CaptureProblem)) {
      status.lastError = { code: problem.code, message: problem.message };
      forgetResourceGroups({ azure: this.azure }, problem);
    }
    if (problem.kind !== "Terminal") {
      step.message = `${problem.code}: ${problem.message}`;
      return { health: { state: "reconciling", reason: problem.code, message: `${step.name}: ${problem.message}` }, requeueAfterMs: Math.max(problem.retryAfterMs ?? 0, 10_000) };
    }
    const generalized = (status.steps ?? []).some((s) => (s.name === "Generalize" || s.name === "MarkGeneralized") && s.state === "Succeeded");
    const kept = status.snapshotIds?.length ? ` The backup snapshots are kept: ${status.snapshotIds.join(", ")}.` : "";
    if (OUTPUT_STEPS.has(step.name)) {
      // The VM is already generalized: outputs are retried (slowly) after the cause is fixed in Azure.
      finishStep(step, "Failed", problem.message);
      const message = `${step.name} failed: ${problem.message}${generalized ? " The VM stays deallocated and generalized." : ""}${kept} Retrying every ${Math.round(this.d.driftCheckMs / 1000)} s.`;
      void this.event(obj, "Warning", `${step.name}Failed`, message);
      return { health: { state: "stalled", reason: problem.code, message }, requeueAfterMs: this.d.driftCheckMs };
    }
    finishStep(step, "Failed", problem.message);
    const advice = step.name === "Validate" ? " Nothing was changed in Azure; fix the cause and recreate the ImageCapture (or wait: it is checked again)." : kept;
    void this.event(obj, "Warning", `${step.name}Failed`, `${step.name} failed: ${problem.message}`);
    // Validation is looked at again later: the VM may still be on its way.
    if (step.name === "Validate") step.state = "Pending";
    return {
      health: { state: "stalled", reason: problem.code, message: `${step.name} failed: ${problem.message}${advice}` },
      ...(step.name === "Validate" ? { requeueAfterMs: this.d.driftCheckMs } : {}),
    };
  }

  private runStep(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, step: CaptureStep): Promise<StepResult> {
    if (step.name === "Validate") return this.validate(obj, status, plan);
    const vm = status.virtualMachine;
    if (!vm) throw new CaptureProblem("InvalidStatus", "status.virtualMachine is missing; recreate the ImageCapture.");
    switch (step.name) {
      case "Backup":
        return this.backup(obj, status, plan, vm);
      case "Generalize":
        return this.generalize(obj, plan, vm, step);
      case "Deallocate":
        return this.deallocate(vm);
      case "MarkGeneralized":
        return this.markGeneralized(vm);
      case "CreateImage":
        return this.createImage(obj, status, plan, vm);
      case "CreateGalleryVersion":
      case "Replicate":
        return this.publish(obj, status, plan, vm, step.name);
      case "Cleanup":
        return this.cleanup(obj, status, plan, vm);
    }
  }

  // ---- Validate: reads only ------------------------------------------------------------------

  private async validate(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan): Promise<StepResult> {
    const { compute, subscriptionId } = this.azure;
    const spec = obj.spec;
    const target = vmTarget(spec.virtualMachine, spec.subscriptionId ?? subscriptionId);
    if (target.subscriptionId.toLowerCase() !== subscriptionId.toLowerCase()) {
      throw new CaptureProblem("SubscriptionNotConfigured", `The VM is in subscription ${target.subscriptionId}; the operator is configured for ${subscriptionId}.`);
    }
    const vm = await getOrUndefined(compute.virtualMachines.get(target.resourceGroup, target.name, { expand: "instanceView" }));
    if (!vm) {
      throw new CaptureProblem("VirtualMachineNotFound", `VM '${target.name}' was not found in resource group '${target.resourceGroup}'.`);
    }
    const osDisk = vm.storageProfile?.osDisk;
    const osType = osDisk?.osType;
    const osDiskId = osDisk?.managedDisk?.id;
    if (!osType || !osDiskId) throw new CaptureProblem("UnsupportedVirtualMachine", `VM '${target.name}' has no managed OS disk; only VMs with managed disks can be captured.`);
    if (spec.osType && spec.osType !== osType) {
      throw new CaptureProblem("OsTypeMismatch", `spec.osType is ${spec.osType} but VM '${target.name}' runs ${osType}.`);
    }
    const dataDisks: CapturedVm["dataDisks"] = [];
    for (const d of vm.storageProfile?.dataDisks ?? []) {
      if (!d.managedDisk?.id) throw new CaptureProblem("UnsupportedVirtualMachine", `Data disk at LUN ${d.lun} of VM '${target.name}' is not a managed disk.`);
      dataDisks.push({ lun: d.lun, id: d.managedDisk.id });
    }
    const { power, generalized } = vmState(vm.instanceView?.statuses);
    if (generalized && plan.mode !== "AlreadyGeneralized") {
      throw new CaptureProblem("AlreadyGeneralized", `VM '${target.name}' is already marked generalized; use generalize.mode AlreadyGeneralized.`);
    }
    if (plan.mode === "RunCommand" && power !== "running") {
      throw new CaptureProblem("VirtualMachineNotRunning", `Run Command needs a running VM; '${target.name}' is ${power ?? "in an unknown power state"}. Start it, or generalize it yourself and use generalize.mode AlreadyGeneralized.`);
    }
    const osDiskRef = groupAndName(osDiskId);
    const disk = await getOrUndefined(compute.disks.get(osDiskRef.resourceGroup, osDiskRef.name));
    const hyperVGeneration = disk?.hyperVGeneration === "V2" ? "V2" : "V1";
    const captured: CapturedVm = { id: vm.id ?? target.id, location: vm.location, osType, hyperVGeneration, osDiskId, dataDisks };
    const g = spec.destination.gallery;
    if (g) {
      const definition = await getOrUndefined(compute.galleryImages.get(spec.resourceGroup ?? target.resourceGroup, g.galleryName, g.imageDefinition));
      const osState = plan.mode === "None" ? "Specialized" : "Generalized";
      if (definition) {
        const mismatch = (
          [
            ["osState", definition.osState, osState],
            ["osType", definition.osType, osType],
            ["hyperVGeneration", definition.hyperVGeneration ?? "V1", hyperVGeneration],
          ] as const
        ).filter(([, have, want]) => have?.toLowerCase() !== want.toLowerCase());
        if (mismatch.length > 0) {
          throw new CaptureProblem(
            "ImageDefinitionMismatch",
            `Image definition '${g.imageDefinition}' has ${mismatch.map(([k, have, want]) => `${k} ${have ?? "(unset)"} but this capture makes ${want}`).join(", ")}${plan.mode === "None" ? " (generalize.mode None captures a Specialized image)" : ""}.`,
          );
        }
      }
    }
    status.virtualMachine = captured;
    status.startedGeneration = obj.metadata?.generation;
    const disks = 1 + (plan.includeDataDisks ? dataDisks.length : 0);
    return { done: `VM ${captured.id} (${osType}, ${power ?? "unknown"}, ${disks} disk${disks === 1 ? "" : "s"} to capture) fits mode ${plan.mode}.` };
  }

  // ---- Backup: one snapshot per captured disk ------------------------------------------------

  private async backup(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, vm: CapturedVm): Promise<StepResult> {
    const { compute } = this.azure;
    const rg = this.outputGroup(obj, vm);
    await ensureResourceGroup(this.destinationDeps(obj), rg, vm.location, obj.metadata?.uid ?? "");
    const disks = capturedDisks(vm, plan);
    const snapshots: NonNullable<ImageCaptureStatus["snapshots"]> = [];
    let pending = 0;
    for (const disk of disks) {
      const name = snapshotName(obj, disk.lun);
      const snap = await getOrUndefined(compute.snapshots.get(rg, name));
      if (!snap) {
        await submit(
          compute.snapshots.createOrUpdate(rg, name, {
            location: vm.location,
            tags: { ...obj.spec.tags, [OWNER_TAG]: obj.metadata?.uid ?? "" },
            incremental: false,
            creationData: { createOption: "Copy", sourceResourceId: disk.id },
          }),
        );
        pending++;
        continue;
      }
      if (snap.tags?.[OWNER_TAG] !== obj.metadata?.uid) {
        throw new CaptureProblem("ResourceNotOwned", `Snapshot '${name}' exists in '${rg}' and was not made for this ImageCapture.`);
      }
      const state = (snap.provisioningState ?? "Succeeded").toLowerCase();
      if (state === "failed") throw new AzureError("Retryable", "SnapshotFailed", `Azure reports snapshot '${name}' as Failed.`);
      if (state !== "succeeded") pending++;
      snapshots.push({ ...(disk.lun === undefined ? {} : { lun: disk.lun }), diskId: disk.id, id: snap.id ?? "" });
    }
    if (pending > 0) {
      return reconciling("Backup", `Snapshotting ${disks.length} disk${disks.length === 1 ? "" : "s"}: ${disks.length - pending} done.`, this.d.pollMs);
    }
    status.snapshots = snapshots;
    status.snapshotIds = snapshots.map((s) => s.id);
    return { done: `${snapshots.length} snapshot${snapshots.length === 1 ? "" : "s"} taken.` };
  }

  // ---- Generalize through Run Command --------------------------------------------------------

  /**
   * Generalization as a managed Run Command (virtualMachines/runCommands), a child resource of the VM
   * with a name derived from this object: a restart finds it with a GET instead of running the script
   * a second time, and its instance view says how the script went (state, exit code, output).
   */
  private async generalize(obj: ImageCapture, plan: CapturePlan, vm: CapturedVm, step: CaptureStep): Promise<StepResult> {
    const { compute } = this.azure;
    const { resourceGroup, name } = vmTarget({ id: vm.id });
    const windows = vm.osType === "Windows";
    const commandName = azureName(obj.metadata, "-generalize");
    const command = await getOrUndefined(compute.virtualMachineRunCommands.getByVirtualMachine(resourceGroup, name, commandName, { expand: "instanceView" }));
    const view = await compute.virtualMachines.instanceView(resourceGroup, name).catch((err: unknown) => {
      throw classify(err);
    });
    const { power } = vmState(view.statuses);
    const stopped = power === "stopped" || power === "deallocated";
    if (!command) {
      if (stopped) {
        throw new CaptureProblem("VirtualMachineNotRunning", `VM '${name}' stopped before the generalization command was sent; nothing was run in it. Start it and recreate the ImageCapture, or generalize it yourself and recreate the ImageCapture with generalize.mode AlreadyGeneralized.`);
      }
      await submit(
        compute.virtualMachineRunCommands.createOrUpdate(resourceGroup, name, commandName, {
          location: vm.location,
          tags: { [OWNER_TAG]: obj.metadata?.uid ?? "" },
          source: { script: (obj.spec.generalize?.script ?? GENERALIZE_SCRIPTS[vm.osType].script).join("\n") },
          asyncExecution: false,
          timeoutInSeconds: Math.round(plan.timeoutMs / 1000),
        }),
      );
      return reconciling("Generalize", windows ? "Sysprep is running; waiting for the VM to shut down." : "waagent -deprovision is running.", this.d.pollMs);
    }
    // Sysprep /shutdown stops the guest agent with the VM: the command never reports; the power state does.
    if (windows && stopped) return { done: "Sysprep finished: the VM shut down." };
    const iv = command.instanceView;
    const state = iv?.executionState ?? "Unknown";
    if (state === "Failed" || state === "TimedOut" || state === "Canceled") {
      const text = redact([iv?.error, iv?.output].filter(Boolean).join("\n").trim());
      const tail = text.length > 600 ? `...${text.slice(-600)}` : text;
      throw new CaptureProblem(
        "RunCommandFailed",
        `The generalization command ended ${state}${iv?.exitCode !== undefined ? ` (exit code ${iv.exitCode})` : ""}; the VM was not changed further and can still be used. Output: ${tail || "(none)"}`,
      );
    }
    if (state === "Succeeded" && !windows) return { done: `waagent -deprovision+user finished (exit code ${iv?.exitCode ?? 0}).` };
    const started = Date.parse(step.startedAt ?? "") || Date.now();
    if (Date.now() - started > plan.timeoutMs) {
      throw new CaptureProblem(
        "GeneralizeTimeout",
        windows
          ? `Sysprep did not shut the VM down within ${plan.timeoutMs / 1000} s (it is ${power ?? "in an unknown state"}). Check C:\\Windows\\System32\\Sysprep\\Panther\\setupact.log on the VM.`
          : `The generalization command did not finish within ${plan.timeoutMs / 1000} s.`,
      );
    }
    return reconciling("Generalize", windows ? `Sysprep is running; the VM is ${power ?? "unknown"}, waiting for it to shut down.` : "waagent -deprovision is running.", this.d.pollMs);
  }

  // ---- Deallocate and mark generalized -------------------------------------------------------

  private async deallocate(vm: CapturedVm): Promise<StepResult> {
    const { compute } = this.azure;
    const { resourceGroup, name } = vmTarget({ id: vm.id });
    const view = await compute.virtualMachines.instanceView(resourceGroup, name).catch((err: unknown) => {
      throw classify(err);
    });
    const { power } = vmState(view.statuses);
    if (power === "deallocated") return { done: "The VM is deallocated." };
    if (power === "deallocating") return reconciling("Deallocate", "The VM is deallocating.", this.d.pollMs);
    await submit(compute.virtualMachines.deallocate(resourceGroup, name));
    return reconciling("Deallocate", "Deallocating the VM.", this.d.pollMs);
  }

  private async markGeneralized(vm: CapturedVm): Promise<StepResult> {
    const { compute } = this.azure;
    const { resourceGroup, name } = vmTarget({ id: vm.id });
    const view = await compute.virtualMachines.instanceView(resourceGroup, name).catch((err: unknown) => {
      throw classify(err);
    });
    if (vmState(view.statuses).generalized) return { done: "The VM is marked generalized." };
    await compute.virtualMachines.generalize(resourceGroup, name).catch((err: unknown) => {
      throw classify(err);
    });
    return { done: "Marked the VM generalized." };
  }

  // ---- Outputs (shared with VmImage) ---------------------------------------------------------

  private target(obj: ImageCapture, plan: CapturePlan, vm: CapturedVm): ImageTarget {
    return {
      kind: "ImageCapture",
      ...(obj.metadata ? { metadata: obj.metadata } : {}),
      spec: {
        location: vm.location,
        resourceGroup: this.outputGroup(obj, vm),
        osType: vm.osType,
        osState: plan.mode === "None" ? "Specialized" : "Generalized",
        hyperVGeneration: vm.hyperVGeneration,
        destination: obj.spec.destination,
        ...(obj.spec.tags ? { tags: obj.spec.tags } : {}),
      },
    };
  }

  private destinationDeps(obj: ImageCapture): GalleryDeps {
    return {
      azure: this.azure,
      ownerTag: OWNER_TAG,
      pollMs: this.d.pollMs,
      driftCheckMs: this.d.driftCheckMs,
      event: (type, reason, message) => this.event(obj, type, reason, message),
    };
  }

  private async createImage(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, vm: CapturedVm): Promise<StepResult> {
    const name = imageName(obj);
    const outcome = await ensureManagedImage(this.destinationDeps(obj), this.target(obj, plan, vm), status, name, () => Promise.resolve(imageSource(plan, vm)));
    return outcome.health.state === "ready" ? { done: `Managed image ${status.imageId ?? name} exists.` } : outcome;
  }

  private async publish(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, vm: CapturedVm, step: "CreateGalleryVersion" | "Replicate"): Promise<StepResult> {
    const source = plan.managedImage && status.imageId
      ? { imageId: status.imageId }
      : plan.includeDataDisks
        ? { imageId: vm.id }
        : { diskId: vm.osDiskId };
    const outcome = await ensureGalleryVersion(this.destinationDeps(obj), this.target(obj, plan, vm), status, () => Promise.resolve(source));
    if (step === "CreateGalleryVersion" && status.galleryImageVersionId) return { done: `Gallery image version ${status.galleryImageVersionId} created.` };
    if (step === "Replicate" && outcome.health.state === "ready") {
      return { done: `Replicated to ${(status.replication ?? []).map((r) => r.region).join(", ") || vm.location}.` };
    }
    return outcome;
  }

  // ---- Cleanup -------------------------------------------------------------------------------

  private async cleanup(obj: ImageCapture, status: ImageCaptureStatus, plan: CapturePlan, vm: CapturedVm): Promise<StepResult> {
    const { compute } = this.azure;
    const done: string[] = [];
    if (plan.backup && !plan.retainBackup) {
      const rg = this.outputGroup(obj, vm);
      for (const disk of capturedDisks(vm, plan)) {
        const name = snapshotName(obj, disk.lun);
        const snap = await getOrUndefined(compute.snapshots.get(rg, name));
        if (!snap) continue;
        if (snap.provisioningState?.toLowerCase() !== "deleting") await submit(compute.snapshots.delete(rg, name));
        return reconciling("Cleanup", `Deleting snapshot '${name}'.`, this.d.pollMs);
      }
      status.snapshotIds = [];
      status.snapshots = [];
      done.push("deleted the backup snapshots");
    }
    if (plan.deleteVm) {
      const { resourceGroup, name } = vmTarget({ id: vm.id });
      const existing = await getOrUndefined(compute.virtualMachines.get(resourceGroup, name));
      if (existing) {
        if (existing.provisioningState?.toLowerCase() !== "deleting") await submit(compute.virtualMachines.delete(resourceGroup, name));
        return reconciling("Cleanup", `Deleting VM '${name}'.`, this.d.pollMs);
      }
      for (const id of [vm.osDiskId, ...vm.dataDisks.map((d) => d.id)]) {
        const target = groupAndName(id);
        const disk = await getOrUndefined(compute.disks.get(target.resourceGroup, target.name));
        if (!disk) continue;
        if (disk.provisioningState?.toLowerCase() !== "deleting") await submit(compute.disks.delete(target.resourceGroup, target.name));
        return reconciling("Cleanup", `Deleting disk '${target.name}'.`, this.d.pollMs);
      }
      done.push("deleted the VM and its disks");
    }
    return { done: done.length ? `${done.join("; ")}.` : "Nothing to clean up." };
  }

  /** A finished capture: its outputs are read once per drift period; one deleted out of band is reported. */
  private async observeOutputs(obj: ImageCapture, status: ImageCaptureStatus): Promise<Outcome> {
    const { compute } = this.azure;
    const vm = status.virtualMachine;
    const rg = vm ? this.outputGroup(obj, vm) : "";
    const missing: string[] = [];
    if (obj.spec.destination.managedImage && !(await getOrUndefined(compute.images.get(rg, imageName(obj))))) missing.push(`managed image '${imageName(obj)}'`);
    const g = obj.spec.destination.gallery;
    if (g && status.galleryImageVersion && !(await getOrUndefined(compute.galleryImageVersions.get(rg, g.galleryName, g.imageDefinition, status.galleryImageVersion)))) {
      missing.push(`gallery image version ${status.galleryImageVersion}`);
    }
    if (missing.length > 0) {
      return {
        health: { state: "stalled", reason: "OutputDeleted", message: `The capture finished, but ${missing.join(" and ")} no longer exist${missing.length === 1 ? "s" : ""} in Azure; a capture runs once: recreate the ImageCapture from a new VM (or restore from the backup snapshots).` },
        requeueAfterMs: this.d.driftCheckMs,
      };
    }
    const outputs = [status.imageId, status.galleryImageVersionId].filter(Boolean).join(" and ");
    return { health: { state: "ready", reason: Reasons.Available, message: `Captured into ${outputs}.` }, requeueAfterMs: this.d.driftCheckMs };
  }

  // ---- Deletion ------------------------------------------------------------------------------

  /**
   * Deleting a capture stops it at a safe point: no further step starts; an Azure operation already
   * running (a snapshot, a Run Command, an image) is let finish before the outputs it makes are
   * deleted (deletion policy Delete) or kept (Retain). Snapshots are kept: after a generalization they
   * are the only way back to the VM.
   */
  private async finalize(obj: ImageCapture, log: Logger): Promise<ReconcileResult | undefined> {
    if (!obj.metadata?.finalizers?.includes(FINALIZER)) return undefined;
    const status = obj.status ?? {};
    const vm = status.virtualMachine;
    if ((obj.spec.deletionPolicy ?? "Retain") === "Delete" && vm) {
      const { compute } = this.azure;
      const rg = this.outputGroup(obj, vm);
      const g = obj.spec.destination.gallery;
      const version = status.galleryImageVersion;
      const name = imageName(obj);
      try {
        for (const [kind, getIt, del] of [
          ...(g && version
            ? [["gallery image version", () => compute.galleryImageVersions.get(rg, g.galleryName, g.imageDefinition, version), () => compute.galleryImageVersions.delete(rg, g.galleryName, g.imageDefinition, version)] as const]
            : []),
          ["image", () => compute.images.get(rg, name), () => compute.images.delete(rg, name)],
        ] as const) {
          const found = await getOrUndefined<{ tags?: Record<string, string>; provisioningState?: string }>(getIt());
          if (!found || found.tags?.[OWNER_TAG] !== obj.metadata.uid) continue;
          const state = (found.provisioningState ?? "Succeeded").toLowerCase();
          if (state === "creating" || state === "updating") return { requeueAfterMs: this.d.pollMs };
          if (state !== "deleting") {
            await del().submitted();
            log.info({ kind }, "deleting Azure resource");
          }
          return { requeueAfterMs: this.d.pollMs };
        }
      } catch (err) {
        const c = classify(err);
        if (c.kind !== "NotFound") throw c;
      }
    }
    const step = currentStep(status.steps ?? []);
    if (step && step.name !== "Validate") {
      const kept = status.snapshotIds?.length ? ` Snapshots kept: ${status.snapshotIds.join(", ")}.` : "";
      await this.event(obj, "Warning", "CaptureAbandoned", `Deleted at step ${step.name} (${step.state}); no further step was started.${kept}`);
    }
    await removeFinalizer(this.d.kube, this.d.ref, obj, FINALIZER);
    return undefined;
  }

  // ---- helpers -------------------------------------------------------------------------------

  private outputGroup(obj: ImageCapture, vm: CapturedVm): string {
    return obj.spec.resourceGroup ?? vmTarget({ id: vm.id }).resourceGroup;
  }

  private async recordTransition(obj: ImageCapture, health: Health): Promise<void> {
    const before = findCondition(obj.status?.conditions, READY);
    const ready = health.state === "ready" ? "True" : "False";
    if (before?.status === ready && before.reason === health.reason) return;
    if (health.state === "reconciling") return; // step Events say it better
    await this.event(obj, health.state === "stalled" ? "Warning" : "Normal", health.reason, health.message);
  }

  private event(obj: ImageCapture, type: "Normal" | "Warning", reason: string, message: string): Promise<void> {
    return this.d.events.record(obj, type, reason, message);
  }
}

function reconciling(reason: string, message: string, requeueAfterMs: number): Outcome {
  return { health: { state: "reconciling", reason, message }, requeueAfterMs };
}

/** Subscription, resource group and name of a VM given by ID or by group and name. */
export function vmTarget(
  ref: { id?: string; resourceGroup?: string; name?: string },
  subscriptionId = "",
): { id: string; subscriptionId: string; resourceGroup: string; name: string } {
  if (ref.id) {
    const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/virtualMachines\/([^/]+)$/i.exec(ref.id);
    if (!m?.[1] || !m[2] || !m[3]) throw new CaptureProblem("InvalidSpec", `'${ref.id}' is not a VM resource ID.`);
    return { id: ref.id, subscriptionId: m[1], resourceGroup: m[2], name: m[3] };
  }
  if (!ref.resourceGroup || !ref.name) throw new CaptureProblem("InvalidSpec", "spec.virtualMachine needs id, or resourceGroup and name.");
  return {
    id: `/subscriptions/${subscriptionId}/resourceGroups/${ref.resourceGroup}/providers/Microsoft.Compute/virtualMachines/${ref.name}`,
    subscriptionId,
    resourceGroup: ref.resourceGroup,
    name: ref.name,
  };
}

/** Power state and generalization from an instance view's statuses. */
export function vmState(statuses: InstanceViewStatus[] | undefined): { power: string | undefined; generalized: boolean } {
  const codes = (statuses ?? []).map((s) => s.code ?? "");
  return {
    power: codes.find((c) => c.startsWith("PowerState/"))?.slice("PowerState/".length),
    generalized: codes.some((c) => c.toLowerCase() === "osstate/generalized"),
  };
}

/** Resource group and name of any resource ID. */
function groupAndName(id: string): { resourceGroup: string; name: string } {
  const m = /\/resourceGroups\/([^/]+)\/.*\/([^/]+)$/i.exec(id);
  if (!m?.[1] || !m[2]) throw new CaptureProblem("InvalidStatus", `'${id}' is not a resource ID.`);
  return { resourceGroup: m[1], name: m[2] };
}

function capturedDisks(vm: CapturedVm, plan: CapturePlan): Array<{ lun?: number; id: string }> {
  return [{ id: vm.osDiskId }, ...(plan.includeDataDisks ? vm.dataDisks : [])];
}

function snapshotName(obj: ImageCapture, lun: number | undefined): string {
  return azureName(obj.metadata, lun === undefined ? "-os" : `-lun${lun}`);
}

function imageName(obj: ImageCapture): string {
  return obj.spec.destination.managedImage?.name || azureName(obj.metadata);
}

/** A managed image from the generalized VM (OS and data disks), or from its disks (OS image, specialized). */
function imageSource(plan: CapturePlan, vm: CapturedVm): ManagedImageSource {
  if (plan.includeDataDisks && plan.mode !== "None") return { sourceVirtualMachine: { id: vm.id }, hyperVGeneration: vm.hyperVGeneration };
  return {
    hyperVGeneration: vm.hyperVGeneration,
    storageProfile: {
      osDisk: { osType: vm.osType, osState: plan.mode === "None" ? "Specialized" : "Generalized", managedDisk: { id: vm.osDiskId } },
      dataDisks: plan.includeDataDisks ? vm.dataDisks.map((d) => ({ lun: d.lun, managedDisk: { id: d.id } })) : [],
    },
  };
}
