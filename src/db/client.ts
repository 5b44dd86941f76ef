// The Worker's database client, a choice of configuration:
// - `neon-http` (default): `@neondatabase/serverless` over HTTP (`neon()`) with drizzle-orm/neon-http.
//   Every query is one HTTP request; no session exists between them.
// - `hyperdrive` (when a HYPERDRIVE binding exists): Cloudflare Hyperdrive with a TCP driver (`pg`,
//   under the nodejs_compat flag) and drizzle-orm/node-postgres. Each request opens its own
//   connection on its first query and closes it when the request is done (Hyperdrive pools the
//   server connections on Cloudflare's side, in transaction mode); no connection is shared across
//   requests (workerd forbids it; docs/hyperdrive.md).
// Handlers see the same tenant-bound type (`TenantDatabase`) with either client.
import { neon, neonConfig, type NeonQueryFunction } from "@neondatabase/serverless";
import { drizzle, type NeonHttpDatabase, type NeonHttpQueryResultHKT } from "drizzle-orm/neon-http";
import { drizzle as drizzleNodePg, type NodePgDatabase } from "drizzle-orm/node-postgres";
import type { PgDeleteBase, PgInsertBuilder, PgUpdateBuilder, SelectedFields } from "drizzle-orm/pg-core";
import type { CreatePgSelectFromBuilderMode } from "drizzle-orm/pg-core/query-builders/select.types";
import type { GetSelectTableName, GetSelectTableSelection } from "drizzle-orm/query-builders/select.types";
import type { Context } from "hono";
import { tryGetContext } from "hono/context-storage";
import { createMiddleware } from "hono/factory";
import pg from "pg";
import * as pgCloudflare from "pg-cloudflare";
import type { AppEnv, WorkerConfig } from "../env.ts";
import { currentTelemetry } from "../telemetry.ts";
import type { ResolvedTenant } from "../tenancy/resolve.ts";
import * as sharedSchema from "./schema/shared.ts";
import { tenantTables, type TenantTables } from "./schema/tenant.ts";
import { LruTtlCache } from "../tenancy/cache.ts";

type SharedSchema = typeof sharedSchema;

/** Which client the configuration selects: `hyperdrive` when a HYPERDRIVE binding exists. */
export type DatabaseClientKind = "neon-http" | "hyperdrive";

export function databaseClientKind(config: WorkerConfig): DatabaseClientKind {
  return config.HYPERDRIVE ? "hyperdrive" : "neon-http";
}

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
 * What handlers get as `c.var.db`: Drizzle bound to one tenant's tables, over either client. It
 * accepts only that tenant's tables (the relational `query` API knows nothing else; `select`,
 * `insert`, `update` and `delete` refuse other tables at compile time) and has no raw `execute`: the
 * catalog (`shared.tenants`, `shared.tenant_hosts`) stays inside the tenancy module. `batch` runs its
 * queries in one transaction with both clients.
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

/**
 * Drizzle over the shared tables (the catalog). With Hyperdrive it is drizzle-orm/node-postgres; the
 * parts the Worker uses (the query builder, `execute(...).rows`) behave the same.
 */
export type CatalogDatabase = NeonHttpDatabase<SharedSchema>;

// ---------------------------------------------------------------------------------------------
// neon-http

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

function databaseUrl(config: WorkerConfig): string {
  if (!config.DATABASE_URL) throw new Error("DATABASE_URL is not set and there is no HYPERDRIVE binding");
  return config.DATABASE_URL;
}

/** The driver for a connection string: every query is one HTTP request; no session state survives it. */
function sqlClient(config: WorkerConfig): NeonQueryFunction<false, false> {
  const url = databaseUrl(config);
  let client = clients.get(url);
  if (!client) {
    client = neon(url);
    clients.set(url, client);
  }
  return client;
}

// ---------------------------------------------------------------------------------------------
// hyperdrive

/** The connection could not be opened or was lost: the database is unavailable (src/errors). */
export class DatabaseConnectionError extends Error {
  override readonly name = "DatabaseConnectionError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
  }
}

