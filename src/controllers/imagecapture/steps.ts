import { CAPTURE_STEPS, type CaptureStep, type CaptureStepName, type ImageCaptureSpec } from "../../api/types.ts";
import { timestamp } from "../../runtime/conditions.ts";

/** The capture's spec with every default applied (the CRD sets them too; older objects may lack them). */
export interface CapturePlan {
  mode: "RunCommand" | "AlreadyGeneralized" | "None";
  backup: boolean;
  retainBackup: boolean;
  includeDataDisks: boolean;
  deleteVm: boolean;
  managedImage: boolean;
  gallery: boolean;
  timeoutMs: number;
}

export function planOf(spec: ImageCaptureSpec): CapturePlan {
  return {
    mode: spec.generalize?.mode ?? "RunCommand",
    backup: spec.backup?.enabled ?? true,
    retainBackup: spec.backup?.retain ?? true,
    includeDataDisks: spec.includeDataDisks ?? true,
    deleteVm: spec.afterCapture === "Delete",
    managedImage: spec.destination.managedImage !== undefined,
    gallery: spec.destination.gallery !== undefined,
    timeoutMs: (spec.generalize?.timeoutSeconds ?? 3600) * 1000,
  };
}

/** The ordered step list for a plan: what does not apply is Skipped from the start. */
export function initialSteps(plan: CapturePlan): CaptureStep[] {
  const applies: Record<CaptureStepName, boolean> = {
    Validate: true,
    Backup: plan.backup,
    Generalize: plan.mode === "RunCommand",
    Deallocate: true,
    MarkGeneralized: plan.mode !== "None",
    CreateImage: plan.managedImage,
    CreateGalleryVersion: plan.gallery,
    Replicate: plan.gallery,
    Cleanup: (plan.backup && !plan.retainBackup) || plan.deleteVm,
  };
  return CAPTURE_STEPS.map((name) => ({ name, state: applies[name] ? "Pending" : "Skipped" }));
}

/** The first step that has not finished (Pending, Running or Failed), if any. */
export function currentStep(steps: readonly CaptureStep[]): CaptureStep | undefined {
  return steps.find((s) => s.state !== "Succeeded" && s.state !== "Skipped");
}

export function startStep(step: CaptureStep, now = Date.now()): void {
  if (step.state === "Pending" || step.state === "Failed") {
    step.state = "Running";
    step.startedAt ??= timestamp(now);
  }
}

export function finishStep(step: CaptureStep, state: "Succeeded" | "Failed", message: string, now = Date.now()): void {
  step.startedAt ??= timestamp(now);
  step.state = state;
  step.finishedAt = timestamp(now);
  step.message = message;
}

/** Steps whose failure can be retried without touching the VM again: they only make outputs. */
export const OUTPUT_STEPS: ReadonlySet<CaptureStepName> = new Set(["CreateImage", "CreateGalleryVersion", "Replicate", "Cleanup"]);
