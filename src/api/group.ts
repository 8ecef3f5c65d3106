/** API group, version and resource names of the operator's custom resources. */
export const GROUP = "azureimages.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;

export const VMIMAGE = { kind: "VmImage", plural: "vmimages", shortName: "vmimg" } as const;
export const IMAGECAPTURE = { kind: "ImageCapture", plural: "imagecaptures", shortName: "imgcap" } as const;

/** The category both kinds belong to: `kubectl get azureimages` lists them together. */
export const CATEGORY = "azureimages";

/** Finalizer that holds a VmImage or ImageCapture until its Azure resources are handled. */
export const FINALIZER = `${GROUP}/finalizer`;

/** Condition reasons (CamelCase constants, as Kubernetes conventions ask). */
export const Reasons = {
  Available: "Available",
  CreatingDisk: "CreatingDisk",
  CreatingImage: "CreatingImage",
  Uploading: "Uploading",
  Deleting: "Deleting",
  InvalidSpec: "InvalidSpec",
  ImageNotFound: "ImageNotFound",
  TermsNotAccepted: "TermsNotAccepted",
} as const;