/** One request's TCP connection (through Hyperdrive), opened on its first query. */
interface RequestConnection {
  client: pg.Client;
  ready: Promise<void>;
  /** Queries (or transactions) sent and not answered yet. */
  pending: number;
  /** Set when the client reported an error or its end: no further query may use it. */
  broken?: Error;
  /** Between a BEGIN and its COMMIT/ROLLBACK: the transaction lives and dies with this connection. */
  inTransaction?: boolean;
}

/** What a statement does to the connection's transaction, from its text. */
function transactionKind(config: unknown): "begin" | "end" | undefined {
  const text = typeof config === "string" ? config : (config as { text?: unknown } | undefined)?.text;
  if (typeof text !== "string") return undefined;
  if (/^\s*(begin|start\s+transaction)\b/i.test(text)) return "begin";
  if (/^\s*(commit|rollback|end|abort)\b/i.test(text)) return "end";
  return undefined;
}

/** Per request (Hono's context): its open connection, and whether the request is done. */
const connections = new WeakMap<Context<AppEnv>, RequestConnection>();
const finishedRequests = new WeakSet<Context<AppEnv>>();

// pg-cloudflare's types describe its non-Worker build (empty); the Worker build exports the socket.
const { CloudflareSocket } = pgCloudflare as unknown as { CloudflareSocket: new (ssl: boolean) => unknown };

/**
 * A TCP client for the binding's connection string, over the Workers socket API (pg-cloudflare,
 * named here rather than left to pg's runtime detection, which bundlers without the `workerd`
 * condition get wrong). Its `error` events go to `onError` (a socket closed by `end()` reports one).
 */
export function newClient(hyperdrive: Hyperdrive, onError: (error: Error) => void): pg.Client {
  const client = new pg.Client({
    connectionString: hyperdrive.connectionString,
    application_name: "edge-tenants-worker",
    // pg calls it with the connection's config.
    stream: ((config: { ssl?: unknown }) => new CloudflareSocket(Boolean(config.ssl))) as never,
  });
  client.on("error", onError);
  return client;
}

/** Outside any request (code that queries on its own, e.g. tests): a connection for this one call. */
async function onOwnConnection<T>(hyperdrive: Hyperdrive, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = newClient(hyperdrive, () => {});
  try {
    await client.connect();
  } catch (error) {
    throw new DatabaseConnectionError("could not connect to the database through Hyperdrive", { cause: error });
  }
  try {
    return await work(client);
  } finally {
    await client.end().catch(() => {});
  }
}

function waitUntilOf(c: Context<AppEnv>, work: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(work);
  } catch {
    // No execution context (a bare app.fetch): the work runs on by itself.
  }
}

function openConnection(c: Context<AppEnv>, hyperdrive: Hyperdrive): RequestConnection {
  const conn = { ready: Promise.resolve(), pending: 0 } as RequestConnection;
  const client = newClient(hyperdrive, (error) => {
    conn.broken ??= error;
  });
  conn.client = client;
  client.on("end", () => {
    conn.broken ??= new Error("the connection ended");
  });
  const telemetry = currentTelemetry(c);
  const started = Date.now();
  conn.ready = client.connect().then(
    () => {
      if (telemetry) telemetry.dbMs += Date.now() - started;
    },
    (error: unknown) => {
      if (telemetry) telemetry.dbMs += Date.now() - started;
      conn.broken = error instanceof Error ? error : new Error(String(error));
      throw new DatabaseConnectionError("could not connect to the database through Hyperdrive", { cause: error });
    },
  );
  conn.ready.catch(() => {});
  return conn;
}

function closeConnection(c: Context<AppEnv>, conn: RequestConnection): void {
  if (connections.get(c) === conn) connections.delete(c);
  waitUntilOf(c, conn.client.end().catch(() => {}));
}

/**
 * A transaction needs all its statements on one connection: the request's. Outside a request each
 * query would get a connection of its own, so transactions refuse to run there.
 */
