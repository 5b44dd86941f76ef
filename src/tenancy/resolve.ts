// Host -> tenant, through isolate memory, then Workers KV, then one catalog query.
// - Known hosts: memory (bounded LRU, short TTL) and KV (expirationTtl).
// - Unknown hosts: memory only, in a small LRU of their own, so random subdomains neither write KV
//   nor push real tenants out of memory; catalog lookups for hosts not known yet are rate-limited
//   per client by the caller (`allowCatalogLookup`).
// - Nothing a request awaits was started by another request: each request does its own lookup and
//   only plain, settled values are shared through memory (workerd forbids cross-request I/O).
// - Every entry read back from memory or KV is validated; only this module makes a ResolvedTenant.
import { and, eq, isNull, or } from "drizzle-orm";
import type { NeonHttpDatabase } from "drizzle-orm/neon-http";
import { z } from "zod";
import type * as sharedSchema from "../db/schema/shared.ts";
import { RATE_LIMIT_TIERS, tenantHosts, tenants } from "../db/schema/shared.ts";
import { LruTtlCache, hostCacheKey } from "./cache.ts";
import { SLUG_PATTERN, isValidSchemaName } from "./naming.ts";

export const TenantRecordSchema = z.object({
  id: z.number().int(),
  slug: z.string().regex(SLUG_PATTERN),
  name: z.string(),
  schema: z.string().refine(isValidSchemaName, "not a tenant schema name"),
  status: z.enum(["active", "suspended"]),
  /** Entries cached before tiers existed have none: standard. */
  rateLimitTier: z.enum(RATE_LIMIT_TIERS).default("standard"),
  /**
   * Set while the tenant is in maintenance: the message its hosts answer, and the SHA-256 (hex) of
   * the operator's bypass token. Required: an entry without it was cached by code that did not know
   * maintenance (possibly while the tenant was in it), so it is ignored and the catalog asked again.
   */
  maintenance: z.object({ message: z.string().min(1), bypassHash: z.string().regex(/^[0-9a-f]{64}$/) }).nullable(),
});

export type TenantRecord = z.infer<typeof TenantRecordSchema>;

declare const resolvedBrand: unique symbol;
/**
 * A tenant as this module resolved it (from the catalog, or a validated cache entry). Only this
 * module can make one, and only a ResolvedTenant can be bound to a database client.
 */
export type ResolvedTenant = Readonly<TenantRecord> & { readonly [resolvedBrand]: true };

function resolved(record: TenantRecord): ResolvedTenant {
  return Object.freeze({ ...record }) as ResolvedTenant;
}

/** Validates something that claims to be a tenant; undefined (and a log line) when it is not. */
function validTenant(value: unknown, where: string, host: string): ResolvedTenant | undefined {
  const parsed = TenantRecordSchema.safeParse(value);
  if (parsed.success) return resolved(parsed.data);
  console.warn(
    JSON.stringify({
      event: "tenant_cache_entry_ignored",
      where,
      host,
      problems: parsed.error.issues.map((i) => `${i.path.join(".") || "(entry)"}: ${i.message}`),
    }),
  );
  return undefined;
}

type CatalogDatabase = NeonHttpDatabase<typeof sharedSchema>;

export interface CacheTtls {
  memorySeconds: number;
  negativeMemorySeconds: number;
  kvSeconds: number;
}

export interface ResolveDeps {
  kv: KVNamespace | undefined;
  db: CatalogDatabase;
  ttls: CacheTtls;
  waitUntil: (promise: Promise<unknown>) => void;
  /** Asked before each catalog lookup of a host not known yet; false means over the client's limit. */
  allowCatalogLookup: () => Promise<boolean>;
}

/** Where an answer came from (logged per request). */
export type ResolutionSource = "memory" | "kv" | "catalog" | "fixed";

export type Resolution =
  | { kind: "tenant"; tenant: ResolvedTenant; source: ResolutionSource }
  | { kind: "unknown"; source: ResolutionSource }
  /** The client asked about too many new hosts: no lookup was made. */
  | { kind: "rate_limited" };

