// The one rule for tenant slugs, schema names and hosts, shared by the Worker and the CLI.

/**
 * Slugs: a lowercase letter, then up to 55 of [a-z0-9_]. (Schemas made before schema keys existed are
 * named `tenant_<slug>`, which this length keeps within PostgreSQL's 63 bytes.)
 */
export const SLUG_PATTERN = /^[a-z][a-z0-9_]{0,55}$/;
export const TENANT_SCHEMA_PREFIX = "tenant_";
/** The schema tenant tables are written against; it never exists in any database. */
export const PLACEHOLDER_SCHEMA = "tenant";
export const SHARED_SCHEMA = "shared";
export const MAX_HOST_LENGTH = 253;

export function isValidSlug(slug: string): boolean {
  return SLUG_PATTERN.test(slug);
}

export function slugError(slug: string): string | undefined {
  if (isValidSlug(slug)) return undefined;
  return (
    `invalid slug "${slug}": use a lowercase letter followed by up to 55 lowercase letters, digits ` +
    `or underscores (e.g. acme or globex_eu)`
  );
}

/**
 * Tenant schema names: `tenant_` and a key assigned once, when the tenant is created, and never
 * assigned again (new keys are 12 characters of lowercase base32; schemas created before keys
 * existed keep their `tenant_<slug>` name). The Worker binds only names that match this pattern.
 */
export const SCHEMA_NAME_PATTERN = /^tenant_[a-z0-9_]{1,56}$/;

export function isValidSchemaName(name: string): boolean {
  return SCHEMA_NAME_PATTERN.test(name);
}

const SCHEMA_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567";
export const SCHEMA_KEY_LENGTH = 12;

/**
 * A new tenant schema name: `tenant_` and 12 characters of lowercase base32 from a cryptographic
 * random source (60 bits). The caller must still check the name against the registry of every name
 * ever assigned (`shared.tenant_schemas`) and draw again on a collision.
 */
export function newTenantSchemaName(): string {
  const bytes = new Uint8Array(SCHEMA_KEY_LENGTH);
  crypto.getRandomValues(bytes);
  // 256 is a multiple of 32, so `byte & 31` is uniform over the alphabet.
  let key = "";
  for (const b of bytes) key += SCHEMA_KEY_ALPHABET[b & 31];
  return `${TENANT_SCHEMA_PREFIX}${key}`;
}

/** Quotes an identifier for SQL, always. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Lowercases a host and strips a port and a trailing dot. Returns undefined when what is left is not
 * a DNS name: empty, over 253 bytes, a label over 63 bytes or with characters other than letters,
 * digits and inner hyphens, or an IP literal.
 */
export function normalizeHost(raw: string | undefined | null): string | undefined {
  if (!raw) return undefined;
  let host = raw.trim().toLowerCase();
  if (host.startsWith("[")) return undefined; // IPv6 literal
  const colon = host.indexOf(":");
  if (colon !== -1) {
    if (!/^\d{1,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (host.length === 0 || host.length > MAX_HOST_LENGTH) return undefined;
  const labels = host.split(".");
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return undefined; // IPv4 literal or numeric TLD
  return host;
}

/** A host as the CLI accepts it: a DNS name, without port. Undefined when valid. */
export function hostError(raw: string): string | undefined {
  if (!raw.includes(":") && normalizeHost(raw)) return undefined;
  return (
    `invalid host "${raw}": give a DNS name such as acme.example.com or acme.localhost ` +
    `(letters, digits and inner hyphens in dot-separated labels; no port, no IP address)`
  );
}
