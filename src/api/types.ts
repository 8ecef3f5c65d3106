import type { KubernetesObject } from "@kubernetes/client-node";

import type { Condition } from "../runtime/conditions.ts";

export type { Condition, ConditionStatus } from "../runtime/conditions.ts";

export interface MarketplaceSource {
  publisher: string;
  offer: string;
  sku: string;
  version?: string;
  /** Accept the image's purchase-plan terms in the subscription when it has a plan. */
  acceptTerms?: boolean;
}

export interface GallerySource {
  id?: string;
  sharedGalleryImageId?: string;
  communityGalleryImageId?: string;
}

export interface VhdSource {
  url?: string;
  blobUri?: string;
  /** Resource ID of the storage account holding blobUri (needed for a gallery version made straight from it). */
  storageAccountId?: string;
  checksum?: string;
  format?: "auto" | "vhd" | "raw";
}

/** Byte-level progress of an import. */
export interface TransferStatus {
  bytesTotal?: number;
  bytesDone?: number;
  bytesSkippedZero?: number;
  percent?: number;
  startedAt?: string;
  bytesPerSecond?: number;
}

export interface ImageSource {
  marketplace?: MarketplaceSource;
  gallery?: GallerySource;
  vhd?: VhdSource;
}

export interface TargetRegion {
  name: string;
  replicaCount?: number;
  storageAccountType?: "Standard_LRS" | "Standard_ZRS" | "Premium_LRS";
}

export interface GalleryDestination {
  galleryName: string;
  imageDefinition: string;
  version?: string;
  identifier?: { publisher?: string; offer?: string; sku?: string };
  targetRegions?: TargetRegion[];
  excludeFromLatest?: boolean;
  endOfLifeDate?: string;
}

export interface RegionReplication {
  region: string;
  state: string;
  progress?: number;
}

export interface ImageDestination {
  managedImage?: { name?: string };
  gallery?: GalleryDestination;
}

export type OsType = "Linux" | "Windows";
export type DeletionPolicy = "Delete" | "Retain";

export interface VmImageSpec {
  subscriptionId?: string;
  location: string;
  resourceGroup: string;
  osType: OsType;
  osState?: "Generalized" | "Specialized";
  hyperVGeneration?: "V1" | "V2";
  source: ImageSource;
  destination: ImageDestination;
  deletionPolicy?: DeletionPolicy;
  tags?: Record<string, string>;
}

/** What a VM or scale set should reference to use the image. */
export interface ImageReference {
  id?: string;
  publisher?: string;
  offer?: string;
  sku?: string;
  version?: string;
}

export interface VmImageStatus {
  observedGeneration?: number;
  conditions?: Condition[];
  imageId?: string;
  galleryImageVersionId?: string;
  galleryImageVersion?: string;
  replication?: RegionReplication[];
  resolvedVersion?: string;
  imageReference?: ImageReference;
  plan?: { publisher: string; product: string; name: string };
  lastError?: { code: string; message: string };
  transfer?: TransferStatus;
}

export interface VmImage extends KubernetesObject {
  spec: VmImageSpec;
  status?: VmImageStatus;
}

/** What the shared destination code needs to know of the object that owns the outputs. */
export interface DestinationSpec {
  location: string;
  resourceGroup: string;
  osType: OsType;
  osState?: "Generalized" | "Specialized";
  hyperVGeneration?: "V1" | "V2";
  destination: ImageDestination;
  tags?: Record<string, string>;
}

/** The status fields the shared destination code writes. */
export type DestinationStatus = Pick<VmImageStatus, "imageId" | "galleryImageVersionId" | "galleryImageVersion" | "replication" | "imageReference">;

export type GeneralizeMode = "RunCommand" | "AlreadyGeneralized" | "None";

export interface ImageCaptureSpec {
  subscriptionId?: string;
  virtualMachine: { id?: string; resourceGroup?: string; name?: string };
  osType?: OsType;
  generalize?: { mode?: GeneralizeMode; script?: string[]; timeoutSeconds?: number };
  backup?: { enabled?: boolean; retain?: boolean };
  includeDataDisks?: boolean;
  /** Resource group of the outputs (default: the VM's). */
  resourceGroup?: string;
  destination: ImageDestination;
  afterCapture?: "Deallocate" | "Delete";
  deletionPolicy?: DeletionPolicy;
  tags?: Record<string, string>;
}

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
] as const;
export type CaptureStepName = (typeof CAPTURE_STEPS)[number];
export type StepState = "Pending" | "Running" | "Succeeded" | "Failed" | "Skipped";

export interface CaptureStep {
  name: CaptureStepName;
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  message?: string;
}

/** The VM as Validate found it; later steps work from this record, not from the VM. */
export interface CapturedVm {
  id: string;
  location: string;
  osType: OsType;
  hyperVGeneration: "V1" | "V2";
  osDiskId: string;
  dataDisks: Array<{ lun: number; id: string }>;
}

export interface CaptureSnapshot {
  /** Absent for the OS disk. */
  lun?: number;
  diskId: string;
  id: string;
}

export interface ImageCaptureStatus extends DestinationStatus {
  observedGeneration?: number;
  /** The generation the capture started with; the spec may not change after that. */
  startedGeneration?: number;
  conditions?: Condition[];
  currentStep?: string;
  steps?: CaptureStep[];
  virtualMachine?: CapturedVm;
  snapshots?: CaptureSnapshot[];
  snapshotIds?: string[];
  /** The Run Command in flight, as the SDK's poller serializes it (operation URLs, no secrets). */
  runCommandOperation?: string;
  lastError?: { code: string; message: string };
}

export interface ImageCapture extends KubernetesObject {
  spec: ImageCaptureSpec;
  status?: ImageCaptureStatus;
}
