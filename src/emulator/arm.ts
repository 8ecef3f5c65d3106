/** ARM's error envelope, ids and naming rules, shared by every resource provider of the emulator. */

export interface ArmErrorBody {
  code: string;
  message: string;
  target?: string;
  details?: Array<{ code: string; target?: string; message: string }>;
}

/** An error ARM would answer with: HTTP status plus `{error:{code,message,target?,details?}}`. */
export class ArmError extends Error {
  readonly status: number;
  readonly code: string;
  readonly target: string | undefined;
  readonly details: ArmErrorBody["details"];
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    code: string,
    message: string,
    opts: { target?: string; details?: ArmErrorBody["details"]; headers?: Record<string, string> } = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.target = opts.target;
    this.details = opts.details;
    this.headers = opts.headers ?? {};
  }

  body(): { error: ArmErrorBody } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.target ? { target: this.target } : {}),
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }
}

export const resourceNotFound = (type: string, name: string, resourceGroup: string): ArmError =>
  new ArmError(
    404,
    "ResourceNotFound",
    `The Resource '${type}/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );

export const resourceGroupNotFound = (resourceGroup: string): ArmError =>
  new ArmError(404, "ResourceGroupNotFound", `Resource group '${resourceGroup}' could not be found.`);

export const invalidParameter = (target: string, message: string): ArmError =>
  new ArmError(400, "InvalidParameter", message, { target });

export const missingProperty = (target: string): ArmError =>
  new ArmError(400, "InvalidParameter", `Required parameter '${target}' is missing (null).`, { target });

export const operationNotAllowed = (message: string): ArmError => new ArmError(409, "OperationNotAllowed", message);

/** Azure regions are compared and stored in their short form: "West US" is "westus". */
export function normalizeLocation(location: string): string {
  return location.replace(/\s+/g, "").toLowerCase();
}

/** Checks `value` is one of `allowed` (case-insensitively, as ARM does) and returns the canonical spelling. */
export function enumValue(target: string, value: unknown, allowed: readonly string[]): string {
  const found = typeof value === "string" ? allowed.find((a) => a.toLowerCase() === value.toLowerCase()) : undefined;
  if (!found) {
    throw invalidParameter(
      target,
      `The value '${String(value)}' of parameter '${target}' is not allowed. Allowed values are '${allowed.join("', '")}'.`,
    );
  }
  return found;
}

export function requireString(target: string, value: unknown): string {
  if (value === undefined || value === null || value === "") throw missingProperty(target);
  if (typeof value !== "string") throw invalidParameter(target, `The value of parameter '${target}' must be a string.`);
  return value;
}

/** A parsed ARM resource ID: subscription, resource group, provider and the type/name pairs below it. */
export interface ResourceId {
  subscription: string;
  resourceGroup: string;
  provider: string;
  /** e.g. [["galleries","g"],["images","def"],["versions","1.0.0"]] */
  segments: Array<[string, string]>;
}

export function parseResourceId(id: string): ResourceId | undefined {
  const m = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/([^/]+\/?[^/]*)\/(.+)$/i.exec(id);
  if (!m) return undefined;
  const [, subscription = "", resourceGroup = "", provider = "", rest = ""] = m;
  const parts = rest.split("/");
  if (parts.length % 2 !== 0) return undefined;
  const segments: Array<[string, string]> = [];
  for (let i = 0; i < parts.length; i += 2) segments.push([parts[i] ?? "", parts[i + 1] ?? ""]);
  return { subscription, resourceGroup, provider, segments };
}

/** The lookup key of a resource ID: ARM ids are case-insensitive, and some clients omit the leading slash. */
export const idKey = (id: string): string => `/${id.replace(/^\/+/, "")}`.toLowerCase();

export function resourceGroupId(subscription: string, resourceGroup: string): string {
  return `/subscriptions/${subscription}/resourceGroups/${resourceGroup}`;
}
