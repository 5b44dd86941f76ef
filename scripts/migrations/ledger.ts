// The migration ledger (`public.schema_migrations`, the only object in `public`) and the state of
// the whole fleet, read in one query.
import type pg from "pg";
import type { Migration, MigrationSet, Track } from "./files.ts";

export const LEDGER_TABLE = "public.schema_migrations";

/** Every command that changes the catalog or the schemas holds this advisory lock. */
export const MIGRATION_LOCK_KEY = 7_341_265_019;

export const CREATE_LEDGER_SQL = `
CREATE TABLE ${LEDGER_TABLE} (
  schema_name text NOT NULL,
  track text NOT NULL CHECK (track IN ('shared', 'tenant')),
  migration text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schema_name, migration)
);
CREATE INDEX schema_migrations_track_migration_idx ON ${LEDGER_TABLE} (track, migration);`;

export interface TenantState {
  id: number;
  slug: string;
  schema: string;
  applied: string[];
}

export interface LedgerEntry {
  track: Track;
  migration: string;
  /** The lowest and highest checksum recorded for this file (different: it was edited between runs). */
  checksums: string[];
  /** Schemas it was applied to. */
  count: number;
}

/** The whole fleet at a glance: per migration, where it is applied; and how many tenants exist. */
export interface FleetSummary {
  tenantCount: number;
  entries: LedgerEntry[];
}

export class NotInitializedError extends Error {
  constructor() {
    super("the database is not initialized: run `npm run tenants -- init` first");
  }
}

export async function ledgerExists(client: pg.ClientBase): Promise<boolean> {
  const { rows } = await client.query<{ exists: boolean }>(
    `SELECT to_regclass('${LEDGER_TABLE}') IS NOT NULL AS exists`,
  );
  return rows[0]!.exists;
}

const FLEET_SUMMARY_SQL = `
SELECT
  (SELECT count(*)::int FROM shared.tenants) AS tenant_count,
  coalesce((
    SELECT json_agg(json_build_object('track', track, 'migration', migration, 'checksums', checksums, 'count', n))
    -- min/max rather than array_agg(DISTINCT): no sort, and any difference still shows.
    FROM (SELECT track, migration, ARRAY[min(checksum), max(checksum)] AS checksums, count(*)::int AS n
          FROM ${LEDGER_TABLE} l
          -- Rows of a schema no tenant owns (dropped by hand) must not count towards "everywhere".
          WHERE track = 'shared' OR EXISTS (SELECT 1 FROM shared.tenants t WHERE t.schema_name = l.schema_name)
          GROUP BY track, migration) c
  ), '[]') AS entries`;

/**
 * The same from the counters that triggers keep in the transactions that write the ledger and the
 * registry (shared.ledger_counts and shared.fleet_size, from shared migration 0007_tenant_pool): O(1) in the
 * fleet's size. The fleet is every live schema: tenants and unclaimed pool slots.
 */
const COUNTED_FLEET_SUMMARY_SQL = `
SELECT
  (SELECT schemas::int FROM shared.fleet_size) AS tenant_count,
  coalesce((
    SELECT json_agg(json_build_object('track', track, 'migration', migration, 'checksums', checksums, 'count', n))
    FROM (SELECT 'shared' AS track, migration, ARRAY[min(checksum), max(checksum)] AS checksums, count(*)::int AS n
          FROM ${LEDGER_TABLE} WHERE schema_name = 'shared' AND track = 'shared' GROUP BY migration
          UNION ALL
          SELECT 'tenant', migration, ARRAY[min(checksum), max(checksum)], sum(schemas)::int
          FROM shared.ledger_counts GROUP BY migration) c
  ), '[]') AS entries`;

/** Whether the ledger exists, and whether the fleet counters (shared migration 0007_tenant_pool) do. */
export async function ledgerState(client: pg.ClientBase): Promise<LedgerState> {
  return (await client.query<LedgerState>(`SELECT ${LEDGER_STATE_COLUMNS}`)).rows[0]!;
}

export interface LedgerState {
  exists: boolean;
  counted: boolean;
  pool: boolean;
}

/** ledgerState's columns, for a SELECT that reads them with other things. */
export const LEDGER_STATE_COLUMNS = `to_regclass('${LEDGER_TABLE}') IS NOT NULL AS exists,
  to_regclass('shared.ledger_counts') IS NOT NULL AS counted,
  to_regclass('shared.tenant_pool') IS NOT NULL AS pool`;

/**
 * The state of the whole fleet in one query, whatever the tenant count: per migration file, its
 * checksums and how many schemas have it. At head when every file is everywhere. Reads the counters
 * (O(1)); a database whose shared track is older than the counters is read from the ledger itself.
 */
export async function readFleetSummary(client: pg.ClientBase): Promise<FleetSummary> {
  const state = await ledgerState(client);
  if (!state.exists) throw new NotInitializedError();
  const { rows } = await client.query<FleetSummaryRow>(fleetSummarySql(state));
  return fleetSummaryOf(rows[0]!);
}

