import { neon, neonConfig, type NeonQueryFunction } from "@neondatabase/serverless";
import { drizzle, type NeonHttpDatabase } from "drizzle-orm/neon-http";
import type { WorkerConfig } from "../env.ts";
import * as sharedSchema from "./schema/shared.ts";
import { tenantTables, type TenantTables } from "./schema/tenant.ts";
import { LruTtlCache } from "../tenancy/cache.ts";

type SharedSchema = typeof sharedSchema;
export type TenantDatabase = NeonHttpDatabase<SharedSchema & TenantTables>;

const clients = new Map<string, NeonQueryFunction<false, false>>();

/**
 * Points the driver at the local SQL endpoint when (and only when) LOCAL_SQL_ENDPOINT is set: local
 * mode. Without it the driver derives Neon's own endpoint from the connection string's host. The
 * setting is global to the isolate, so it is applied on every request, before any query.
 */
export function configureDriver(config: WorkerConfig): void {
  if (config.LOCAL_SQL_ENDPOINT) {
    const endpoint = config.LOCAL_SQL_ENDPOINT;
    neonConfig.fetchEndpoint = () => endpoint;
  }
}

/** The driver for a connection string: every query is one HTTP request; no session state survives it. */
function sqlClient(config: WorkerConfig): NeonQueryFunction<false, false> {
  let client = clients.get(config.DATABASE_URL);
  if (!client) {
    client = neon(config.DATABASE_URL);
    clients.set(config.DATABASE_URL, client);
  }
  return client;
}

const catalogDatabases = new Map<string, NeonHttpDatabase<SharedSchema>>();

/** Drizzle over the shared tables only (the catalog); one per connection string and isolate. */
export function catalogDatabase(config: WorkerConfig): NeonHttpDatabase<SharedSchema> {
  let db = catalogDatabases.get(config.DATABASE_URL);
  if (!db) {
    db = drizzle({ client: sqlClient(config), schema: sharedSchema });
    catalogDatabases.set(config.DATABASE_URL, db);
  }
  return db;
}

const tenantDatabases = new LruTtlCache<string, { db: TenantDatabase; tables: TenantTables }>(1_000);

/**
 * Drizzle bound to one tenant's tables (schema name from the catalog) and the shared ones;
 * memoized per schema, size-bounded, so warm requests build nothing.
 */
export function tenantDatabase(config: WorkerConfig, schemaName: string): { db: TenantDatabase; tables: TenantTables } {
  const key = `${config.DATABASE_URL}\n${schemaName}`;
  const hit = tenantDatabases.get(key);
  if (hit) return hit.value;
  const tables = tenantTables(schemaName);
  const bound = { db: drizzle({ client: sqlClient(config), schema: { ...sharedSchema, ...tables } }), tables };
  tenantDatabases.set(key, bound, Number.POSITIVE_INFINITY);
  return bound;
}
