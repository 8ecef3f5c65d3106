import { ArmError, normalizeLocation } from "../arm.ts";
import type { Emulator } from "../emulator.ts";
import type { ArmRequest } from "../http.ts";
import { bodyObject, props, type Json } from "./common.ts";

/** One Marketplace image version in the seeded catalog. */
export interface CatalogImage {
  publisher: string;
  offer: string;
  sku: string;
  version: string;
  osType: "Linux" | "Windows";
  hyperVGeneration: "V1" | "V2";
  dataDiskLuns?: number[];
  plan?: { publisher: string; product: string; name: string };
  /** Regions it is offered in; absent: every region. */
  locations?: string[];
}

/** A shared or community gallery image version in the seeded catalog. */
export interface GalleryCatalogImage {
  kind: "shared" | "community";
  /** uniqueName of a shared gallery, or public name of a community gallery. */
  gallery: string;
  image: string;
  version: string;
  location: string;
  osType: "Linux" | "Windows";
  osState: "Generalized" | "Specialized";
  hyperVGeneration: "V1" | "V2";
  diskSizeGB?: number;
}

/** What every emulator starts with: Linux and Windows images, several versions, one with a purchase plan. */
export const defaultCatalog: CatalogImage[] = [
  ...["24.04.202409120", "24.04.202410020", "24.04.202411030"].map((version) => ({
    publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version, osType: "Linux" as const, hyperVGeneration: "V2" as const,
  })),
  ...["22.04.202410020", "22.04.202411010"].map((version) => ({
    publisher: "Canonical", offer: "0001-com-ubuntu-server-jammy", sku: "22_04-lts-gen2", version, osType: "Linux" as const, hyperVGeneration: "V2" as const,
  })),
  ...["20348.2762.241006", "20348.2849.241106", "20348.2849.241112"].map((version) => ({
    publisher: "MicrosoftWindowsServer", offer: "WindowsServer", sku: "2022-datacenter-g2", version, osType: "Windows" as const, hyperVGeneration: "V2" as const,
  })),
  {
    publisher: "MicrosoftSQLServer", offer: "sql2022-ws2022", sku: "standard-gen2", version: "16.0.241015", osType: "Windows", hyperVGeneration: "V2", dataDiskLuns: [0, 1],
  },
  ...["1.0.12", "1.0.15"].map((version) => ({
    publisher: "center-for-internet-security-inc", offer: "cis-ubuntu-linux-2204-l1", sku: "cis-ubuntu2204-l1-gen2", version,
    osType: "Linux" as const, hyperVGeneration: "V2" as const,
    plan: { publisher: "center-for-internet-security-inc", product: "cis-ubuntu-linux-2204-l1", name: "cis-ubuntu2204-l1-gen2" },
  })),
];

export const defaultGalleryCatalog: GalleryCatalogImage[] = [
  { kind: "community", gallery: "contoso-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", image: "debian-12", version: "1.0.0", location: "westeurope", osType: "Linux", osState: "Generalized", hyperVGeneration: "V2", diskSizeGB: 30 },
  { kind: "shared", gallery: "00000000-0000-0000-0000-000000000000-SHAREDGALLERY", image: "baseline-linux", version: "2.1.0", location: "westeurope", osType: "Linux", osState: "Generalized", hyperVGeneration: "V2", diskSizeGB: 30 },
];

const eq = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Dotted versions compare numerically, part by part. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const catalog = (emu: Emulator): CatalogImage[] => emu.catalog;
const galleryCatalog = (emu: Emulator): GalleryCatalogImage[] => emu.galleryCatalog;

const offeredIn = (img: CatalogImage, location: string) =>
  !img.locations || img.locations.some((l) => normalizeLocation(l) === normalizeLocation(location));

function versionId(sub: string, location: string, img: CatalogImage): string {
  return `/Subscriptions/${sub}/Providers/Microsoft.Compute/Locations/${normalizeLocation(location)}/Publishers/${img.publisher}/ArtifactTypes/VMImage/Offers/${img.offer}/Skus/${img.sku}/Versions/${img.version}`;
}