function requireRequest(what: string): void {
  if (!tryGetContext<AppEnv>()) throw new Error(`${what} with the Hyperdrive client runs only while serving a request (its connection is the request's)`);
}

/**
 * Runs `work` on this request's connection, opening it first if needed. A connection lost inside a
 * transaction is not replaced until the transaction's end (COMMIT/ROLLBACK) has been refused too:
 * its remaining statements would otherwise run in autocommit on a new connection, and part of the
 * transaction would be committed while the caller saw success.
 */
async function onRequestConnection<T>(hyperdrive: Hyperdrive, work: (client: pg.Client) => Promise<T>, kind?: "begin" | "end"): Promise<T> {
  const c = tryGetContext<AppEnv>();
  if (!c) return onOwnConnection(hyperdrive, work);
  let conn = connections.get(c);
  if (conn?.broken && conn.inTransaction) {
    if (kind === "end") conn.inTransaction = false;
    throw new DatabaseConnectionError("the connection to the database (through Hyperdrive) was lost inside a transaction, which did not commit", {
      cause: conn.broken,
    });
  }
  if (!conn || conn.broken) {
    conn = openConnection(c, hyperdrive);
    connections.set(c, conn);
  }
  conn.pending++;
  try {
    await conn.ready;
    try {
      const result = await work(conn.client);
      if (kind === "begin") conn.inTransaction = true;
      return result;
    } catch (error) {
      // An error without SQLSTATE on a connection that broke meanwhile: the database went away.
      if (conn.broken && !(error instanceof pg.DatabaseError)) {
        throw new DatabaseConnectionError("the connection to the database (through Hyperdrive) was lost", { cause: error });
      }
      throw error;
    }
  } finally {
    if (kind === "end") conn.inTransaction = false;
    conn.pending--;
    // Work that outlived the request (ctx.waitUntil) closes its connection when it is done.
    if (conn.pending === 0 && (finishedRequests.has(c) || conn.broken)) closeConnection(c, conn);
  }
}

/**
 * What drizzle-orm/node-postgres sees as its client: each query goes to the connection of the
 * request being served (found through Hono's context storage), timed and counted for its log line.
 */
function requestClient(hyperdrive: Hyperdrive): pg.Client {
  const proxy = {
    query(config: unknown, values?: unknown) {
      return onRequestConnection(
        hyperdrive,
        async (client) => {
          const telemetry = currentTelemetry(tryGetContext<AppEnv>());
          const started = Date.now();
          try {
            return await client.query(config as pg.QueryConfig, values as unknown[]);
          } finally {
            if (telemetry) {
              telemetry.dbQueries++;
              telemetry.dbMs += Date.now() - started;
            }
          }
        },
        transactionKind(config),
      );
    },
  };
  return proxy as unknown as pg.Client;
}

/**
 * drizzle-orm/node-postgres has no `batch`; this one runs the queries in order in one transaction on
 * the request's connection, as neon-http's batch does in one HTTP request.
 */
function withBatch<T extends NodePgDatabase<Record<string, unknown>>>(db: T, hyperdrive: Hyperdrive): T {
  const batch = (queries: readonly PromiseLike<unknown>[]) =>
    onRequestConnection(hyperdrive, async () => {
      requireRequest("batch");
      return db.transaction(async () => {
        const results: unknown[] = [];
        for (const query of queries) results.push(await query);
        return results;
      });
    });
  return Object.assign(db, { batch });
}

/**
 * Closes the request's connection (Hyperdrive) once the response is made: placed right after the
 * context storage, so the error handler's queries have run. Work the request left behind
 * (ctx.waitUntil) may still query; it opens and closes a connection of its own.
 */
