// Host -> tenant, through isolate memory, then Workers KV, then one catalog query. Unknown hosts
// are cached too (for a shorter time) so random subdomains cannot hammer the database.
import { eq } from "drizzle-orm";
import type { NeonHttpDatabase } from "drizzle-orm/neon-http";
import type * as sharedSchema from "../db/schema/shared.ts";
import { tenantHosts, tenants } from "../db/schema/shared.ts";
import { LruTtlCache, hostCacheKey } from "./cache.ts";

export interface TenantRecord {
  id: number;
  slug: string;
  name: string;
  schema: string;
  status: "active" | "suspended";
}

type CatalogDatabase = NeonHttpDatabase<typeof sharedSchema>;

export interface CacheTtls {
  memorySeconds: number;
  negativeMemorySeconds: number;
  kvSeconds: number;
  negativeKvSeconds: number;
}

export interface ResolveDeps {
  kv: KVNamespace | undefined;
  db: CatalogDatabase;
  ttls: CacheTtls;
  waitUntil: (promise: Promise<unknown>) => void;
}

const MEMORY_MAX_ENTRIES = 5_000;
const memory = new LruTtlCache<string, TenantRecord | null>(MEMORY_MAX_ENTRIES);
const inFlight = new Map<string, Promise<TenantRecord | null>>();

/** How many catalog queries this isolate made (benchmarks and tests read it). */
export const resolutionStats = { catalogQueries: 0, kvReads: 0 };

type KvEntry = { tenant: TenantRecord | null };

/** The one catalog query: the tenant that owns `host`, or null. */
export async function lookupHostInCatalog(db: CatalogDatabase, host: string): Promise<TenantRecord | null> {
  resolutionStats.catalogQueries++;
  const rows = await db
    .select({ id: tenants.id, slug: tenants.slug, name: tenants.name, schema: tenants.schemaName, status: tenants.status })
    .from(tenantHosts)
    .innerJoin(tenants, eq(tenants.id, tenantHosts.tenantId))
    .where(eq(tenantHosts.host, host))
    .limit(1);
  return rows[0] ?? null;
}

async function fromKvOrCatalog(host: string, deps: ResolveDeps): Promise<TenantRecord | null> {
  const key = hostCacheKey(host);
  if (deps.kv) {
    try {
      resolutionStats.kvReads++;
      const cached = await deps.kv.get<KvEntry>(key, "json");
      if (cached && "tenant" in cached) return cached.tenant;
    } catch (error) {
      console.warn(`tenant cache: KV read failed for ${host}, asking the catalog`, error);
    }
  }
  const tenant = await lookupHostInCatalog(deps.db, host);
  if (deps.kv) {
    const expirationTtl = Math.max(60, tenant ? deps.ttls.kvSeconds : deps.ttls.negativeKvSeconds);
    deps.waitUntil(
      deps.kv.put(key, JSON.stringify({ tenant } satisfies KvEntry), { expirationTtl }).catch((error: unknown) => {
        console.warn(`tenant cache: KV write failed for ${host}`, error);
      }),
    );
  }
  return tenant;
}

/** The tenant for a normalized host, or null when no tenant has it. */
export async function resolveTenant(host: string, deps: ResolveDeps): Promise<TenantRecord | null> {
  const hit = memory.get(host);
  if (hit) return hit.value;
  // One lookup per host per isolate at a time, however many requests arrive together.
  let pending = inFlight.get(host);
  if (!pending) {
    pending = fromKvOrCatalog(host, deps).finally(() => inFlight.delete(host));
    inFlight.set(host, pending);
  }
  const tenant = await pending;
  const ttl = tenant ? deps.ttls.memorySeconds : deps.ttls.negativeMemorySeconds;
  memory.set(host, tenant, ttl * 1000);
  return tenant;
}

/** Forgets a host in this isolate and in KV (its tenant's schema turned out to be gone). */
export async function evictHost(host: string, kv: KVNamespace | undefined): Promise<void> {
  memory.delete(host);
  await kv?.delete(hostCacheKey(host));
}

/** Test hook: empties this isolate's memory tier. */
export function clearMemoryCache(): void {
  memory.clear();
}