/** The catalog image a Marketplace version id names, if any. */
export function marketplaceImage(emu: Emulator, id: string): CatalogImage | undefined {
  const m = /\/Locations\/([^/]+)\/Publishers\/([^/]+)\/ArtifactTypes\/VMImage\/Offers\/([^/]+)\/Skus\/([^/]+)\/Versions\/([^/]+)$/i.exec(id);
  if (!m) return undefined;
  const [, location = "", publisher = "", offer = "", sku = "", version = ""] = m;
  const candidates = catalog(emu).filter(
    (i) => eq(i.publisher, publisher) && eq(i.offer, offer) && eq(i.sku, sku) && offeredIn(i, location),
  );
  if (eq(version, "latest")) return candidates.sort((a, b) => compareVersions(b.version, a.version))[0];
  return candidates.find((i) => eq(i.version, version));
}

const agreementKey = (sub: string, p: { publisher: string; product: string; name: string }) =>
  `${sub}/${p.publisher}/${p.product}/${p.name}`.toLowerCase();

/** A plan image may be deployed only once its terms are accepted in the subscription. */
export function checkMarketplaceTerms(emu: Emulator, subscription: string, img: CatalogImage): void {
  if (!img.plan) return;
  const agreement = emu.store.agreements.get(agreementKey(subscription, img.plan)) as Json | undefined;
  if (!agreement || props(agreement).accepted !== true) {
    throw new ArmError(
      400,
      "ResourcePurchaseValidationFailed",
      `User failed validation to purchase resources. Error message: 'You have not accepted the legal terms on this subscription: '${subscription}' for this plan. Before the subscription can be used, you need to accept the legal terms of the image. To read and accept legal terms, use the Azure CLI commands described at https://go.microsoft.com/fwlink/?linkid=2110637 or the PowerShell commands available at https://go.microsoft.com/fwlink/?linkid=862451. Alternatively, deploying via the Azure portal provides a UI experience for reading and accepting the legal terms. Offer details: publisher='${img.plan.publisher}' offer = '${img.plan.product}', sku = '${img.plan.name}'.`,
    );
  }
}

