// Deletion that can be undone: `delete` suspends a tenant and schedules its drop after a retention
// period, `restore-deleted` undoes it, `purge-deleted` drops the tenants whose retention has passed.
//
// The drop of one tenant never needs one giant lock set: DROP SCHEMA ... CASCADE locks every object
// of the schema (each table, index, sequence, constraint, default, type, TOAST table) in one
// transaction, and a tenant with thousands of tables exhausts the server's shared lock table
// ("out of shared memory", django-tenants #943). So a purge is:
//   1. one transaction that takes the tenant out of the catalog (tenant, host and ledger rows; the
//      registry keeps the schema name with released_at set; its hosts enter the quarantine);
//   2. transactions that each drop a batch of the schema's tables, sized to the server's
//      max_locks_per_transaction;
//   3. one transaction that drops the (by then small) schema.
// A schema that is registered as released but still exists is a purge that stopped between 1 and 3
// (killed, connection lost): every purge-deleted run finishes those first.
import type pg from "pg";
import { quoteIdent, slugError } from "../../src/tenancy/naming.ts";
import { LEDGER_TABLE, ledgerExists } from "../migrations/ledger.ts";
import { lockedTransaction, releaseHosts, TenantCommandError } from "./operations.ts";

/** The retention when neither --retain nor TENANT_RETENTION says otherwise. */
export const DEFAULT_RETENTION = "7d";
const UNIT_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;
const MAX_RETENTION_SECONDS = 3_650 * 86_400;

/**
 * A retention period in seconds from `7d`, `12h`, `30m`, `0s` (one whole number and one unit), or a
 * TenantCommandError naming `source` (the flag or variable it came from).
 */
export function parseRetention(text: string, source = "--retain"): number {
  const match = /^(\d{1,7})([smhd])$/.exec(text.trim());
  if (!match) {
    throw new TenantCommandError(
      `${source} "${text}" is not a duration: write a whole number and a unit, s, m, h or d (e.g. 7d, 12h, 30m, 0s)`,
    );
  }
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (seconds > MAX_RETENTION_SECONDS) throw new TenantCommandError(`${source} "${text}" is longer than 3650d (ten years): choose a shorter retention`);
  return seconds;
}

export interface DeletedTenant {
  slug: string;
  schema: string;
  hosts: string[];
  deletedAt: string;
  /** From then on purge-deleted drops it (UTC, ISO 8601). */
  purgeAfter: string;
}

const ISO = (column: string) => `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;

interface TenantRow {
  id: number;
  schema: string;
  status: "active" | "suspended";
  hosts: string[];
  deletedAt: string | null;
  purgeAfter: string | null;
}

async function findTenant(client: pg.Client, slug: string): Promise<TenantRow> {
  const problem = slugError(slug);
  if (problem) throw new TenantCommandError(problem);
  if (!(await ledgerExists(client))) {
    throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
  }
  const { rows } = await client.query<TenantRow>(
    `SELECT t.id::int AS id, t.schema_name AS schema, t.status::text AS status,
            coalesce((SELECT array_agg(h.host ORDER BY h.is_primary DESC, h.host) FROM shared.tenant_hosts h WHERE h.tenant_id = t.id), '{}') AS hosts,
            ${ISO("d.deleted_at")} AS "deletedAt", ${ISO("d.purge_after")} AS "purgeAfter"
     FROM shared.tenants t LEFT JOIN shared.deleted_tenants d ON d.tenant_id = t.id
     WHERE t.slug = $1`,
    [slug],
  );
  if (!rows[0]) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
  return rows[0];
}

/** The refusal for commands that change a deleted tenant (status, hosts, tier, slug). */
export async function refuseIfDeleted(client: pg.Client, tenantId: number, slug: string): Promise<void> {
  const { rows } = await client.query<{ purgeAfter: string }>(
    `SELECT ${ISO("purge_after")} AS "purgeAfter" FROM shared.deleted_tenants WHERE tenant_id = $1`,
    [tenantId],
  );
  if (rows[0]) {
    throw new TenantCommandError(
      `tenant ${slug} is deleted (kept until ${rows[0].purgeAfter}): restore it first with \`npm run tenants -- restore-deleted ${slug}\``,
    );
  }
}

/**
 * Deletes a tenant with a retention period: it becomes suspended (its hosts answer 403
 * tenant_suspended) and stays so, with its schema, data and hosts, until `purge-deleted` runs after
 * `retainSeconds`. Returns its hosts (their cached answers carry the old status).
 */