export function requestConnections() {
  return createMiddleware<AppEnv>(async function requestConnectionsMiddleware(c, next) {
    try {
      await next();
    } finally {
      finishedRequests.add(c);
      const conn = connections.get(c);
      if (conn && conn.pending === 0) closeConnection(c, conn);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Both

/** The memo key of a configuration's client: the connection string, or the Hyperdrive binding. */
const hyperdriveKeys = new WeakMap<Hyperdrive, string>();
let hyperdriveCount = 0;
function clientKey(config: WorkerConfig): string {
  if (!config.HYPERDRIVE) return `neon\n${databaseUrl(config)}`;
  let key = hyperdriveKeys.get(config.HYPERDRIVE);
  if (!key) {
    key = `hyperdrive\n${++hyperdriveCount}`;
    hyperdriveKeys.set(config.HYPERDRIVE, key);
  }
  return key;
}

const catalogDatabases = new Map<string, CatalogDatabase>();

/** Drizzle over the shared tables only (the catalog); for the tenancy module and /health. */
export function catalogDatabase(config: WorkerConfig): CatalogDatabase {
  const key = clientKey(config);
  let db = catalogDatabases.get(key);
  if (!db) {
    db = config.HYPERDRIVE
      ? (drizzleNodePg({ client: requestClient(config.HYPERDRIVE), schema: sharedSchema }) as unknown as CatalogDatabase)
      : drizzle({ client: sqlClient(config), schema: sharedSchema });
    catalogDatabases.set(key, db);
  }
  return db;
}

const tenantDatabases = new LruTtlCache<string, { db: TenantDatabase; tables: TenantTables }>(1_000);

/**
 * Drizzle bound to a resolved tenant's tables (its schema name from the catalog, checked against the
 * strict pattern when it was resolved); memoized per schema, size-bounded, so warm requests build
 * nothing (with Hyperdrive, the memoized object holds no connection: each query finds its request's).
 * Only a ResolvedTenant, which only the tenancy module makes, can be bound.
 */
export function bindTenant(config: WorkerConfig, tenant: ResolvedTenant): { db: TenantDatabase; tables: TenantTables } {
  const key = `${clientKey(config)}\n${tenant.schema}`;
  const hit = tenantDatabases.get(key);
  if (hit) return hit.value;
  const tables = tenantTables(tenant.schema);
  const db = config.HYPERDRIVE
    ? (withBatch(drizzleNodePg({ client: requestClient(config.HYPERDRIVE), schema: tables }), config.HYPERDRIVE) as unknown as TenantDatabase)
    : (drizzle({ client: sqlClient(config), schema: tables }) as TenantDatabase);
  const bound = { db, tables };
  tenantDatabases.set(key, bound, Number.POSITIVE_INFINITY);
  return bound;
}

/** One raw statement and its parameters ($1, $2, ...). */
export interface Statement {
  text: string;
  params: unknown[];
}

/** One raw statement as the app role; its rows. For code outside drizzle (sign-up's claim). */
export async function queryRows(config: WorkerConfig, statement: Statement): Promise<unknown[]> {
  if (config.HYPERDRIVE) {
    const client = requestClient(config.HYPERDRIVE);
    return (await client.query(statement.text, statement.params)).rows;
  }
  configureDriver(config);
  const sql = sqlClient(config);
  return (await sql.query(statement.text, statement.params)) as unknown[];
}

/**
 * Raw statements in one transaction, all or nothing, as the app role: each statement's rows. Over
 * HTTP it is one request (`sql.transaction([...])`); with Hyperdrive BEGIN ... COMMIT on the
 * request's connection (ROLLBACK on any error).
 */
export async function transactionRows(config: WorkerConfig, statements: Statement[]): Promise<unknown[][]> {
  if (config.HYPERDRIVE) {
    const client = requestClient(config.HYPERDRIVE);
    requireRequest("a transaction");
    return onRequestConnection(config.HYPERDRIVE, async () => {
      await client.query("BEGIN");
      try {
        const results: unknown[][] = [];
        for (const s of statements) results.push((await client.query(s.text, s.params)).rows);
        await client.query("COMMIT");
        return results;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    });
  }
  configureDriver(config);
  const sql = sqlClient(config);
  return (await sql.transaction(statements.map((s) => sql.query(s.text, s.params)))) as unknown[][];
}