export function registerMarketplace(emu: Emulator): void {
  const r = emu.router;
  const BASE = "/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/publishers";
  const inLocation = (req: ArmRequest) => catalog(emu).filter((i) => offeredIn(i, req.params.location ?? ""));
  const entry = (req: ArmRequest, name: string, id: string): Json => ({ name, location: normalizeLocation(req.params.location ?? ""), id });
  const prefix = (req: ArmRequest) => `/Subscriptions/${req.params.subscriptionId ?? ""}/Providers/Microsoft.Compute/Locations/${normalizeLocation(req.params.location ?? "")}/Publishers`;
  const unique = (names: string[]) => [...new Map(names.map((n) => [n.toLowerCase(), n])).values()];
  const notFound = (what: string) => new ArmError(404, "NotFound", `Artifact: VMImage was not found. (${what})`);

  r.add("GET", BASE, "Microsoft.Compute/locations/publishers/read", (req) => ({
    status: 200,
    body: unique(inLocation(req).map((i) => i.publisher)).map((p) => entry(req, p, `${prefix(req)}/${p}`)),
  }));
  r.add("GET", `${BASE}/{publisher}/artifacttypes/vmimage/offers`, "Microsoft.Compute/locations/publishers/artifacttypes/offers/read", (req) => {
    const imgs = inLocation(req).filter((i) => eq(i.publisher, req.params.publisher ?? ""));
    if (imgs.length === 0) throw notFound(`publisher ${req.params.publisher ?? ""}`);
    return { status: 200, body: unique(imgs.map((i) => i.offer)).map((o) => entry(req, o, `${prefix(req)}/${req.params.publisher ?? ""}/ArtifactTypes/VMImage/Offers/${o}`)) };
  });
  r.add("GET", `${BASE}/{publisher}/artifacttypes/vmimage/offers/{offer}/skus`, "Microsoft.Compute/locations/publishers/artifacttypes/offers/skus/read", (req) => {
    const imgs = inLocation(req).filter((i) => eq(i.publisher, req.params.publisher ?? "") && eq(i.offer, req.params.offer ?? ""));
    if (imgs.length === 0) throw notFound(`offer ${req.params.offer ?? ""}`);
    return {
      status: 200,
      body: unique(imgs.map((i) => i.sku)).map((s) => entry(req, s, `${prefix(req)}/${req.params.publisher ?? ""}/ArtifactTypes/VMImage/Offers/${req.params.offer ?? ""}/Skus/${s}`)),
    };
  });
  r.add("GET", `${BASE}/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions`, "Microsoft.Compute/locations/publishers/artifacttypes/offers/skus/versions/read", (req) => {
    let imgs = inLocation(req).filter(
      (i) => eq(i.publisher, req.params.publisher ?? "") && eq(i.offer, req.params.offer ?? "") && eq(i.sku, req.params.sku ?? ""),
    );
    if (imgs.length === 0) throw notFound(`sku ${req.params.sku ?? ""}`);
    const orderby = req.url.searchParams.get("$orderby")?.toLowerCase().trim();
    imgs = [...imgs].sort((a, b) => compareVersions(a.version, b.version));
    if (orderby === "name desc") imgs.reverse();
    else if (orderby && orderby !== "name" && orderby !== "name asc") {
      throw new ArmError(400, "InvalidParameter", `The value '${orderby}' of parameter '$orderby' is not supported. Supported values are 'name' and 'name desc'.`, { target: "$orderby" });
    }
    const top = req.url.searchParams.get("$top");
    if (top !== null) imgs = imgs.slice(0, Number(top));
    return { status: 200, body: imgs.map((i) => entry(req, i.version, versionId(req.params.subscriptionId ?? "", req.params.location ?? "", i))) };
  });
  r.add("GET", `${BASE}/{publisher}/artifacttypes/vmimage/offers/{offer}/skus/{sku}/versions/{version}`, "Microsoft.Compute/locations/publishers/artifacttypes/offers/skus/versions/read", (req) => {
    const id = versionId(req.params.subscriptionId ?? "", req.params.location ?? "", {
      publisher: req.params.publisher ?? "", offer: req.params.offer ?? "", sku: req.params.sku ?? "", version: req.params.version ?? "",
      osType: "Linux", hyperVGeneration: "V1",
    });
    const img = marketplaceImage(emu, id);
    if (!img || eq(req.params.version ?? "", "latest")) throw notFound(`version ${req.params.version ?? ""}`);
    return {
      status: 200,
      body: {
        name: img.version,
        location: normalizeLocation(req.params.location ?? ""),
        id: versionId(req.params.subscriptionId ?? "", req.params.location ?? "", img),
        properties: {
          ...(img.plan ? { plan: img.plan } : {}),
          osDiskImage: { operatingSystem: img.osType },
          dataDiskImages: (img.dataDiskLuns ?? []).map((lun) => ({ lun })),
          automaticOSUpgradeProperties: { automaticOSUpgradeSupported: false },
          hyperVGeneration: img.hyperVGeneration,
          disallowed: { vmDiskType: "Unmanaged" },
          architecture: "x64",
          features: [{ name: "SecurityType", value: "TrustedLaunchSupported" }],
        },
      },
    };
  });

  // Marketplace terms (Microsoft.MarketplaceOrdering).
  const TERMS = "/subscriptions/{subscriptionId}/providers/Microsoft.MarketplaceOrdering/offerTypes/virtualmachine/publishers/{publisher}/offers/{offer}/plans/{plan}/agreements/current";
  const planOf = (req: ArmRequest) => ({ publisher: req.params.publisher ?? "", product: req.params.offer ?? "", name: req.params.plan ?? "" });
  const termsOf = (req: ArmRequest, accepted: boolean): Json => {
    const p = planOf(req);
    return {
      id: `/subscriptions/${req.params.subscriptionId ?? ""}/providers/Microsoft.MarketplaceOrdering/offerTypes/VirtualMachine/publishers/${p.publisher}/offers/${p.product}/plans/${p.name}/agreements/current`,
      name: p.name,
      type: "Microsoft.MarketplaceOrdering/offertypes",
      properties: {
        publisher: p.publisher,
        product: p.product,
        plan: p.name,
        licenseTextLink: `https://mpcprodsa.blob.core.windows.net/legalterms/3E5ED_legalterms_${p.publisher.toUpperCase()}.txt`,
        privacyPolicyLink: `https://${p.publisher}.example/privacy`,
        marketplaceTermsLink: "https://mpcprodsa.blob.core.windows.net/marketplaceterms/3EDEF_marketplaceterms_VIRTUALMACHINE.txt",
        retrieveDatetime: new Date().toISOString(),
        signature: "EMULATORSIGNATURE",
        accepted,
      },
    };
  };
  const planExists = (req: ArmRequest) =>
    catalog(emu).some((i) => i.plan && eq(i.plan.publisher, req.params.publisher ?? "") && eq(i.plan.product, req.params.offer ?? "") && eq(i.plan.name, req.params.plan ?? ""));
  const requirePlan = (req: ArmRequest) => {
    if (!planExists(req)) {
      throw new ArmError(404, "BadRequest", `Offer with PublisherId: '${req.params.publisher ?? ""}', OfferId: '${req.params.offer ?? ""}', PlanId: '${req.params.plan ?? ""}' cannot be purchased due to validation errors. Plan not found.`);
    }
  };
  r.add("GET", TERMS, "Microsoft.MarketplaceOrdering/offertypes/publishers/offers/plans/agreements/read", (req) => {
    requirePlan(req);
    const stored = emu.store.agreements.get(agreementKey(req.params.subscriptionId ?? "", planOf(req)));
    return { status: 200, body: stored ?? termsOf(req, false) };
  });
  r.add("PUT", TERMS, "Microsoft.MarketplaceOrdering/offertypes/publishers/offers/plans/agreements/write", (req) => {
    requirePlan(req);
    const body = bodyObject(req);
    const accepted = props(body).accepted === true;
    const terms = termsOf(req, accepted);
    emu.store.agreements.set(agreementKey(req.params.subscriptionId ?? "", planOf(req)), terms);
    emu.store.save();
    return { status: 200, body: terms };
  });
  for (const action of ["sign", "cancel"] as const) {
    r.add("POST", `/subscriptions/{subscriptionId}/providers/Microsoft.MarketplaceOrdering/agreements/{publisher}/offers/{offer}/plans/{plan}/${action}`, `Microsoft.MarketplaceOrdering/agreements/offers/plans/${action}/action`, (req) => {
      requirePlan(req);
      const terms = termsOf(req, action === "sign");
      emu.store.agreements.set(agreementKey(req.params.subscriptionId ?? "", planOf(req)), terms);
      emu.store.save();
      return {
        status: 200,
        body: {
          id: `/subscriptions/${req.params.subscriptionId ?? ""}/providers/Microsoft.MarketplaceOrdering/agreements/${req.params.publisher ?? ""}/offers/${req.params.offer ?? ""}/plans/${req.params.plan ?? ""}`,
          name: req.params.plan,
          type: "Microsoft.MarketplaceOrdering/agreements",
          properties: {
            publisher: req.params.publisher,
            offer: req.params.offer,
            signDate: new Date().toISOString(),
            ...(action === "cancel" ? { cancelDate: new Date().toISOString() } : {}),
            state: action === "sign" ? "Active" : "Canceled",
          },
        },
      };
    });
  }

  // Shared and community gallery image versions (read-only views of others' galleries).
  for (const kind of ["shared", "community"] as const) {
    const seg = kind === "shared" ? "sharedGalleries" : "communityGalleries";
    const uniqueRoot = kind === "shared" ? "SharedGalleries" : "CommunityGalleries";
    const base = `/subscriptions/{subscriptionId}/providers/Microsoft.Compute/locations/{location}/${seg}/{gallery}/images/{image}/versions`;
    const find = (req: ArmRequest) =>
      galleryCatalog(emu).filter(
        (g) => g.kind === kind && eq(g.gallery, req.params.gallery ?? "") && eq(g.image, req.params.image ?? "") && eq(normalizeLocation(g.location), normalizeLocation(req.params.location ?? "")),
      );
    const render = (g: GalleryCatalogImage): Json => ({
      name: g.version,
      location: normalizeLocation(g.location),
      identifier: { uniqueId: `/${uniqueRoot}/${g.gallery}/Images/${g.image}/Versions/${g.version}` },
      properties: {
        publishedDate: "2026-01-01T00:00:00Z",
        excludeFromLatest: false,
        storageProfile: { osDiskImage: { diskSizeGB: g.diskSizeGB ?? 30, hostCaching: "ReadOnly" } },
        artifactTags: {},
      },
    });
    r.add("GET", base, `Microsoft.Compute/locations/${seg}/images/versions/read`, (req) => ({ status: 200, body: { value: find(req).map(render) } }));
    r.add("GET", `${base}/{version}`, `Microsoft.Compute/locations/${seg}/images/versions/read`, (req) => {
      const versions = find(req).sort((a, b) => compareVersions(b.version, a.version));
      const v = eq(req.params.version ?? "", "latest") ? versions[0] : versions.find((g) => eq(g.version, req.params.version ?? ""));
      if (!v) {
        throw new ArmError(404, "ResourceNotFound", `The ${kind} gallery image version '${req.params.version ?? ""}' of image '${req.params.image ?? ""}' was not found in ${req.params.location ?? ""}.`);
      }
      return { status: 200, body: render(v) };
    });
  }
}
