// Generated from the CRD schemas in crds/ by `npm run generate` (scripts/generate-api.ts). Do not edit:
// change the CRD and generate again. A unit test fails when this file is out of date.

/** The VM to capture and what to make of it. Immutable once created. */
export interface ImageCaptureSpec {
  /** Azure subscription of the VM and the outputs. Defaults to the operator's configured subscription. */
  subscriptionId?: string;
  /** The VM to capture, by resource ID or by resource group and name. */
  virtualMachine: {
    /** Azure resource ID of the VM. */
    id?: string;
    /** Resource group of the VM. */
    resourceGroup?: string;
    /** Name of the VM. */
    name?: string;
  };
  /** Operating system the VM is expected to run; the capture is refused when the VM's differs. Read from the VM when empty. */
  osType?: "Linux" | "Windows";
  /** How the guest is prepared before capture. */
  generalize?: {
    /** RunCommand generalizes the guest through Azure Run Command (Linux: waagent -deprovision+user -force; Windows: Sysprep /generalize /oobe /shutdown /quiet) and needs a running VM. AlreadyGeneralized trusts that the user generalized the guest; the operator deallocates and marks the VM. None captures a specialized image without generalizing (the gallery image definition must be Specialized). */
    mode?: "RunCommand" | "AlreadyGeneralized" | "None";
    /** Script lines run instead of the default generalization command (RunCommand mode only). */
    script?: Array<string>;
    /** How long generalization may take. Sysprep shuts the VM down instead of reporting back, so completion is detected from the power state; past this the capture stops with reason GeneralizeTimeout. */
    timeoutSeconds?: number;
  };
  /** Snapshots of the VM's disks, taken before anything changes the VM. */
  backup?: {
    /** Snapshot the OS disk and every captured data disk first. */
    enabled?: boolean;
    /** Keep the snapshots after a successful capture (they are always kept after a failure). */
    retain?: boolean;
  };
  /** true makes a VM image (OS disk and every data disk); false an OS image (OS disk only). */
  includeDataDisks?: boolean;
  /** Resource group of the outputs and snapshots; defaults to the VM's. */
  resourceGroup?: string;
  /** Leave the VM deallocated, or delete it and its disks once every output is Ready (never before). */
  afterCapture?: "Deallocate" | "Delete";
  /** A Secret in this namespace with the Azure identity to use for this object instead of the operator's. Keys AZURE_TENANT_ID and AZURE_CLIENT_ID, AZURE_CLIENT_SECRET for a service principal (without it the operator's workload-identity token is exchanged for that client, which must trust the operator's service account), optional AZURE_SUBSCRIPTION_ID. The operator needs get on that Secret (a Role and RoleBinding in this namespace). */
  credentialsRef?: {
    /** Name of the Secret. */
    name: string;
  };
  /** What happens to the image outputs when this object is deleted. Snapshots are never deleted with the object. */
  deletionPolicy?: "Delete" | "Retain";
  /** What to create from the VM. At least one of managedImage or gallery. */
  destination: {
    /** A managed image (Microsoft.Compute/images). */
    managedImage?: {
      /** Image name; derived from the namespace, name and uid when empty. */
      name?: string;
    };
    /** An Azure Compute Gallery image version. */
    gallery?: {
      /** Gallery that holds the image definition; created if missing. */
      galleryName: string;
      /** Image definition (gallery image) the version belongs to. */
      imageDefinition: string;
      /** Image version (major.minor.patch), or auto for the next patch version after the highest in the definition (pinned in status once chosen). */
      version?: string;
      /** Publisher, offer and SKU of the image definition when it is created; defaults to the namespace, the definition name and the object name. */
      identifier?: {
        /** Publisher of the image definition. */
        publisher?: string;
        /** Offer of the image definition. */
        offer?: string;
        /** SKU of the image definition. */
        sku?: string;
      };
      /** Regions the version is replicated to; defaults to the image's location. Changes are applied to the existing version. */
      targetRegions?: Array<{
        /** Azure region. */
        name: string;
        /** Number of replicas in the region. */
        replicaCount?: number;
        /** Storage of the replicas. */
        storageAccountType?: "Standard_LRS" | "Standard_ZRS" | "Premium_LRS";
      }>;
      /** Keep this version from being used when a VM asks for the latest version. */
      excludeFromLatest?: boolean;
      /** When the version stops being offered. */
      endOfLifeDate?: string;
    };
  };
  /** Azure tags set on every resource the operator creates. */
  tags?: Record<string, string>;
}