export async function deleteTenantRetained(client: pg.Client, slug: string, retainSeconds: number): Promise<DeletedTenant> {
  return lockedTransaction(client, async () => {
    const tenant = await findTenant(client, slug);
    if (tenant.deletedAt) {
      throw new TenantCommandError(
        `tenant ${slug} is already deleted (kept until ${tenant.purgeAfter}): restore it with \`npm run tenants -- restore-deleted ${slug}\`, ` +
          `or drop it now with \`npm run tenants -- delete ${slug} --now --yes\``,
      );
    }
    const { rows } = await client.query<{ deletedAt: string; purgeAfter: string }>(
      `INSERT INTO shared.deleted_tenants (tenant_id, deleted_at, purge_after, status_before)
       VALUES ($1, now(), now() + make_interval(secs => $2), $3)
       RETURNING ${ISO("deleted_at")} AS "deletedAt", ${ISO("purge_after")} AS "purgeAfter"`,
      [tenant.id, retainSeconds, tenant.status],
    );
    await client.query("UPDATE shared.tenants SET status = 'suspended', updated_at = now() WHERE id = $1", [tenant.id]);
    return { slug, schema: tenant.schema, hosts: tenant.hosts, ...rows[0]! };
  });
}

/**
 * Undoes `delete` during the retention: the tenant gets back the status it had, with its schema,
 * data and hosts untouched. Returns its hosts (their cached answers say suspended).
 */
export async function restoreDeleted(client: pg.Client, slug: string): Promise<{ hosts: string[]; status: string; schema: string }> {
  return lockedTransaction(client, async () => {
    const tenant = await findTenant(client, slug);
    if (!tenant.deletedAt) throw new TenantCommandError(`tenant ${slug} is not deleted: nothing to restore`);
    const { rows } = await client.query<{ status: string }>(
      "DELETE FROM shared.deleted_tenants WHERE tenant_id = $1 RETURNING status_before::text AS status",
      [tenant.id],
    );
    const status = rows[0]!.status;
    await client.query("UPDATE shared.tenants SET status = $2, updated_at = now() WHERE id = $1", [tenant.id, status]);
    return { hosts: tenant.hosts, status, schema: tenant.schema };
  });
}

export interface PurgedTenant {
  slug: string;
  schema: string;
  hosts: string[];
  /** Transactions that dropped tables (after the catalog one, before the schema one). */
  tableBatches: number;
  tables: number;
}

export interface PurgeOptions {
  /** Purge the tenants whose purge time is at or before this instant instead of the server's now(). */
  now?: Date;
  /** Only this tenant (delete --now), whatever its purge time. */
  slug?: string;
  /** Told about each tenant once it is dropped. */
  onPurged?: (tenant: PurgedTenant) => void;
  /** Told about each schema of an interrupted purge once it is dropped. */
  onFinished?: (schema: string) => void;
}

/**
 * Drops every deleted tenant whose retention has passed (or `options.slug` at once), one tenant at
 * a time, and finishes any purge that stopped half-way. Returns the purged tenants (their hosts'
 * cached answers are stale).
 */
export async function purgeDeleted(client: pg.Client, options: PurgeOptions = {}): Promise<PurgedTenant[]> {
  if (!(await ledgerExists(client))) {
    throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
  }
  const purged: PurgedTenant[] = [];
  // Leftovers of an interrupted purge: released in the registry, schema still there.
  const { rows: leftovers } = await client.query<{ schema: string }>(
    `SELECT r.schema_name AS schema FROM shared.tenant_schemas r JOIN pg_namespace n ON n.nspname = r.schema_name
     WHERE r.released_at IS NOT NULL ORDER BY r.released_at`,
  );
  for (const { schema } of leftovers) {
    await dropSchemaInBatches(client, schema);
    options.onFinished?.(schema);
  }

  const due = options.slug
    ? [{ id: (await findTenant(client, options.slug)).id }]
    : (
        await client.query<{ id: number }>(
          `SELECT tenant_id::int AS id FROM shared.deleted_tenants WHERE purge_after <= coalesce($1::timestamptz, now()) ORDER BY purge_after, tenant_id`,
          [options.now?.toISOString() ?? null],
        )
      ).rows;
  for (const { id } of due) {
    const detached = await detachTenant(client, id, options);
    if (!detached) continue;
    const { batches, tables } = await dropSchemaInBatches(client, detached.schema);
    const result = { ...detached, tableBatches: batches, tables };
    purged.push(result);
    options.onPurged?.(result);
  }
  return purged;
}

/**
 * Step 1, one transaction: the tenant leaves the catalog (its rows, hosts, ledger rows); the
 * registry keeps its schema name, marked released. Undefined if it is no longer due (restored
 * meanwhile, or gone).
 */
