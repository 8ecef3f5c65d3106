import type { AzureClients } from "../../azure/clients.ts";
import { classify, getOrUndefined } from "../../azure/errors.ts";
import type { MarketplaceSource } from "../../api/types.ts";
import { Remembered } from "../shared/remembered.ts";

export interface ResolvedMarketplaceImage {
  version: string;
  /** Resource ID of the exact version, as disks and VMs reference it. */
  id: string;
  osType: string | undefined;
  hyperVGeneration: string | undefined;
  plan: { publisher: string; product: string; name: string } | undefined;
}

/** Why a Marketplace source cannot be used, as a condition reason and message. */
export class SourceProblem extends Error {
  readonly reason: string;

  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * Resolves a Marketplace image to an exact version in `location`: `latest` is the newest version
 * (listed newest first, one result, as Azure's own tools do), anything else must exist as given.
 */
export async function resolveMarketplaceImage(
  azure: AzureClients,
  location: string,
  src: MarketplaceSource,
): Promise<ResolvedMarketplaceImage> {
  const images = azure.compute.virtualMachineImages;
  const wanted = src.version ?? "latest";
  let version = wanted;
  if (wanted.toLowerCase() === "latest") {
    let newest;
    try {
      [newest] = await images.list(location, src.publisher, src.offer, src.sku, { top: 1, orderby: "name desc" });
    } catch (err) {
      const c = classify(err);
      if (c.kind !== "NotFound") throw c;
    }
    if (!newest?.name) {
      throw new SourceProblem("ImageNotFound", `No Marketplace image ${src.publisher}:${src.offer}:${src.sku} is offered in ${location}.`);
    }
    version = newest.name;
  }
  const key = [location, src.publisher, src.offer, src.sku, version].join("|").toLowerCase();
  const known = knownVersions.get(azure.compute, key);
  if (known) return known;
  const image = await getOrUndefined(images.get(location, src.publisher, src.offer, src.sku, version));
  if (!image) {
    throw new SourceProblem("ImageNotFound", `Marketplace image ${src.publisher}:${src.offer}:${src.sku}:${version} is not offered in ${location}.`);
  }
  const plan = image.plan?.publisher && image.plan.product && image.plan.name
    ? { publisher: image.plan.publisher, product: image.plan.product, name: image.plan.name }
    : undefined;
  const resolved = {
    version,
    id: image.id ?? "",
    osType: image.osDiskImage?.operatingSystem,
    hyperVGeneration: image.hyperVGeneration,
    plan,
  };
  knownVersions.set(azure.compute, key, resolved);
  return resolved;
}

/**
 * Exact Marketplace versions looked up in the last hour, per ARM client. A published version does not
 * change (its OS type, generation and plan are fixed), so the passes that make an image from it, and
 * every object using the same version, read it once; `latest` is still listed each time.
 */
const knownVersions = new Remembered<ResolvedMarketplaceImage>(3_600_000);

/**
 * Makes sure a plan image's terms are accepted in the subscription: accepts them when the spec says
 * so, otherwise reports TermsNotAccepted with the link to the terms. Returns true when it accepted them now.
 */
export async function ensureTermsAccepted(
  azure: AzureClients,
  plan: { publisher: string; product: string; name: string },
  accept: boolean,
): Promise<boolean> {
  const agreements = azure.terms.marketplaceAgreements;
  let terms;
  try {
    terms = await agreements.get("virtualmachine", plan.publisher, plan.product, plan.name);
  } catch (err) {
    throw classify(err);
  }
  if (terms.accepted) return false;
  if (!accept) {
    throw new SourceProblem(
      "TermsNotAccepted",
      `The image's plan ${plan.publisher}/${plan.product}/${plan.name} has terms that are not accepted in this subscription. Read them at ${terms.licenseTextLink ?? "(no link given)"} and set spec.source.marketplace.acceptTerms: true to accept them.`,
    );
  }
  try {
    await agreements.create("virtualmachine", plan.publisher, plan.product, plan.name, { ...terms, accepted: true });
  } catch (err) {
    throw classify(err);
  }
  return true;
}
