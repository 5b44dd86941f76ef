// The warm pool: tenant schemas created and migrated to head ahead of time, so that creating a
// tenant (`tenants create`, the Worker's POST /signup) is a short DML transaction that claims one.
// Filling is DDL, so it stays in Node: one transaction per slot under the migration lock.
import type pg from "pg";
import { CLAIM_SLOT_SQL, newClaimToken } from "../../src/tenancy/pool.ts";
import type { AppRoleOptions } from "../db/roles.ts";
import type { MigrationSet } from "../migrations/files.ts";
import { LEDGER_TABLE, behindHead, ledgerState, readFleetSummary, verifyLedger, type FleetSummary } from "../migrations/ledger.ts";
import { TenantCommandError, createTenantSchema, lockedTransaction, unusedSchemaName } from "./operations.ts";

export const MAX_POOL_SIZE = 10_000;

/** Refuses while the database is older than the pool (shared migration 0007_tenant_pool) or not initialized. */
async function requirePool(client: pg.ClientBase): Promise<void> {
  const state = await ledgerState(client);
  if (!state.exists) throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
  if (!state.pool) {
    throw new TenantCommandError("the database has no warm pool yet (shared migration 0007_tenant_pool): run `npm run migrate` first");
  }
}

/** Refuses (inside a transaction under the lock) while anything is pending: slots are made at head. */
export async function requireAtHead(client: pg.ClientBase, migrations: MigrationSet, what: string): Promise<void> {
  requireSummaryAtHead(await readFleetSummary(client), migrations, what);
}

/** requireAtHead on a summary already read. */
export function requireSummaryAtHead(summary: FleetSummary, migrations: MigrationSet, what: string): void {
  verifyLedger(summary, migrations);
  const behind = behindHead(summary, migrations);
  if (behind.shared.length || behind.tenant.length) {
    const names = [...behind.shared.map((n) => `shared/${n}`), ...behind.tenant.map((n) => `tenant/${n}`)];
    throw new TenantCommandError(
      `the database is not at head (pending: ${names.join(", ")}): run \`npm run migrate\` first, then ${what}`,
    );
  }
}

export interface PoolStatus {
  /** Unclaimed slots. */
  size: number;
  /** Slots claimed so far (now tenants, or deleted tenants). */
  claimed: number;
  /** The tenant track's head in this checkout. */
  head: string | null;
  /** Unclaimed slots at head. */
  atHead: number;
  /** Unclaimed slots behind head (run `npm run migrate`). */
  behind: string[];
}

export async function poolStatus(client: pg.ClientBase, migrations: MigrationSet): Promise<PoolStatus> {
  await requirePool(client);
  const head = migrations.tenant.at(-1)?.name ?? null;
  const { rows } = await client.query<{ schema: string; applied: string[] }>(
    `SELECT p.schema_name AS schema,
            coalesce((SELECT array_agg(l.migration) FROM ${LEDGER_TABLE} l WHERE l.schema_name = p.schema_name), '{}') AS applied
     FROM shared.tenant_pool p WHERE p.claimed_at IS NULL ORDER BY p.created_at, p.schema_name`,
  );
  const { rows: claimedRows } = await client.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM shared.tenant_pool WHERE claimed_at IS NOT NULL",
  );
  const behind = rows.filter((r) => migrations.tenant.some((m) => !r.applied.includes(m.name))).map((r) => r.schema);
  return { size: rows.length, claimed: claimedRows[0]!.n, head, atHead: rows.length - behind.length, behind };
}

/** Creates one slot: a new schema at head, registered with no tenant, in the pool, in the ledger. */
async function createSlot(client: pg.Client, migrations: MigrationSet, roles: AppRoleOptions): Promise<string> {
  const schema = await unusedSchemaName(client);
  await createTenantSchema(client, schema, migrations.tenant, roles, [
    `INSERT INTO shared.tenant_schemas (schema_name, tenant_id) VALUES (${client.escapeLiteral(schema)}, NULL);`,
    `INSERT INTO shared.tenant_pool (schema_name) VALUES (${client.escapeLiteral(schema)});`,
  ]);
  return schema;
}

export interface FillResult {
  /** Slots created by this run. */
  created: number;
  /** Unclaimed slots now. */
  size: number;
}

/**
 * Keeps `size` unclaimed slots: creates the missing ones, each in its own transaction under the
 * migration lock (so creating tenants and sign-ups go on meanwhile), at head. Never removes slots.
 */
export async function fillPool(
  client: pg.Client,
  migrations: MigrationSet,
  size: number,
  roles: AppRoleOptions = {},
  onProgress?: (created: number, missing: number) => void,
): Promise<FillResult> {
  if (!Number.isInteger(size) || size < 0 || size > MAX_POOL_SIZE) {
    throw new TenantCommandError(`the pool size must be a whole number from 0 to ${MAX_POOL_SIZE}, not ${size}`);
  }
  await requirePool(client);
  let created = 0;
  for (;;) {
    const step = await lockedTransaction(client, async () => {
      await requireAtHead(client, migrations, "fill the pool");
      const { rows } = await client.query<{ n: number }>("SELECT count(*)::int AS n FROM shared.tenant_pool WHERE claimed_at IS NULL");
      const unclaimed = rows[0]!.n;
      if (unclaimed >= size) return { size: unclaimed, made: false, missing: 0 };
      await createSlot(client, migrations, roles);
      return { size: unclaimed + 1, made: true, missing: size - unclaimed - 1 };
    });
    if (step.made) {
      created++;
      onProgress?.(created, created + step.missing);
    }
    if (!step.made || step.missing === 0) return { created, size: step.size };
  }
}

/**
 * The oldest unclaimed slot, locked for this transaction (one that another transaction holds is
 * skipped): a scalar subquery, NULL when the pool is empty.
 */
export const OLDEST_FREE_SLOT_SQL =
  "SELECT schema_name FROM shared.tenant_pool WHERE claimed_at IS NULL ORDER BY created_at, schema_name LIMIT 1 FOR UPDATE SKIP LOCKED";

/** Claims `schema`, a slot this transaction locked (OLDEST_FREE_SLOT_SQL), for the tenant. */
export async function claimPickedSlot(
  client: pg.ClientBase,
  schema: string,
  tenant: { slug: string; name: string; hosts: string[] },
): Promise<string> {
  // The caller checked the host quarantine (and --force): 0 s here.
  const claimed = await client.query<{ id: number; schema: string }>(CLAIM_SLOT_SQL, [
    schema,
    newClaimToken(),
    tenant.slug,
    tenant.name,
    tenant.hosts,
    0,
  ]);
  if (!claimed.rows[0]) throw new TenantCommandError(`pool slot ${schema} could not be claimed (this should never happen): try again`);
  return claimed.rows[0].schema;
}
