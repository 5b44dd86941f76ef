// Signed credentials: the session cookie's value and the API's bearer tokens. Each names the
// tenant's identity (catalog id and schema name, which is never reused) and the user, and is
// signed with HMAC-SHA256 keyed by the SESSION_SECRET binding. Nothing is stored server-side.
import { constantTimeEqual } from "../security/password.ts";

export type CredentialKind = "session" | "token";

export interface Credential {
  /** What it is: a browser session (cookie) or an API token (Authorization: Bearer). */
  k: CredentialKind;
  /** The tenant's catalog id and schema: a credential is valid only at that tenant. */
  t: number;
  s: string;
  /** The user's id in that tenant. */
  u: number;
  /** Issued and expires, in seconds since the epoch. */
  iat: number;
  exp: number;
}

/** How long a session cookie and an API token stay valid. */
export const SESSION_SECONDS = 7 * 24 * 3600;
export const TOKEN_SECONDS = 24 * 3600;

const encoder = new TextEncoder();
// CryptoKeys are plain values (no I/O), so isolates may keep them across requests.
const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  try {
    const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
  } catch {
    return undefined;
  }
}

/** HMAC of a purpose-labelled message, so a signature made for one use never fits another. */
export async function mac(secret: string, purpose: string, message: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(`edge-tenants/${purpose}\n${message}`)));
}

export async function signCredential(secret: string, credential: Credential): Promise<string> {
  const payload = base64url(encoder.encode(JSON.stringify(credential)));
  return `${payload}.${base64url(await mac(secret, "credential", payload))}`;
}

/** The credential, if the signature is ours and it has not expired; undefined otherwise. */
export async function readCredential(secret: string, value: string, now = Date.now()): Promise<Credential | undefined> {
  if (value.length > 1024) return undefined;
  const [payload, signature, ...rest] = value.split(".");
  if (!payload || !signature || rest.length) return undefined;
  const given = fromBase64url(signature);
  if (!given || !constantTimeEqual(given, await mac(secret, "credential", payload))) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(fromBase64url(payload)));
  } catch {
    return undefined;
  }
  const c = parsed as Partial<Credential>;
  if (
    (c.k !== "session" && c.k !== "token") ||
    !Number.isInteger(c.t) ||
    typeof c.s !== "string" ||
    !Number.isInteger(c.u) ||
    !Number.isInteger(c.iat) ||
    !Number.isInteger(c.exp) ||
    c.exp! * 1000 <= now
  ) {
    return undefined;
  }
  return c as Credential;
}

/** A random value, hex. */
export function randomHex(bytes = 16): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The CSRF token for forms: bound to the tenant and the browser's random `csrf` cookie. */
export async function csrfToken(secret: string, tenantId: number, browserNonce: string): Promise<string> {
  return base64url(await mac(secret, "csrf", `${tenantId}\n${browserNonce}`));
}

export async function csrfTokenMatches(secret: string, tenantId: number, browserNonce: string, given: string): Promise<boolean> {
  const bytes = fromBase64url(given);
  return Boolean(bytes) && constantTimeEqual(bytes!, fromBase64url(await csrfToken(secret, tenantId, browserNonce))!);
}