/** Observed state, written by the controller. */
export interface ImageCaptureStatus {
  /** The metadata.generation this status describes. */
  observedGeneration?: number;
  /** The metadata.generation the capture started with. */
  startedGeneration?: number;
  /** Ready, and while true, Reconciling and Stalled (kstatus conventions). */
  conditions?: Array<{
    /** Condition type, for example Ready. */
    type: string;
    /** Status of the condition. */
    status: "True" | "False" | "Unknown";
    /** The metadata.generation the condition was set for. */
    observedGeneration?: number;
    /** When the status last changed. */
    lastTransitionTime: string;
    /** CamelCase reason for the last transition. */
    reason: string;
    /** Human-readable detail. */
    message: string;
  }>;
  /** The first step not finished yet, or Done. */
  currentStep?: string;
  /** The capture's steps in order, each recorded before the next starts. */
  steps?: Array<{
    /** Step name. */
    name: "Validate" | "Backup" | "Generalize" | "Deallocate" | "MarkGeneralized" | "CreateImage" | "CreateGalleryVersion" | "Replicate" | "Cleanup";
    /** Where the step stands. */
    state: "Pending" | "Running" | "Succeeded" | "Failed" | "Skipped";
    /** When the step started. */
    startedAt?: string;
    /** When the step finished. */
    finishedAt?: string;
    /** What the step did or why it failed (Run Command output tail on failure). */
    message?: string;
  }>;
  /** The VM as validation found it. */
  virtualMachine?: {
    /** Azure resource ID of the VM. */
    id: string;
    /** Azure region of the VM and of the outputs. */
    location: string;
    /** Operating system of the VM. */
    osType: "Linux" | "Windows";
    /** Hyper-V generation of the OS disk. */
    hyperVGeneration: "V1" | "V2";
    /** Azure resource ID of the OS disk. */
    osDiskId: string;
    /** Data disks of the VM. */
    dataDisks: Array<{
      /** Logical unit number. */
      lun: number;
      /** Azure resource ID of the disk. */
      id: string;
    }>;
  };
  /** The backup snapshots, one per captured disk. */
  snapshots?: Array<{
    /** LUN of the data disk; absent for the OS disk. */
    lun?: number;
    /** The disk that was snapshotted. */
    diskId: string;
    /** Azure resource ID of the snapshot. */
    id: string;
  }>;
  /** Azure resource IDs of the backup snapshots. */
  snapshotIds?: Array<string>;
  /** Azure resource ID of the managed image. */
  imageId?: string;
  /** Azure resource ID of the gallery image version. */
  galleryImageVersionId?: string;
  /** The gallery image version chosen (auto is pinned here). */
  galleryImageVersion?: string;
  /** Replication of the gallery image version, per region. */
  replication?: Array<{
    /** Azure region. */
    region?: string;
    /** Unknown, Replicating, Completed or Failed. */
    state?: string;
    /** Percent replicated. */
    progress?: number;
  }>;
  /** What a VM or scale set should reference to use this image. */
  imageReference?: {
    /** Resource ID of the image (managed image or gallery image version). */
    id?: string;
    /** Marketplace publisher, when the reference is a Marketplace image. */
    publisher?: string;
    /** Marketplace offer. */
    offer?: string;
    /** Marketplace SKU. */
    sku?: string;
    /** Exact Marketplace version. */
    version?: string;
  };
  /** The last Azure error, without secrets. */
  lastError?: {
    /** Azure error code. */
    code?: string;
    /** Azure error message. */
    message?: string;
  };
}

