import type { V1ObjectMeta } from "@kubernetes/client-node";

/** Tag set on every Azure resource the operator creates: the uid of the owning object. */
export const OWNER_TAG = "azureimages.dev-owner";

/**
 * A deterministic Azure name for a resource an object owns: namespace, name and the start of the
 * uid, then `suffix`; only letters, digits, `-`, `_` and `.`, at most 80 characters. A crash between
 * "create sent" and "status written" is healed by a GET on this name, never by a second resource.
 */
export function azureName(metadata: V1ObjectMeta | undefined, suffix = ""): string {
  const base = `${metadata?.namespace ?? "default"}-${metadata?.name ?? ""}`.replace(/[^A-Za-z0-9_.-]/g, "-");
  const uid = (metadata?.uid ?? "").slice(0, 8);
  return `${base.slice(0, 70)}-${uid}${suffix}`.slice(0, 80);
}
