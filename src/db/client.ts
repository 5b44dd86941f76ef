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
 * The driver for a connection string: every query is one HTTP request and no session state
 * survives it. Only local mode sets LOCAL_SQL_ENDPOINT; without it the driver derives Neon's own
 * endpoint from the connection string's host.
 */
function sqlClient(config: WorkerConfig): NeonQueryFunction<false, false> {
  if (config.LOCAL_SQL_ENDPOINT) {
    const endpoint = config.LOCAL_SQL_ENDPOINT;
    neonConfig.fetchEndpoint = () => endpoint;
  }
  let client = clients.get(config.DATABASE_URL);
  if (!client) {
    client = neon(config.DATABASE_URL);
    clients.set(config.DATABASE_URL, client);
  }
  return client;
}

/** Drizzle over the shared tables only (the catalog). */
export function catalogDatabase(config: WorkerConfig): NeonHttpDatabase<SharedSchema> {
  return drizzle({ client: sqlClient(config), schema: sharedSchema });
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