/** Desired state of the image in Azure. */
export interface VmImageSpec {
  /** Azure subscription that holds the image. Defaults to the operator's configured subscription. */
  subscriptionId?: string;
  /** Azure region the image is created in, for example westeurope. */
  location: string;
  /** Resource group that holds the image; created if missing. */
  resourceGroup: string;
  /** Operating system of the OS disk. */
  osType: "Linux" | "Windows";
  /** Whether the OS disk was generalized (Sysprep, waagent -deprovision) or is a specialized copy of one machine. */
  osState?: "Generalized" | "Specialized";
  /** Hyper-V generation of VMs made from the image (V2 boots with UEFI). */
  hyperVGeneration?: "V1" | "V2";
  /** Features of the image, set on a gallery image definition the operator creates (an existing definition must have them), for example SecurityType TrustedLaunch (which needs hyperVGeneration V2), IsAcceleratedNetworkSupported true, DiskControllerTypes SCSI,NVMe. */
  features?: Array<{
    /** Feature name, for example SecurityType. */
    name: string;
    /** Feature value, for example TrustedLaunch. */
    value: string;
  }>;
  /** Where the image comes from. Exactly one of marketplace, gallery or vhd. */
  source: {
    /** A Marketplace image; version latest is resolved and pinned in status.resolvedVersion. */
    marketplace?: {
      /** Image publisher, for example Canonical. */
      publisher: string;
      /** Image offer, for example ubuntu-24_04-lts. */
      offer: string;
      /** Image SKU, for example server. */
      sku: string;
      /** Exact image version, or latest. */
      version?: string;
      /** Accept the image's purchase-plan terms in the subscription if it has a plan; without it such an image is Stalled with reason TermsNotAccepted. */
      acceptTerms?: boolean;
    };
    /** An existing gallery image version, by Azure resource ID or shared/community gallery ID. */
    gallery?: {
      /** Resource ID of a gallery image version in one of your galleries. */
      id?: string;
      /** ID of a shared gallery image (/SharedGalleries/.../Images/...[/Versions/...]). */
      sharedGalleryImageId?: string;
      /** ID of a community gallery image (/CommunityGalleries/.../Images/...[/Versions/...]). */
      communityGalleryImageId?: string;
    };
    /** A VHD, either streamed from a URL or an existing page blob. */
    vhd?: {
      /** http(s) URL the OS disk image is streamed from; a fixed or dynamic VHD or raw data, optionally gzip- or zstd-compressed (recognized by its first bytes and decompressed on the way; a compressed source is read twice, once to learn its size). */
      url?: string;
      /** URI of an existing page blob holding a fixed VHD whose size is a whole number of MiB; it is registered in place. */
      blobUri?: string;
      /** The data disks of a VM image, each a VHD of its own (url or blobUri, imported like the OS disk, in parallel). The outputs carry them at their LUNs. */
      dataDisks?: Array<{
        /** Logical unit number of the data disk. */
        lun: number;
        /** http(s) URL of the data disk's VHD (fixed, dynamic or raw, optionally gzip or zstd). */
        url?: string;
        /** URI of an existing page blob holding the data disk as a fixed VHD. */
        blobUri?: string;
        /** Expected digest of the data disk's source as downloaded, sha256:<hex>. */
        checksum?: string;
        /** What the data disk's source holds (as for the OS disk). */
        format?: "auto" | "vhd" | "raw";
      }>;
      /** With blobUri, copy the blob into a managed disk first (createOption Import) and make the outputs from that copy, so that they do not depend on the blob, which may change or go afterwards; the copy is deleted once the outputs exist. Needs storageAccountId. Without it the blob is registered in place. */
      copy?: boolean;
      /** With url, upload into a page blob in this container (https://<account>.blob.core.windows.net/<container>, created if missing) with the operator's identity (it needs Storage Blob Data Contributor there) instead of into a temporary managed disk. An interrupted upload resumes where it stopped. The blob is named after the object, kept while the object exists and deleted with it under deletionPolicy Delete. */
      uploadContainerUrl?: string;
      /** Resource ID of the storage account that holds blobUri; needed when a gallery version is made straight from the blob (without a managedImage destination). */
      storageAccountId?: string;
      /** Expected digest of the source as downloaded (for a compressed source, of the compressed file), sha256:<hex>; a mismatch removes the upload and stalls with reason ChecksumMismatch. */
      checksum?: string;
      /** What the source holds. auto tells a fixed or dynamic VHD from raw data by its footer (a server without Range support needs vhd or raw). */
      format?: "auto" | "vhd" | "raw";
    };
  };
  /** What must exist in Azure. At least one of managedImage or gallery. May be left out for a Marketplace source, whose pinned version is then published in status.imageReference for VMs and scale sets to use. */
  destination?: {
    /** A managed image (Microsoft.Compute/images). */
    managedImage?: {
      /** Image name; derived from the namespace, name and uid when empty. */
      name?: string;
    };
    /** An Azure Compute Gallery image version. */
    gallery?: {
      /** Gallery that holds the image definition; created if missing. */
      galleryName: string;
      /** Image definition (gallery image) the version belongs to. */
      imageDefinition: string;
      /** Image version (major.minor.patch), or auto for the next patch version after the highest in the definition (pinned in status once chosen). */
      version?: string;
      /** Publisher, offer and SKU of the image definition when it is created; defaults to the namespace, the definition name and the object name. */
      identifier?: {
        /** Publisher of the image definition. */
        publisher?: string;
        /** Offer of the image definition. */
        offer?: string;
        /** SKU of the image definition. */
        sku?: string;
      };
      /** Regions the version is replicated to; defaults to the image's location. Changes are applied to the existing version. */
      targetRegions?: Array<{
        /** Azure region. */
        name: string;
        /** Number of replicas in the region. */
        replicaCount?: number;
        /** Storage of the replicas. */
        storageAccountType?: "Standard_LRS" | "Standard_ZRS" | "Premium_LRS";
      }>;
      /** Keep this version from being used when a VM asks for the latest version. */
      excludeFromLatest?: boolean;
      /** When the version stops being offered. */
      endOfLifeDate?: string;
    };
  };
  /** Take over a managed image or gallery image version that already exists under the name this object would use and that no object owns (the annotation azureimages.dev/adopt "true" does the same). An adopted resource is tagged as this object's and deleted with it only under deletionPolicy Delete. Without it such a resource is refused (ResourceNotOwned). A resource owned by another object is never taken. */
  adopt?: boolean;
  /** For a source given as latest (Marketplace or shared/community gallery), how often to look for a newer version, e.g. 24h. A newer version is reported (Event NewerVersionAvailable, status.latestCheck) and not used; the image stays built from status.resolvedVersion. Off when empty. */
  latestCheckInterval?: string;
  /** A Secret in this namespace with the Azure identity to use for this object instead of the operator's. Keys AZURE_TENANT_ID and AZURE_CLIENT_ID, AZURE_CLIENT_SECRET for a service principal (without it the operator's workload-identity token is exchanged for that client, which must trust the operator's service account), optional AZURE_SUBSCRIPTION_ID. The operator needs get on that Secret (a Role and RoleBinding in this namespace). */
  credentialsRef?: {
    /** Name of the Secret. */
    name: string;
  };
  /** What happens to the Azure resources when this object is deleted. */
  deletionPolicy?: "Delete" | "Retain";
  /** Azure tags set on every resource the operator creates. */
  tags?: Record<string, string>;
}