export const MEMORY_MAX_ENTRIES = 5_000;
export const UNKNOWN_MAX_ENTRIES = 1_000;
const known = new LruTtlCache<string, unknown>(MEMORY_MAX_ENTRIES);
const unknown = new LruTtlCache<string, true>(UNKNOWN_MAX_ENTRIES);

// evictHost wins over lookups already in flight: a lookup writes its answer back (to memory or KV)
// only if its host was not evicted since the lookup started.
let evictionClock = 0;
let forgottenBefore = 0;
const evictedAt = new Map<string, number>();
const MAX_EVICTION_MARKS = 10_000;

function lastEviction(host: string): number {
  return evictedAt.get(host) ?? forgottenBefore;
}

/** What this isolate did (tests and benchmarks read it). */
export const resolutionStats = { catalogQueries: 0, kvReads: 0, kvWrites: 0, rateLimited: 0, ignoredEntries: 0 };

const KvEntrySchema = z.object({ tenant: z.unknown() });

/** The one catalog query: the tenant that owns `host`, or null. */
export async function lookupHostInCatalog(db: CatalogDatabase, host: string): Promise<TenantRecord | null> {
  resolutionStats.catalogQueries++;
  const rows = await db
    .select({
      id: tenants.id,
      slug: tenants.slug,
      name: tenants.name,
      schema: tenants.schemaName,
      status: tenants.status,
      rateLimitTier: tenants.rateLimitTier,
      maintenanceMessage: tenants.maintenanceMessage,
      maintenanceBypassHash: tenants.maintenanceBypassHash,
    })
    .from(tenantHosts)
    .innerJoin(tenants, eq(tenants.id, tenantHosts.tenantId))
    // A custom hostname (Cloudflare for SaaS) is served only once Cloudflare reports it active.
    .where(and(eq(tenantHosts.host, host), or(isNull(tenantHosts.customHostnameId), eq(tenantHosts.customStatus, "active"))))
    .limit(1);
  const row = rows[0];
  if (!row) return null;
  const { maintenanceMessage, maintenanceBypassHash, ...record } = row;
  return {
    ...record,
    maintenance: maintenanceMessage !== null && maintenanceBypassHash !== null ? { message: maintenanceMessage, bypassHash: maintenanceBypassHash } : null,
  };
}

/**
 * The catalog's answer as a Resolution. A catalog row whose schema name breaks the strict pattern is
 * never bound: it is an error (logged), not a tenant.
 */
function fromCatalogRow(row: TenantRecord | null, host: string): ResolvedTenant | null {
  if (!row) return null;
  const parsed = TenantRecordSchema.safeParse(row);
  if (!parsed.success) {
    throw new Error(`the catalog's entry for ${host} is not a valid tenant (${parsed.error.issues.map((i) => i.path.join(".")).join(", ")})`);
  }
  return resolved(parsed.data);
}

/** Benchmarks, `catalog` mode: one catalog query on every request, no caches. */
export async function resolveFromCatalog(host: string, db: CatalogDatabase): Promise<Resolution> {
  const tenant = fromCatalogRow(await lookupHostInCatalog(db, host), host);
  return tenant ? { kind: "tenant", tenant, source: "catalog" } : { kind: "unknown", source: "catalog" };
}

/**
 * Benchmarks, `fixed:<schema>` mode: every host is this schema's tenant, nothing is looked up. It
 * gets the high tier: it carries the traffic of every host of the benchmark, which the standard
 * per-tenant limit (100 requests/s) would otherwise refuse in part, flattering its throughput.
 */
export function fixedTenant(schema: string): ResolvedTenant {
  if (!isValidSchemaName(schema)) throw new Error(`fixed tenant schema "${schema}" is not a tenant schema name`);
  return resolved({ id: 0, slug: "fixed", name: "fixed", schema, status: "active", rateLimitTier: "high", maintenance: null });
}

function sameTenant(a: TenantRecord | null, b: TenantRecord): boolean {
  return (
    !!a &&
    a.id === b.id &&
    a.slug === b.slug &&
    a.name === b.name &&
    a.schema === b.schema &&
    a.status === b.status &&
    a.rateLimitTier === b.rateLimitTier &&
    a.maintenance?.message === b.maintenance?.message &&
    a.maintenance?.bypassHash === b.maintenance?.bypassHash
  );
}

