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

export interface ImageCaptureSpec {
  subscriptionId?: string;
  vm: { resourceGroup: string; name: string };
  osType: OsType;
  imageType?: "OS" | "VM";
  generalize?: { mode?: "RunCommand" | "AlreadyGeneralized" | "Specialized" };
  destination: ImageDestination;
  deletionPolicy?: DeletionPolicy;
}

export interface ImageCaptureStatus {
  observedGeneration?: number;
  step?: string;
  conditions?: Condition[];
  snapshotIds?: string[];
  imageId?: string;
  galleryImageVersionId?: string;
}

export interface ImageCapture extends KubernetesObject {
  spec: ImageCaptureSpec;
  status?: ImageCaptureStatus;
}
