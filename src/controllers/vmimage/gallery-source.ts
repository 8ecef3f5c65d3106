import type { GallerySource } from "../../api/types.ts";
import type { AzureClients } from "../../azure/clients.ts";
import { classify } from "../../azure/errors.ts";
import { SourceProblem } from "./marketplace.ts";
import { compareVersions, normalizeRegion } from "../shared/versions.ts";

/** A gallery image version, verified to exist in the location, as a disk references it. */
export interface ResolvedGalleryImage {
  version: string;
  reference: { id: string } | { sharedGalleryImageId: string } | { communityGalleryImageId: string };
  /** For one of the subscription's own versions: its resource ID (a gallery version can be made from it directly). */
  ownVersionId?: string;
}


const newest = (names: string[]): string | undefined => [...names].sort(compareVersions).at(-1);

/**
 * Resolves `source.gallery` in `location`: one of the subscription's own versions (by resource ID,
 * which must be replicated to the location), or a shared or community gallery image
 * (`/SharedGalleries/{name}/Images/{image}[/Versions/{version|latest}]`, same for CommunityGalleries),
 * whose `latest` is the highest version offered there. The version found is pinned by the caller.
 */
export async function resolveGalleryImage(
  azure: AzureClients,
  location: string,
  src: GallerySource,
  pinned: string | undefined,
): Promise<ResolvedGalleryImage> {
  const given = [src.id, src.sharedGalleryImageId, src.communityGalleryImageId].filter((v) => v !== undefined);
  if (given.length !== 1) {
    throw new SourceProblem("InvalidSpec", "spec.source.gallery must name exactly one of id, sharedGalleryImageId or communityGalleryImageId");
  }
  try {
    if (src.id) {
      const m = /^\/subscriptions\/[^/]+\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Compute\/galleries\/([^/]+)\/images\/([^/]+)\/versions\/([^/]+)$/i.exec(src.id);
      if (!m) throw new SourceProblem("InvalidSpec", `'${src.id}' is not the resource ID of a gallery image version`);
      const [, rg = "", gallery = "", image = "", version = ""] = m;
      const found = await azure.compute.galleryImageVersions.get(rg, gallery, image, version);
      const regions = (found.publishingProfile?.targetRegions ?? []).map((t) => normalizeRegion(t.name));
      if (!regions.includes(normalizeRegion(location))) {
        throw new SourceProblem("ImageNotFound", `Gallery image version '${src.id}' is not replicated to ${location}.`);
      }
      return { version, reference: { id: found.id ?? src.id }, ownVersionId: found.id ?? src.id };
    }
    const community = src.communityGalleryImageId !== undefined;
    const unique = src.communityGalleryImageId ?? src.sharedGalleryImageId ?? "";
    const m = /^\/(Community|Shared)Galleries\/([^/]+)\/Images\/([^/]+)(?:\/Versions\/([^/]+))?$/i.exec(unique);
    if (!m || (m[1]?.toLowerCase() === "community") !== community) {
      throw new SourceProblem("InvalidSpec", `'${unique}' is not a ${community ? "community" : "shared"} gallery image ID (/${community ? "Community" : "Shared"}Galleries/{gallery}/Images/{image}[/Versions/{version}])`);
    }
    const [, , gallery = "", image = "", wanted = "latest"] = m;
    const versionsApi = community ? azure.compute.communityGalleryImageVersions : azure.compute.sharedGalleryImageVersions;
    let version = pinned ?? wanted;
    if (version.toLowerCase() === "latest") {
      const names: string[] = [];
      for await (const v of versionsApi.list(location, gallery, image)) if (v.name) names.push(v.name);
      const top = newest(names);
      if (!top) throw new SourceProblem("ImageNotFound", `No version of ${unique} is offered in ${location}.`);
      version = top;
    } else {
      await versionsApi.get(location, gallery, image, version);
    }
    const root = community ? "CommunityGalleries" : "SharedGalleries";
    const id = `/${root}/${gallery}/Images/${image}/Versions/${version}`;
    return { version, reference: community ? { communityGalleryImageId: id } : { sharedGalleryImageId: id } };
  } catch (err) {
    if (err instanceof SourceProblem) throw err;
    const c = classify(err);
    if (c.kind === "NotFound") throw new SourceProblem("ImageNotFound", `The gallery image is not available in ${location}: ${c.message}`);
    throw c;
  }
}