/** The tenant for a normalized host, through memory, KV and (rate-limited) the catalog. */
export async function resolveTenant(host: string, deps: ResolveDeps): Promise<Resolution> {
  const started = evictionClock;
  const hit = known.get(host);
  if (hit) {
    const tenant = validTenant(hit.value, "memory", host);
    if (tenant) return { kind: "tenant", tenant, source: "memory" };
    resolutionStats.ignoredEntries++;
    known.delete(host);
  }
  if (unknown.get(host)) return { kind: "unknown", source: "memory" };

  const key = hostCacheKey(host);
  if (deps.kv) {
    try {
      resolutionStats.kvReads++;
      const raw = await deps.kv.get(key, "text");
      if (raw !== null) {
        let entry: z.infer<typeof KvEntrySchema> | undefined;
        try {
          entry = KvEntrySchema.parse(JSON.parse(raw));
        } catch {
          entry = undefined;
        }
        if (entry && entry.tenant === null) {
          // Written by an older version of this Worker: an unknown host. Remembered in memory only.
          if (lastEviction(host) <= started) unknown.set(host, true, deps.ttls.negativeMemorySeconds * 1000);
          return { kind: "unknown", source: "kv" };
        }
        const tenant = entry ? validTenant(entry.tenant, "kv", host) : validTenant(undefined, "kv", host);
        if (tenant) {
          if (lastEviction(host) <= started) known.set(host, tenant, deps.ttls.memorySeconds * 1000);
          return { kind: "tenant", tenant, source: "kv" };
        }
        resolutionStats.ignoredEntries++;
      }
    } catch (error) {
      console.warn(JSON.stringify({ event: "tenant_cache_kv_read_failed", host, error: String(error) }));
    }
  }

  if (!(await deps.allowCatalogLookup())) {
    resolutionStats.rateLimited++;
    return { kind: "rate_limited" };
  }
  const tenant = fromCatalogRow(await lookupHostInCatalog(deps.db, host), host);
  if (lastEviction(host) > started) {
    // Evicted while we looked: answer, but write nothing back.
    return tenant ? { kind: "tenant", tenant, source: "catalog" } : { kind: "unknown", source: "catalog" };
  }
  if (!tenant) {
    unknown.set(host, true, deps.ttls.negativeMemorySeconds * 1000);
    return { kind: "unknown", source: "catalog" };
  }
  known.set(host, tenant, deps.ttls.memorySeconds * 1000);
  if (deps.kv) {
    const kv = deps.kv;
    deps.waitUntil(
      (async () => {
        resolutionStats.kvWrites++;
        await kv.put(key, JSON.stringify({ tenant }), { expirationTtl: Math.max(60, deps.ttls.kvSeconds) });
        // A purge (tenants CLI) that ran between our catalog read and this write would be undone by
        // it: read the catalog again after writing, and take the entry back if the answer changed.
        const now = await lookupHostInCatalog(deps.db, host);
        if (!sameTenant(now, tenant)) {
          known.delete(host);
          await kv.delete(key);
        }
      })().catch((error: unknown) => {
        console.warn(JSON.stringify({ event: "tenant_cache_kv_write_failed", host, error: String(error) }));
      }),
    );
  }
  return { kind: "tenant", tenant, source: "catalog" };
}

/** Forgets a host in this isolate and in KV (its tenant's schema turned out to be gone). */
export async function evictHost(host: string, kv: KVNamespace | undefined): Promise<void> {
  evictionClock++;
  if (evictedAt.size >= MAX_EVICTION_MARKS) {
    evictedAt.clear();
    forgottenBefore = evictionClock;
  }
  evictedAt.set(host, evictionClock);
  known.delete(host);
  unknown.delete(host);
  await kv?.delete(hostCacheKey(host));
}

/** Test hook: empties this isolate's memory tiers. */
export function clearMemoryCache(): void {
  known.clear();
  unknown.clear();
}

/** Test hook: puts a raw value in the memory tier, as if a bug had stored it. */
export function putRawMemoryEntry(host: string, value: unknown, ttlMs = 60_000): void {
  known.set(host, value, ttlMs);
}