async function detachTenant(client: pg.Client, tenantId: number, options: PurgeOptions): Promise<{ slug: string; schema: string; hosts: string[] } | undefined> {
  return lockedTransaction(client, async () => {
    const { rows } = await client.query<{ slug: string; schema: string; hosts: string[] }>(
      `SELECT t.slug, t.schema_name AS schema,
              coalesce((SELECT array_agg(h.host ORDER BY h.host) FROM shared.tenant_hosts h WHERE h.tenant_id = t.id), '{}') AS hosts
       FROM shared.tenants t JOIN shared.deleted_tenants d ON d.tenant_id = t.id
       WHERE t.id = $1 AND ($2::boolean OR d.purge_after <= coalesce($3::timestamptz, now()))
       FOR UPDATE OF t`,
      [tenantId, options.slug !== undefined, options.now?.toISOString() ?? null],
    );
    const tenant = rows[0];
    if (!tenant) return undefined;
    await client.query(`DELETE FROM ${LEDGER_TABLE} WHERE schema_name = $1`, [tenant.schema]);
    await releaseHosts(client, tenant.hosts, tenantId);
    await client.query("DELETE FROM shared.tenants WHERE id = $1", [tenantId]); // hosts and deleted_tenants cascade
    // The registry keeps the name, so it is never assigned again.
    await client.query("UPDATE shared.tenant_schemas SET released_at = now() WHERE schema_name = $1", [tenant.schema]);
    return tenant;
  });
}

/**
 * Steps 2 and 3: drops the schema's tables in batches whose estimated locks stay within
 * max_locks_per_transaction, then the schema. Each batch is its own transaction.
 */
export async function dropSchemaInBatches(client: pg.Client, schema: string): Promise<{ batches: number; tables: number }> {
  const { rows: setting } = await client.query<{ n: number }>("SELECT current_setting('max_locks_per_transaction')::int AS n");
  // Half of one transaction's share of the lock table: other sessions need theirs too.
  const budget = Math.max(1, Math.floor(setting[0]!.n / 2));
  let batches = 0;
  let tables = 0;
  for (;;) {
    const dropped = await lockedTransaction(client, async () => {
      // Every object DROP TABLE deletes takes a lock: the table, its indexes, constraints, column
      // defaults, row and array types, TOAST table, index and type, and owned sequences.
      const { rows } = await client.query<{ name: string; locks: number }>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS name,
                (3 + (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid)
                   + (SELECT count(*) FROM pg_constraint k WHERE k.conrelid = c.oid) * 2
                   + (SELECT count(*) FROM pg_attrdef a WHERE a.adrelid = c.oid)
                   + CASE WHEN c.reltoastrelid <> 0 THEN 3 ELSE 0 END
                   + (SELECT count(*) FROM pg_depend d WHERE d.refobjid = c.oid AND d.classid = 'pg_class'::regclass
                        AND d.deptype IN ('a', 'i') AND d.objid IN (SELECT oid FROM pg_class WHERE relkind = 'S')) * 2)::int AS locks
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY c.oid LIMIT 1000`,
        [schema],
      );
      const batch: string[] = [];
      let locks = 0;
      for (const row of rows) {
        if (batch.length && locks + row.locks > budget) break;
        batch.push(row.name);
        locks += row.locks;
      }
      if (!batch.length) return 0;
      await client.query(`DROP TABLE IF EXISTS ${batch.join(", ")} CASCADE`);
      return batch.length;
    });
    if (!dropped) break;
    batches++;
    tables += dropped;
  }
  await lockedTransaction(client, async () => {
    await client.query(`DROP SCHEMA IF EXISTS ${quoteIdent(schema)} CASCADE`);
  });
  return { batches, tables };
}

/**
 * `delete --now`: deletes the tenant (if it is not deleted already) and drops it at once, through the
 * same batched purge. Undefined if it was restored in between.
 */
export async function dropTenantNow(client: pg.Client, slug: string): Promise<PurgedTenant | undefined> {
  const tenant = await findTenant(client, slug);
  if (!tenant.deletedAt) await deleteTenantRetained(client, slug, 0);
  return (await purgeDeleted(client, { slug }))[0];
}

export interface RetainedInfo {
  deletedAt: string;
  purgeAfter: string;
}

/** Deletion state per tenant id, for list and show. */
export async function retainedTenants(client: pg.Client): Promise<Map<number, RetainedInfo>> {
  const { rows } = await client.query<RetainedInfo & { id: number }>(
    `SELECT tenant_id::int AS id, ${ISO("deleted_at")} AS "deletedAt", ${ISO("purge_after")} AS "purgeAfter" FROM shared.deleted_tenants`,
  );
  return new Map(rows.map((r) => [r.id, { deletedAt: r.deletedAt, purgeAfter: r.purgeAfter }]));
}
