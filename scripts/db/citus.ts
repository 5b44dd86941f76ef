// Citus, detected from the server: the lifecycle commands behave as on plain PostgreSQL unless the
// database has the `citus` extension, and then adapt (docs/citus.md). No flag is needed by users.
import type pg from "pg";

/** The Citus extension's version in the connected database, or undefined on plain PostgreSQL. */
export async function citusVersion(client: pg.ClientBase): Promise<string | undefined> {
  const result = await client.query<{ extversion: string }>("SELECT extversion FROM pg_extension WHERE extname = 'citus'");
  return result.rows[0]?.extversion;
}

/** True when the connected database is a Citus coordinator (the extension is installed in it). */
export async function isCitus(client: pg.ClientBase): Promise<boolean> {
  return (await citusVersion(client)) !== undefined;
}

/**
 * Sends `queries` (each whole statements) in order: joined into one round trip on PostgreSQL, one
 * per query on Citus, which refuses several statements in one query string when they include
 * CREATE INDEX or ADD CONSTRAINT on distributed tables (citusdata/citus#6608).
 */
export async function sendQueries(client: pg.ClientBase, queries: string[], citus: boolean): Promise<pg.QueryResult> {
  let result: unknown;
  if (citus) for (const query of queries) result = await client.query(query);
  else result = await client.query(queries.join("\n"));
  // The last statement's result (a string of several statements gives one result per statement).
  return (Array.isArray(result) ? result.at(-1) : result) as pg.QueryResult;
}

const detected = new WeakMap<pg.ClientBase, Promise<boolean>>();

/** isCitus, asked once per connection (a connection never changes server). */
export function citusFor(client: pg.ClientBase): Promise<boolean> {
  let answer = detected.get(client);
  if (!answer) {
    answer = isCitus(client);
    answer.catch(() => detected.delete(client));
    detected.set(client, answer);
  }
  return answer;
}

/**
 * The tenant catalog: the shared tables that stay ordinary PostgreSQL tables on the coordinator on
 * Citus. Citus cannot make them reference tables: the registry's triggers write other tables
 * (fleet size, per-migration counts, released names), which Citus refuses from a reference table's
 * shards ("cannot execute a distributed query from a query on a shard"); the ledger's statement
 * triggers read transition tables next to them, which Citus cannot plan; and the warm pool's claim
 * is one statement of modifying CTEs over them that Citus would split, checking foreign keys
 * between its parts. Tenant tables still join them (Citus plans joins with coordinator tables).
 * Every other table of schema `shared` (the app's own shared tables) becomes a reference table.
 */
export const COORDINATOR_CATALOG_TABLES = [
  "tenants",
  "tenant_hosts",
  "tenant_schemas",
  "released_hosts",
  "deleted_tenants",
  "tenant_pool",
  "fleet_size",
  "ledger_counts",
  "migration_lock",
] as const;

/** On Citus, first in every transaction that creates or changes schema `shared`: it must never become a distributed schema. */
export const SHARED_SHARDING_OFF_SQL = "SET LOCAL citus.enable_schema_based_sharding = off";

/**
 * The queries that create an empty tenant schema inside the caller's transaction: on Citus a
 * distributed schema (schema-based sharding: every table created in it later lives, with its
 * indexes, constraints and sequences, in one shard group placed whole on one worker node).
 */
export function createTenantSchemaQueries(quotedSchema: string, citus: boolean): string[] {
  if (!citus) return [`CREATE SCHEMA ${quotedSchema};`];
  return [
    "SET LOCAL citus.enable_schema_based_sharding = on",
    `CREATE SCHEMA ${quotedSchema}`,
    // Only CREATE SCHEMA reads the setting; the schema's tables are distributed whatever it says later.
    "SET LOCAL citus.enable_schema_based_sharding = off",
  ];
}

/**
 * On Citus, after shared migrations ran (in their transaction): every table of schema `shared`
 * outside the catalog that is not yet a Citus table becomes a reference table (a copy on every
 * node), so tenant tables can join it wherever they are placed. Idempotent. A table Citus cannot
 * replicate (it has triggers, or a foreign key to or from a table that stays on the coordinator)
 * stays on the coordinator and is returned in `kept`, with the reason; `warn` gets a line for each
 * (by default on stderr, so init, migrate and adopt say it and --json output stays clean).
 */
export async function referenceSharedTables(
  client: pg.ClientBase,
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Promise<{ made: string[]; kept: Array<{ table: string; why: string }> }> {
  const { rows } = await client.query<{ name: string; triggers: boolean; refs: string[]; referenced_by: string[] }>(
    `SELECT c.relname AS name,
            EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers,
            coalesce((SELECT array_agg(DISTINCT f.confrelid::regclass::text) FROM pg_constraint f
                      WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid), '{}') AS refs,
            coalesce((SELECT array_agg(DISTINCT f.conrelid::regclass::text) FROM pg_constraint f
                      WHERE f.confrelid = c.oid AND f.contype = 'f' AND f.conrelid <> c.oid), '{}') AS referenced_by
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'shared' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = c.oid)
       AND c.relname <> ALL ($1::text[])
     ORDER BY c.relname`,
    [[...COORDINATOR_CATALOG_TABLES]],
  );
  const { rows: existing } = await client.query<{ name: string }>(
    "SELECT logicalrelid::regclass::text AS name FROM pg_dist_partition WHERE partmethod = 'n' AND repmodel = 't'",
  );
  const reference = new Set(existing.map((r) => r.name));
  const qualified = (name: string) => `shared.${quoteName(name)}`;
  const kept: Array<{ table: string; why: string }> = [];
  let pending = rows.filter((row) => {
    if (row.triggers) kept.push({ table: qualified(row.name), why: "it has triggers, which Citus cannot run on a reference table" });
    return !row.triggers;
  });
  const candidates = new Set(pending.map((row) => qualified(row.name)));
  const made: string[] = [];
  for (let progress = true; progress && pending.length; ) {
    progress = false;
    const next: typeof pending = [];
    for (const row of pending) {
      const name = qualified(row.name);
      const blocked = row.refs.find((r) => !reference.has(r) && !candidates.has(r)) ?? row.referenced_by.find((r) => !reference.has(r) && !candidates.has(r));
      if (blocked) {
        candidates.delete(name);
        kept.push({ table: name, why: `it has a foreign key to or from ${blocked}, which stays on the coordinator` });
        progress = true;
        continue;
      }
      // A foreign key's target becomes a reference table first.
      if (row.refs.some((r) => !reference.has(r))) {
        next.push(row);
        continue;
      }
      await client.query("SELECT create_reference_table($1::regclass)", [name]);
      reference.add(name);
      made.push(name);
      progress = true;
    }
    pending = next;
  }
  for (const row of pending) kept.push({ table: qualified(row.name), why: "its foreign keys form a cycle" });
  for (const k of kept) {
    warn(`warning: ${k.table} stays an ordinary table on the coordinator, not a Citus reference table: ${k.why}; tenant tables cannot join it (docs/citus.md)`);
  }
  return { made, kept };
}

/** `name` as regclass::text prints it (quoted only when needed). */
function quoteName(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}
