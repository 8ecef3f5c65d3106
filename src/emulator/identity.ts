import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify, type KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArmError } from "./arm.ts";

/** An application registration the token endpoint knows. */
export interface ClientRegistration {
  tenantId: string;
  clientId: string;
  /** Client-credentials secret. */
  secret?: string;
  /** Federated credential (workload identity): the `sub` a client assertion must carry, e.g. system:serviceaccount:ns:sa. */
  federatedSubject?: string;
}

export interface TokenClaims {
  iss: string;
  aud: string;
  tid: string;
  oid: string;
  appid: string;
  sub: string;
  iat: number;
  nbf: number;
  exp: number;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

function decodeJwt(token: string): { header: Record<string, unknown>; payload: Record<string, unknown>; signed: string; signature: Buffer } | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0] ?? "", "base64url").toString("utf8")) as Record<string, unknown>,
      payload: JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8")) as Record<string, unknown>,
      signed: `${parts[0] ?? ""}.${parts[1] ?? ""}`,
      signature: Buffer.from(parts[2] ?? "", "base64url"),
    };
  } catch {
    return undefined;
  }
}

/** An Entra ID error answer of the token endpoint. */
function aadError(status: number, error: string, code: number, description: string): { status: number; body: unknown } {
  const traceId = randomUUID();
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
      error_codes: [code],
      timestamp: new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"),
      trace_id: traceId,
      correlation_id: randomUUID(),
    },
  };
}

/**
 * The Entra ID side of the emulator: an OpenID configuration document and a v2.0 token endpoint for
 * the client-credentials grant, with a client secret or a client assertion (workload identity).
 * Tokens are RS256 JWTs with the claims ARM and Azurite look at (`iss` https://sts.windows.net/{tid}/,
 * `aud` from the requested scope, `tid`, `oid`); the ARM side verifies their signature.
 */
export class Identity {
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly kid: string;
  private readonly clients = new Map<string, ClientRegistration>();

  constructor(stateDir?: string) {
    const keyFile = stateDir ? join(stateDir, "token-signing.key") : undefined;
    let pem: string;
    if (keyFile && existsSync(keyFile)) {
      pem = readFileSync(keyFile, "utf8");
    } else {
      pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
      if (keyFile) writeFileSync(keyFile, pem, { mode: 0o600 });
    }
    this.privateKey = createPrivateKey(pem);
    this.publicKey = createPublicKey(this.privateKey);
    this.kid = createHash("sha256").update(this.publicKey.export({ type: "spki", format: "der" })).digest("base64url").slice(0, 16);
  }

  register(client: ClientRegistration): void {
    this.clients.set(`${client.tenantId.toLowerCase()}/${client.clientId.toLowerCase()}`, client);
  }

  openidConfiguration(baseUrl: string, tenant: string): unknown {
    return {
      token_endpoint: `${baseUrl}/${tenant}/oauth2/v2.0/token`,
      authorization_endpoint: `${baseUrl}/${tenant}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${baseUrl}/${tenant}/oauth2/v2.0/logout`,
      issuer: `${baseUrl}/${tenant}/v2.0`,
      jwks_uri: `${baseUrl}/${tenant}/discovery/v2.0/keys`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      scopes_supported: ["openid", "profile", "email", "offline_access"],
      subject_types_supported: ["pairwise"],
      id_token_signing_alg_values_supported: ["RS256"],
      tenant_region_scope: "EU",
    };
  }

  jwks(): unknown {
    const jwk = this.publicKey.export({ format: "jwk" });
    return { keys: [{ ...jwk, kid: this.kid, use: "sig", alg: "RS256" }] };
  }