/** readFleetSummary's query for a database in `state` (a SELECT of one row: tenant_count, entries). */
export function fleetSummarySql(state: { counted: boolean }): string {
  return state.counted ? COUNTED_FLEET_SUMMARY_SQL : FLEET_SUMMARY_SQL;
}

export interface FleetSummaryRow {
  tenant_count: number;
  entries: LedgerEntry[];
}

export function fleetSummaryOf(row: FleetSummaryRow): FleetSummary {
  return { tenantCount: row.tenant_count, entries: row.entries };
}

/** Migrations not yet everywhere: shared ones not applied, tenant ones missing from some tenant. */
export function behindHead(summary: FleetSummary, migrations: MigrationSet): { shared: string[]; tenant: string[] } {
  const count = (track: Track, name: string) =>
    summary.entries.find((e) => e.track === track && e.migration === name)?.count ?? 0;
  return {
    shared: migrations.shared.filter((m) => count("shared", m.name) === 0).map((m) => m.name),
    tenant: migrations.tenant.filter((m) => count("tenant", m.name) < summary.tenantCount).map((m) => m.name),
  };
}

const TENANT_STATES_SQL = `
WITH applied AS (
  SELECT schema_name, array_agg(migration ORDER BY migration) AS migrations
  FROM ${LEDGER_TABLE} GROUP BY schema_name
)
SELECT t.id::int AS id, t.slug, t.schema_name AS schema, coalesce(a.migrations, '{}') AS applied
FROM shared.tenants t LEFT JOIN applied a ON a.schema_name = t.schema_name
ORDER BY t.slug`;

/** The label of an unclaimed pool slot where a tenant's slug would be (`(pool) tenant_<key>`). */
export const POOL_SLOT_LABEL = "(pool)";

const POOL_STATES_SQL = `
SELECT 0 AS id, '${POOL_SLOT_LABEL} ' || p.schema_name AS slug, p.schema_name AS schema,
       coalesce((SELECT array_agg(l.migration ORDER BY l.migration) FROM ${LEDGER_TABLE} l
                 WHERE l.schema_name = p.schema_name), '{}') AS applied
FROM shared.tenant_pool p WHERE p.claimed_at IS NULL
ORDER BY p.schema_name`;

/**
 * What every tenant has applied, then every unclaimed pool slot (labelled `(pool) <schema>`): pool
 * schemas are migrated like tenants. Read only when the summary says something is pending.
 */
export async function readTenantStates(client: pg.ClientBase): Promise<TenantState[]> {
  const tenants = (await client.query<TenantState>(TENANT_STATES_SQL)).rows;
  if (!(await ledgerState(client)).pool) return tenants;
  return [...tenants, ...(await client.query<TenantState>(POOL_STATES_SQL)).rows];
}

export async function readSharedApplied(client: pg.ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ migration: string }>(
    `SELECT migration FROM ${LEDGER_TABLE} WHERE schema_name = 'shared' ORDER BY migration`,
  );
  return rows.map((r) => r.migration);
}

export class LedgerMismatchError extends Error {}

/** Refuses applied files that were edited, and ledger entries this checkout does not have. */
export function verifyLedger(summary: FleetSummary, migrations: MigrationSet): void {
  for (const entry of summary.entries) {
    const file = migrations[entry.track].find((m) => m.name === entry.migration);
    if (!file) {
      throw new LedgerMismatchError(
        `the database has ${entry.track} migration ${entry.migration}, which this checkout does not have: ` +
          "update your checkout (or restore the file) before going on",
      );
    }
    const other = entry.checksums.find((c) => c !== file.checksum);
    if (other) {
      throw new LedgerMismatchError(
        `migrations/${entry.track}/${entry.migration}.sql was edited after it was applied ` +
          `(ledger checksum ${other.slice(0, 12)}…, file ${file.checksum.slice(0, 12)}…; line endings do not count, so this is a real edit): ` +
          "restore the applied file and put the change in a new migration",
      );
    }
  }
}

export function pendingFor(applied: string[], track: Migration[]): Migration[] {
  const done = new Set(applied);
  return track.filter((m) => !done.has(m.name));
}

/** A multi-row INSERT into the ledger, with literal values already escaped by the client. */
export function recordSql(
  client: pg.Client,
  rows: Array<{ schema: string; migration: Migration }>,
): string {
  if (rows.length === 0) return "";
  const values = rows
    .map(
      ({ schema, migration }) =>
        `(${client.escapeLiteral(schema)}, '${migration.track}', ${client.escapeLiteral(migration.name)}, '${migration.checksum}')`,
    )
    .join(",\n");
  return `INSERT INTO ${LEDGER_TABLE} (schema_name, track, migration, checksum) VALUES\n${values};`;
}
