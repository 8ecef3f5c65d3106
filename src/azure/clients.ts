import { readFileSync } from "node:fs";
import { getCACertificates, setDefaultCACertificates } from "node:tls";
import { ComputeManagementClient } from "@azure/arm-compute";
import { MarketplaceOrderingAgreements } from "@azure/arm-marketplaceordering";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ClientSecretCredential, DefaultAzureCredential, WorkloadIdentityCredential, type TokenCredential } from "@azure/identity";
import type { AzureConfig } from "../config.ts";
import { ArmRateLimiter } from "./rate-limit.ts";

/** The SDK clients the controllers use, for one subscription. */
export interface AzureClients {
  subscriptionId: string;
  /** The operator's identity, also for Azure Storage (page-blob uploads into the user's storage account). */
  credential: TokenCredential;
  /** The client-side ARM limiter these clients share with every other set the operator makes. */
  limiter: ArmRateLimiter;
  compute: ComputeManagementClient;
  resources: ResourceManagementClient;
  terms: MarketplaceOrderingAgreements;
}

/** Credentials from configuration: client secret, workload identity, or the SDK's default chain. */
export function createCredential(cfg: AzureConfig): TokenCredential {
  const common = {
    ...(cfg.authorityHost ? { authorityHost: cfg.authorityHost } : {}),
    // A custom authority (sovereign cloud, private emulator) is trusted as configured, without
    // asking login.microsoftonline.com to vouch for it.
    ...(cfg.authorityHost ? { disableInstanceDiscovery: true } : {}),
  };
  if (cfg.tenantId && cfg.clientId && cfg.clientSecret) {
    return new ClientSecretCredential(cfg.tenantId, cfg.clientId, cfg.clientSecret, common);
  }
  if (cfg.tenantId && cfg.clientId && cfg.federatedTokenFile) {
    return new WorkloadIdentityCredential({ tenantId: cfg.tenantId, clientId: cfg.clientId, tokenFilePath: cfg.federatedTokenFile, ...common });
  }
  return new DefaultAzureCredential(common);
}

/** Trusts an extra CA bundle (PEM) for every outgoing TLS connection of this process. */
export function trustCaFile(path: string): void {
  const pem = readFileSync(path, "utf8");
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new Error(`${path} holds no PEM certificate`);
  setDefaultCACertificates([...getCACertificates("default"), ...certs]);
}

/**
 * SDK clients for the configured subscription. Every ARM call goes through `limiter` (one per
 * process), which keeps the operator under ARM's throttling buckets.
 */
export function createAzureClients(
  cfg: AzureConfig,
  credential: TokenCredential = createCredential(cfg),
  limiter: ArmRateLimiter = new ArmRateLimiter(),
): AzureClients {
  if (!cfg.subscriptionId) throw new Error("AZURE_SUBSCRIPTION_ID is not set");
  const endpoint = cfg.resourceManagerEndpoint?.replace(/\/$/, "");
  const modular = endpoint ? { endpoint } : {};
  const compute = new ComputeManagementClient(credential, cfg.subscriptionId, modular);
  const resources = new ResourceManagementClient(credential, cfg.subscriptionId, modular);
  // AutoRest clients take the request host and the token audience separately.
  const terms = new MarketplaceOrderingAgreements(credential, cfg.subscriptionId, endpoint ? { $host: endpoint, endpoint } : {});
  for (const client of [compute, resources, terms]) client.pipeline.addPolicy(limiter.policy(), { phase: "Retry" });
  return { subscriptionId: cfg.subscriptionId, credential, limiter, compute, resources, terms };
}