  /** Answers a POST to /{tenant}/oauth2/v2.0/token with a form body. */
  token(tenant: string, form: URLSearchParams): { status: number; body: unknown } {
    if (form.get("grant_type") !== "client_credentials") {
      return aadError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.");
    }
    const clientId = form.get("client_id") ?? "";
    const scope = form.get("scope") ?? "";
    const client = this.clients.get(`${tenant.toLowerCase()}/${clientId.toLowerCase()}`);
    if (!client) {
      return aadError(
        400,
        "unauthorized_client",
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
      );
    }
    const secret = form.get("client_secret");
    const assertion = form.get("client_assertion");
    if (secret !== null) {
      if (client.secret === undefined || secret !== client.secret) {
        return aadError(
          401,
          "invalid_client",
          7000215,
          "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" +
            clientId +
            "'.",
        );
      }
    } else if (assertion !== null) {
      if (form.get("client_assertion_type") !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return aadError(400, "invalid_request", 90014, "The request body must contain the following parameter: 'client_assertion_type'.");
      }
      const decoded = decodeJwt(assertion);
      const claims = decoded?.payload ?? {};
      const aud = Array.isArray(claims.aud) ? (claims.aud as unknown[]) : [claims.aud];
      const exp = typeof claims.exp === "number" ? claims.exp : 0;
      if (!decoded || exp * 1000 < Date.now()) {
        return aadError(400, "invalid_client", 700024, "Client assertion is not within its valid time range.");
      }
      if (!aud.includes("api://AzureADTokenExchange") || client.federatedSubject !== claims.sub) {
        return aadError(
          400,
          "invalid_client",
          70021,
          `No matching federated identity record found for presented assertion subject '${String(claims.sub)}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
        );
      }
    } else {
      return aadError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    }
    if (!scope.endsWith("/.default")) {
      return aadError(400, "invalid_scope", 1002012, `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`);
    }
    const now = Math.floor(Date.now() / 1000);
    const oid = uuidFrom(`${tenant}/${clientId}`);
    const claims: TokenClaims = {
      aud: scope.slice(0, -"/.default".length),
      iss: `https://sts.windows.net/${tenant}/`,
      iat: now,
      nbf: now - 60,
      exp: now + 86_399,
      tid: tenant,
      oid,
      sub: oid,
      appid: clientId,
    };
    const header = b64url(JSON.stringify({ typ: "JWT", alg: "RS256", kid: this.kid }));
    const payload = b64url(JSON.stringify(claims));
    const signature = sign("sha256", Buffer.from(`${header}.${payload}`), this.privateKey);
    return {
      status: 200,
      body: {
        token_type: "Bearer",
        expires_in: 86_399,
        ext_expires_in: 86_399,
        access_token: `${header}.${payload}.${b64url(signature)}`,
      },
    };
  }

  /**
   * Verifies an `Authorization: Bearer` header for ARM: a token this emulator signed, within its
   * validity, for one of `audiences`. Throws ARM's 401 otherwise.
   */
  authenticate(authorization: string | undefined, audiences: readonly string[]): TokenClaims {
    if (!authorization?.startsWith("Bearer ")) {
      throw new ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.");
    }
    const decoded = decodeJwt(authorization.slice("Bearer ".length));
    const invalid = (why: string) => new ArmError(401, "InvalidAuthenticationToken", `The access token is invalid. ${why}`);
    if (!decoded) throw invalid("It is not a JWT.");
    if (!verify("sha256", Buffer.from(decoded.signed), this.publicKey, decoded.signature)) {
      throw invalid("The signature does not match.");
    }
    const claims = decoded.payload as unknown as TokenClaims;
    const now = Math.floor(Date.now() / 1000);
    if (claims.exp < now) {
      throw new ArmError(401, "ExpiredAuthenticationToken", "The access token expiry UTC time is earlier than current UTC time.");
    }
    const aud = claims.aud.replace(/\/$/, "").toLowerCase();
    if (!audiences.some((a) => a.replace(/\/$/, "").toLowerCase() === aud)) {
      throw new ArmError(401, "InvalidAuthenticationTokenAudience", `The access token has been obtained for wrong audience or resource '${claims.aud}'.`);
    }
    return claims;
  }
}

/** A stable UUID-shaped id derived from a string (object ids of registered applications). */
function uuidFrom(s: string): string {
  const h = createHash("sha256").update(s).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
