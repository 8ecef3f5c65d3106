// The operator's view of its API. The shapes come from src/api/generated.ts, which is generated from
// the CRD schemas (the source of truth); this file only names parts of them.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ImageCaptureSpec, ImageCaptureStatus, VmImageSpec, VmImageStatus } from "./generated.ts";

export type { Condition, ConditionStatus } from "../runtime/conditions.ts";
export type { ImageCaptureSpec, ImageCaptureStatus, VmImageSpec, VmImageStatus } from "./generated.ts";

export type ImageSource = VmImageSpec["source"];
export type MarketplaceSource = NonNullable<ImageSource["marketplace"]>;
export type GallerySource = NonNullable<ImageSource["gallery"]>;
export type VhdSource = NonNullable<ImageSource["vhd"]>;
export type ImageDestination = NonNullable<VmImageSpec["destination"]>;
export type GalleryDestination = NonNullable<ImageDestination["gallery"]>;
export type TargetRegion = NonNullable<GalleryDestination["targetRegions"]>[number];
export type OsType = VmImageSpec["osType"];
export type DeletionPolicy = NonNullable<VmImageSpec["deletionPolicy"]>;
export type TransferStatus = NonNullable<VmImageStatus["transfer"]>;
export type RegionReplication = NonNullable<VmImageStatus["replication"]>[number];
export type ImageReference = NonNullable<VmImageStatus["imageReference"]>;

export interface VmImage extends KubernetesObject {
  spec: VmImageSpec;
  status?: VmImageStatus;
}

/** What the shared destination code needs to know of the object that owns the outputs. */
export type DestinationSpec = Pick<VmImageSpec, "location" | "resourceGroup" | "osType" | "osState" | "hyperVGeneration" | "destination" | "tags" | "features" | "adopt">;

/** The status fields the shared destination code writes. */
export type DestinationStatus = Pick<VmImageStatus, "imageId" | "galleryImageVersionId" | "galleryImageVersion" | "replication" | "imageReference">;

export type GeneralizeMode = NonNullable<NonNullable<ImageCaptureSpec["generalize"]>["mode"]>;
export type CaptureStep = NonNullable<ImageCaptureStatus["steps"]>[number];
export type CaptureStepName = CaptureStep["name"];
export type StepState = CaptureStep["state"];
/** The VM as Validate found it; later steps work from this record, not from the VM. */
export type CapturedVm = NonNullable<ImageCaptureStatus["virtualMachine"]>;
export type CaptureSnapshot = NonNullable<ImageCaptureStatus["snapshots"]>[number];

/** The capture's steps, in the order they run (the same list as the CRD's enum). */
export const CAPTURE_STEPS = [
  "Validate",
  "Backup",
  "Generalize",
  "Deallocate",
  "MarkGeneralized",
  "CreateImage",
  "CreateGalleryVersion",
  "Replicate",
  "Cleanup",
] as const satisfies readonly CaptureStepName[];

export interface ImageCapture extends KubernetesObject {
  spec: ImageCaptureSpec;
  status?: ImageCaptureStatus;
}
