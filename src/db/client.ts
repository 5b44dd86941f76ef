import { neon, neonConfig, type NeonQueryFunction } from "@neondatabase/serverless";
import { drizzle, type NeonHttpDatabase, type NeonHttpQueryResultHKT } from "drizzle-orm/neon-http";
import type { PgDeleteBase, PgInsertBuilder, PgUpdateBuilder, SelectedFields } from "drizzle-orm/pg-core";
import type { CreatePgSelectFromBuilderMode } from "drizzle-orm/pg-core/query-builders/select.types";
import type { GetSelectTableName, GetSelectTableSelection } from "drizzle-orm/query-builders/select.types";
import { tryGetContext } from "hono/context-storage";
import type { AppEnv, WorkerConfig } from "../env.ts";
import { currentTelemetry } from "../telemetry.ts";
import type { ResolvedTenant } from "../tenancy/resolve.ts";
import * as sharedSchema from "./schema/shared.ts";
import { tenantTables, type TenantTables } from "./schema/tenant.ts";
import { LruTtlCache } from "../tenancy/cache.ts";

type SharedSchema = typeof sharedSchema;

/** The tables a handler may name: this tenant's, never the catalog's. */
export type TenantTable = TenantTables["users"] | TenantTables["items"];

interface TenantSelectBuilder<TSelection extends SelectedFields | undefined> {
  from<TFrom extends TenantTable>(
    source: TFrom,
  ): CreatePgSelectFromBuilderMode<
    "db",
    GetSelectTableName<TFrom>,
    TSelection extends undefined ? GetSelectTableSelection<TFrom> : TSelection,
    TSelection extends undefined ? "single" : "partial"
  >;
}

/**
 * What handlers get as `c.var.db`: Drizzle over HTTP, bound to one tenant's tables. It accepts only
 * that tenant's tables (the relational `query` API knows nothing else; `select`, `insert`, `update`
 * and `delete` refuse other tables at compile time) and has no raw `execute`: the catalog
 * (`shared.tenants`, `shared.tenant_hosts`) stays inside the tenancy module.
 */
export interface TenantDatabase {
  readonly query: NeonHttpDatabase<TenantTables>["query"];
  select(): TenantSelectBuilder<undefined>;
  select<TSelection extends SelectedFields>(fields: TSelection): TenantSelectBuilder<TSelection>;
  insert<TTable extends TenantTable>(table: TTable): PgInsertBuilder<TTable, NeonHttpQueryResultHKT>;
  update<TTable extends TenantTable>(table: TTable): PgUpdateBuilder<TTable, NeonHttpQueryResultHKT>;
  delete<TTable extends TenantTable>(table: TTable): PgDeleteBase<TTable, NeonHttpQueryResultHKT>;
  readonly batch: NeonHttpDatabase<TenantTables>["batch"];
}

const clients = new Map<string, NeonQueryFunction<false, false>>();

/**
 * The driver's fetch: the request's own fetch, timed and counted for that request's log line and
 * data point (src/telemetry.ts). The request is found through Hono's context storage; nothing is
 * shared between requests.
 */
neonConfig.fetchFunction = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
  const telemetry = currentTelemetry(tryGetContext<AppEnv>());
  const started = Date.now();
  try {
    return await fetch(input, init);
  } finally {
    if (telemetry) {
      telemetry.dbQueries++;
      telemetry.dbMs += Date.now() - started;
    }
  }
};

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

/** Drizzle over the shared tables only (the catalog); for the tenancy module and /health. */
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
 * Drizzle bound to a resolved tenant's tables (its schema name from the catalog, checked against the
 * strict pattern when it was resolved); memoized per schema, size-bounded, so warm requests build
 * nothing. Only a ResolvedTenant, which only the tenancy module makes, can be bound.
 */
export function bindTenant(config: WorkerConfig, tenant: ResolvedTenant): { db: TenantDatabase; tables: TenantTables } {
  const key = `${config.DATABASE_URL}\n${tenant.schema}`;
  const hit = tenantDatabases.get(key);
  if (hit) return hit.value;
  const tables = tenantTables(tenant.schema);
  const bound = { db: drizzle({ client: sqlClient(config), schema: tables }) as TenantDatabase, tables };
  tenantDatabases.set(key, bound, Number.POSITIVE_INFINITY);
  return bound;
}
