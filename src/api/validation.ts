// The CRDs' CEL rules, checked again by the controllers for clusters that do not evaluate CEL
// (before Kubernetes 1.25, or with the feature off). Every message is word for word the rule's message
// in crds/, and a unit test runs both over the same table of cases.
import { createHash } from "node:crypto";
import type { ImageCaptureSpec, VmImageSpec, VmImageStatus } from "./generated.ts";

const count = (...present: unknown[]): number => present.filter((p) => p !== undefined).length;

function destinationProblems(destination: VmImageSpec["destination"] | undefined): string[] {
  return destination && count(destination.managedImage, destination.gallery) > 0 ? [] : ["spec.destination needs a managedImage, a gallery, or both"];
}

/** What the VmImage CRD's non-transition rules refuse. */
export function vmImageSpecProblems(spec: VmImageSpec): string[] {
  const problems: string[] = [];
  const src = spec.source;
  if (count(src.marketplace, src.gallery, src.vhd) !== 1) problems.push("spec.source must name exactly one of marketplace, gallery or vhd");
  if (src.gallery && count(src.gallery.id, src.gallery.sharedGalleryImageId, src.gallery.communityGalleryImageId) !== 1) {
    problems.push("spec.source.gallery needs exactly one of id, sharedGalleryImageId or communityGalleryImageId");
  }
  if (src.vhd && count(src.vhd.url, src.vhd.blobUri) !== 1) problems.push("spec.source.vhd needs exactly one of url or blobUri");
  if ((src.vhd?.dataDisks ?? []).some((d) => count(d.url, d.blobUri) !== 1)) problems.push("each of spec.source.vhd.dataDisks needs exactly one of url or blobUri");
  if (src.vhd?.copy === true && (src.vhd.blobUri === undefined || src.vhd.storageAccountId === undefined)) problems.push("spec.source.vhd.copy needs blobUri and storageAccountId");
  if (spec.destination) problems.push(...destinationProblems(spec.destination));
  else if (!src.marketplace) problems.push("spec.destination is required unless the source is a Marketplace image (then status.imageReference names the pinned version)");
  const secure = (spec.features ?? []).some((f) => f.name === "SecurityType" && (f.value.startsWith("TrustedLaunch") || f.value.startsWith("Confidential")));
  if (secure && spec.hyperVGeneration !== undefined && spec.hyperVGeneration !== "V2") problems.push("Trusted Launch and confidential VM images need hyperVGeneration V2");
  return problems;
}

/** What the ImageCapture CRD's non-transition rules refuse. */
export function imageCaptureSpecProblems(spec: ImageCaptureSpec): string[] {
  const problems: string[] = [];
  const vm = spec.virtualMachine;
  if ((vm.id !== undefined) === (vm.resourceGroup !== undefined && vm.name !== undefined)) {
    problems.push("give either virtualMachine.id or virtualMachine.resourceGroup and virtualMachine.name");
  }
  if (spec.generalize?.script !== undefined && spec.generalize.mode !== "RunCommand") problems.push("generalize.script is used only with mode RunCommand");
  problems.push(...destinationProblems(spec.destination));
  return problems;
}

/** JSON with sorted keys: equal values give equal text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return value === undefined ? "null" : JSON.stringify(value);
}

const digest = (value: unknown): string => `sha256:${createHash("sha256").update(canonical(value)).digest("hex").slice(0, 32)}`;

export type SpecFingerprints = NonNullable<VmImageStatus["specFingerprints"]>;

/** Digests of a VmImage's immutable fields, recorded in status the first time the spec is applied. */
export function vmImageFingerprints(spec: VmImageSpec): Required<SpecFingerprints> {
  // Accepting a plan's terms is how a user answers TermsNotAccepted: it is not a change of source.
  const { marketplace, ...others } = spec.source;
  const source = marketplace ? { ...others, marketplace: [marketplace.publisher, marketplace.offer, marketplace.sku, marketplace.version ?? "latest"] } : others;
  return { source: digest(source), placement: digest([spec.location, spec.resourceGroup]) };
}

/** What the VmImage CRD's transition rules refuse, judged against the fingerprints of the first applied spec. */
export function vmImageChangeProblems(applied: SpecFingerprints | undefined, spec: VmImageSpec): string[] {
  if (!applied) return [];
  const now = vmImageFingerprints(spec);
  const problems: string[] = [];
  if (applied.source !== undefined && applied.source !== now.source) problems.push("spec.source is immutable (except marketplace.acceptTerms); create a new VmImage for a different source");
  if (applied.placement !== undefined && applied.placement !== now.placement) {
    problems.push("spec.location and spec.resourceGroup are immutable; create a new VmImage for another place");
  }
  return problems;
}