/** Observed state, written by the controller. */
export interface VmImageStatus {
  /** The metadata.generation this status describes. */
  observedGeneration?: number;
  /** Ready, and while true, Reconciling and Stalled (kstatus conventions). */
  conditions?: Array<{
    /** Condition type, for example Ready. */
    type: string;
    /** Status of the condition. */
    status: "True" | "False" | "Unknown";
    /** The metadata.generation the condition was set for. */
    observedGeneration?: number;
    /** When the status last changed. */
    lastTransitionTime: string;
    /** CamelCase reason for the last transition. */
    reason: string;
    /** Human-readable detail. */
    message: string;
  }>;
  /** Azure resource ID of the managed image. */
  imageId?: string;
  /** Azure resource ID of the gallery image version. */
  galleryImageVersionId?: string;
  /** The gallery image version chosen (auto is pinned here). */
  galleryImageVersion?: string;
  /** Replication of the gallery image version, per region. */
  replication?: Array<{
    /** Azure region. */
    region?: string;
    /** Unknown, Replicating, Completed or Failed. */
    state?: string;
    /** Percent replicated. */
    progress?: number;
  }>;
  /** The source in one line (printer column), e.g. marketplace Canonical:ubuntu-24_04-lts:server. */
  source?: string;
  /** The destinations in one line (printer column), e.g. image+gallery platform_images/ubuntu. */
  destination?: string;
  /** Exact source version the image was made from. */
  resolvedVersion?: string;
  /** What a VM or scale set should reference to use this image. */
  imageReference?: {
    /** Resource ID of the image (managed image or gallery image version). */
    id?: string;
    /** Marketplace publisher, when the reference is a Marketplace image. */
    publisher?: string;
    /** Marketplace offer. */
    offer?: string;
    /** Marketplace SKU. */
    sku?: string;
    /** Exact Marketplace version. */
    version?: string;
  };
  /** Purchase plan of the source image, which VMs made from it must carry. */
  plan?: {
    /** Plan publisher. */
    publisher?: string;
    /** Plan product (offer). */
    product?: string;
    /** Plan name (SKU). */
    name?: string;
  };
  /** Byte-level progress of a VHD import. */
  transfer?: {
    /** Size of the fixed VHD being written, footer included. */
    bytesTotal?: number;
    /** Bytes handled so far, written or skipped. */
    bytesDone?: number;
    /** Bytes not sent because they were all zeros (a new disk reads as zeros). */
    bytesSkippedZero?: number;
    /** bytesDone as a percentage of bytesTotal. */
    percent?: number;
    /** When the transfer started. */
    startedAt?: string;
    /** Average rate since the start. */
    bytesPerSecond?: number;
  };
  /** The last look for a newer source version (spec.latestCheckInterval). */
  latestCheck?: {
    /** When the source was last resolved again. */
    time?: string;
    /** The newest version offered then. */
    version?: string;
  };
  /** Digests of the fields that cannot change once applied, so that clusters without CEL validation still refuse such changes. */
  specFingerprints?: {
    /** sha256 of spec.source as first applied. */
    source?: string;
    /** sha256 of spec.location and spec.resourceGroup as first applied. */
    placement?: string;
  };
  /** The last Azure error, without secrets. */
  lastError?: {
    /** Azure error code. */
    code?: string;
    /** Azure error message. */
    message?: string;
  };
}
