import { isDeepStrictEqual } from "node:util";
import type { Image } from "@azure/arm-compute";
import type { DestinationStatus } from "../../api/types.ts";
import { AzureError, getOrUndefined } from "../../azure/errors.ts";
import { adopting, submit, type GalleryDeps, type ImageTarget, type Outcome } from "./gallery.ts";

/** What a new managed image is made from, in Azure's terms (a generalized VM, or disks/blobs). */
export type ManagedImageSource = Pick<Image, "sourceVirtualMachine" | "storageProfile" | "hyperVGeneration">;

/**
 * Makes a managed image named `name` exist in the object's resource group: observed with one GET,
 * created from what `source` brings into being (asked for only when the image is missing), tags kept
 * in line by an update. An image with that name that this object did not create is never touched.
 */
export async function ensureManagedImage(
  d: GalleryDeps,
  obj: ImageTarget,
  status: DestinationStatus,
  name: string,
  source: () => Promise<Outcome | ManagedImageSource>,
): Promise<Outcome> {
  const { compute } = d.azure;
  const rg = obj.spec.resourceGroup;
  const uid = obj.metadata?.uid ?? "";
  const image = await getOrUndefined(compute.images.get(rg, name));
  if (image) {
    if (image.tags?.[d.ownerTag] !== uid) {
      if (!adopting(obj) || image.tags?.[d.ownerTag]) {
        throw new AzureError(
          "Terminal",
          "ResourceNotOwned",
          `Managed image '${name}' in resource group '${rg}' exists and was not created for this ${obj.kind ?? "object"}; choose another spec.destination.managedImage.name${image.tags?.[d.ownerTag] ? " (it belongs to another object)" : ", or set spec.adopt: true to take it over"}.`,
        );
      }
      // Adopted: from now on it is this object's, and deleted with it only under deletionPolicy Delete.
      await submit(compute.images.update(rg, name, { tags: { ...image.tags, [d.ownerTag]: uid } }));
      await d.event("Normal", "Adopted", `Adopted the existing managed image '${name}'.`);
      return { health: { state: "reconciling", reason: "Adopting", message: `Adopting managed image '${name}'.` }, requeueAfterMs: d.pollMs };
    }
    const state = (image.provisioningState ?? "Succeeded").toLowerCase();
    if (state === "failed") {
      throw new AzureError("Terminal", "ImageCreationFailed", `Azure reports managed image '${name}' as Failed.`);
    }
    if (state !== "succeeded") {
      return { health: { state: "reconciling", reason: "CreatingImage", message: `Managed image '${name}' is ${image.provisioningState ?? ""}.` }, requeueAfterMs: d.pollMs };
    }
    status.imageId = image.id;
    status.imageReference = { id: image.id };
    const wanted = obj.spec.tags ?? {};
    const have = Object.fromEntries(Object.entries(image.tags ?? {}).filter(([k]) => k !== d.ownerTag));
    if (!isDeepStrictEqual(have, wanted)) {
      await submit(compute.images.update(rg, name, { tags: { ...wanted, [d.ownerTag]: uid } }));
    }
    return { health: { state: "ready", reason: "Available", message: `Managed image '${name}' exists.` }, requeueAfterMs: d.driftCheckMs };
  }

  const made = await source();
  if ("health" in made) return made;
  await submit(
    compute.images.createOrUpdate(rg, name, {
      location: obj.spec.location,
      tags: { ...obj.spec.tags, [d.ownerTag]: uid },
      ...made,
      hyperVGeneration: made.hyperVGeneration ?? obj.spec.hyperVGeneration ?? "V2",
    }),
  );
  await d.event("Normal", "CreatingImage", `Creating managed image '${name}'.`);
  return { health: { state: "reconciling", reason: "CreatingImage", message: `Creating managed image '${name}'.` }, requeueAfterMs: d.pollMs };
}
