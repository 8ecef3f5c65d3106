import { AsyncLocalStorage } from "node:async_hooks";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { ReconcileResult } from "../../runtime/controller.ts";
import { createAzureClients, type AzureClients } from "../../azure/clients.ts";
import type { AzureConfig } from "../../config.ts";
import { KubeApiError, type KubeClient } from "../../runtime/kube-client.ts";

/** The Azure clients of the object being reconciled (its credentialsRef, or the operator's own). */
const scope = new AsyncLocalStorage<AzureClients>();

/** Runs `fn` with `clients` as the Azure clients every call inside it uses. */
export function withAzure<T>(clients: AzureClients | undefined, fn: () => Promise<T>): Promise<T> {
  return clients ? scope.run(clients, fn) : fn();
}

/** The clients of the current reconcile, or `fallback` outside one. */
export function currentAzure(fallback: AzureClients): AzureClients {
  return scope.getStore() ?? fallback;
}

/** Why an object's credentials cannot be used: a condition reason and a message without secrets. */
export class CredentialsProblem extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

interface Secret {
  metadata?: { resourceVersion?: string };
  data?: Record<string, string>;
}

/**
 * Azure clients from the Secret an object names in spec.credentialsRef (same namespace): keys
 * AZURE_TENANT_ID and AZURE_CLIENT_ID, plus AZURE_CLIENT_SECRET for a service principal (without it,
 * the operator's own workload-identity token is exchanged for that client, which must trust the
 * operator's service account), and optionally AZURE_SUBSCRIPTION_ID. The Secret is read with one GET
 * when an object is reconciled (the operator needs `get` on that Secret in that namespace, nothing
 * cluster-wide); clients are kept per Secret and remade when it changes. Every set shares the
 * operator's ARM limiter.
 */
export class NamespaceCredentials {
  private readonly cache = new Map<string, { version: string; clients: AzureClients }>();
  private readonly kube: KubeClient;
  private readonly base: AzureConfig;
  private readonly defaults: AzureClients;

  constructor(kube: KubeClient, base: AzureConfig, defaults: AzureClients) {
    this.kube = kube;
    this.base = base;
    this.defaults = defaults;
  }

  /** The clients for `obj`: undefined (the operator's own) without credentialsRef. */
  async clientsFor(obj: KubernetesObject & { spec?: { credentialsRef?: { name: string } } }): Promise<AzureClients | undefined> {
    const ref = obj.spec?.credentialsRef;
    if (!ref) return undefined;
    const namespace = obj.metadata?.namespace ?? "default";
    const where = `Secret ${namespace}/${ref.name}`;
    let secret: Secret;
    try {
      secret = await this.kube.get<Secret>(`/api/v1/namespaces/${namespace}/secrets/${encodeURIComponent(ref.name)}`);
    } catch (err) {
      if (err instanceof KubeApiError && err.code === 404) throw new CredentialsProblem("CredentialsNotFound", `${where} (spec.credentialsRef) does not exist.`);
      if (err instanceof KubeApiError && err.code === 403) {
        throw new CredentialsProblem("CredentialsForbidden", `The operator may not read ${where}; allow it with a Role granting get on that Secret, bound to the operator's service account in ${namespace} (deploy/examples/namespace-credentials.yaml).`);
      }
      throw err;
    }
    const key = `${namespace}/${ref.name}`;
    const version = secret.metadata?.resourceVersion ?? "";
    const cached = this.cache.get(key);
    if (cached?.version === version) return cached.clients;
    const value = (k: string) => {
      const v = secret.data?.[k];
      return v ? Buffer.from(v, "base64").toString("utf8").trim() : undefined;
    };
    const tenantId = value("AZURE_TENANT_ID");
    const clientId = value("AZURE_CLIENT_ID");
    const clientSecret = value("AZURE_CLIENT_SECRET");
    if (!tenantId || !clientId) throw new CredentialsProblem("InvalidCredentials", `${where} needs the keys AZURE_TENANT_ID and AZURE_CLIENT_ID (and AZURE_CLIENT_SECRET for a service principal).`);
    if (!clientSecret && !this.base.federatedTokenFile) {
      throw new CredentialsProblem("InvalidCredentials", `${where} has no AZURE_CLIENT_SECRET, and the operator has no workload-identity token to exchange for client ${clientId}.`);
    }
    const clients = createAzureClients(
      {
        ...this.base,
        tenantId,
        clientId,
        clientSecret,
        federatedTokenFile: clientSecret ? undefined : this.base.federatedTokenFile,
        subscriptionId: value("AZURE_SUBSCRIPTION_ID") ?? this.defaults.subscriptionId,
      },
      undefined,
      this.defaults.limiter,
    );
    this.cache.set(key, { version, clients });
    return clients;
  }
}

/**
 * Runs a reconcile of `obj` with the Azure clients its credentialsRef names (or the operator's own),
 * or hands a credentials problem to `onProblem`. An object being deleted whose resources are retained
 * needs no identity, so it can always be let go.
 */
export async function withCredentials(
  credentials: NamespaceCredentials | undefined,
  obj: KubernetesObject & { spec: { credentialsRef?: { name: string }; deletionPolicy?: "Delete" | "Retain" } },
  defaultPolicy: "Delete" | "Retain",
  onProblem: (problem: CredentialsProblem) => Promise<ReconcileResult | undefined>,
  run: () => Promise<ReconcileResult | undefined>,
): Promise<ReconcileResult | undefined> {
  const retained = obj.metadata?.deletionTimestamp !== undefined && (obj.spec.deletionPolicy ?? defaultPolicy) === "Retain";
  let clients: AzureClients | undefined;
  try {
    if (!retained) clients = await credentials?.clientsFor(obj);
  } catch (err) {
    if (err instanceof CredentialsProblem) return onProblem(err);
    throw err;
  }
  return withAzure(clients, run);
}
