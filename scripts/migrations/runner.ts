// The migration runner: the shared track once, then the tenant track to every tenant schema, under
// the migration lock (lock.ts: a transaction-scoped advisory lock in every transaction and a lock
// row across them, so it holds through transaction-mode poolers). Atomic by default (one
// transaction for everything); with a batch size, each batch of tenants is its own transaction and
// a re-run resumes where a failure or a kill stopped. A subset of tenants (`only`) and staged
// rollouts (a canary stage first, then batches, up to `maxFailures` failed batches) use the same
// path. Every transaction runs under lock_timeout
// (retried with backoff), an optional statement_timeout and client_connection_check_interval.
import type pg from "pg";
import { grantMissingOnTenantSchemas } from "../db/roles.ts";
import { SHARED_SHARDING_OFF_SQL, citusFor, referenceSharedTables } from "../db/citus.ts";
import { migrationQueries, type Migration, type MigrationSet } from "./files.ts";
import { CITUS_LOCK_FACTOR, estimateLocks } from "./lock-estimate.ts";
import {
  NotInitializedError,
  behindHead,
  pendingFor,
  readFleetSummary,
  readSharedApplied,
  readTenantStates,
  recordSql,
  verifyLedger,
  type TenantState,
} from "./ledger.ts";
import { DEFAULT_RUN_SETTINGS, LockBusyError, LockLostError, RunLock, type RunSettings } from "./lock.ts";

export interface TenantPlan {
  tenant: TenantState;
  pending: Migration[];
}

export interface MigrationPlan {
  shared: Migration[];
  tenants: TenantPlan[];
  /** Tenants already at head. */
  upToDate: number;
}

export interface MigrateOptions {
  migrations: MigrationSet;
  /** Tenants per transaction; undefined means one transaction for the whole run. */
  batchSize?: number;
  dryRun?: boolean;
  /** How long to wait while another run or a tenant command holds the migration lock (ms). */
  waitForRunMs?: number;
  /** lock_timeout of every statement (ms); a transaction that hits it is retried. */
  lockTimeoutMs?: number;
  /** statement_timeout of every statement (ms); 0 or undefined for none. */
  statementTimeoutMs?: number;
  /** Further attempts of a transaction after a lock timeout or a deadlock. */
  lockRetries?: number;
  onProgress?: (doneTenants: number, totalTenants: number) => void;
  /** The Worker's role, granted what it lacks on migrated tenant schemas (default APP_DATABASE_ROLE or edge_tenants_app). */
  appRole?: string;
  /** One-line notices: retries after a lock timeout, taking over a dead run's lock. */
  onNotice?: (line: string) => void;
  /** Only these tenants (slugs); the shared track still goes first when it has pending migrations. */
  only?: string[];
  /** A staged rollout: the plan's first N tenants in one transaction before any other tenant. */
  canary?: number;
  /** With batches: go on past failed batches until this many have failed (default 1: stop at the first). */
  maxFailures?: number;
  /** Called as each stage of a batched or staged run ends. */
  onStage?: (stage: StageResult) => void;
}

/** One transaction of a batched or staged run, and how it ended. */
export interface StageResult {
  /** "shared", "canary", or "batch N". */
  stage: string;
  tenants: string[];
  status: "applied" | "failed" | "not run";
  error?: string;
}

export interface MigrateResult {
  plan: MigrationPlan;
  applied: boolean;
  /** Transactions committed (1 for an atomic run). */
  transactions: number;
  /** Batched and staged runs: every stage, in order. */
  stages?: StageResult[];
}

/** A failed run; `tenant`, `schema` and `migration` say where, `cause` is PostgreSQL's error. */
export class MigrationError extends Error {
  readonly tenant?: string;
  readonly migration?: string;
  readonly schema?: string;
  /** Batched and staged runs: every stage, in order (what was applied, what failed, what was not run). */
  readonly stages?: StageResult[];
  constructor(
    message: string,
    tenant?: string,
    migration?: string,
    options?: { cause?: unknown; schema?: string; stages?: StageResult[] },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.tenant = tenant;
    this.migration = migration;
    this.schema = options?.schema;
    this.stages = options?.stages;
  }
}

export { LockBusyError, LockLostError };

export function planMigration(
  sharedApplied: string[],
  tenantStates: TenantState[],
  migrations: MigrationSet,
): MigrationPlan {
  const shared = pendingFor(sharedApplied, migrations.shared);
  const tenants: TenantPlan[] = [];
  let upToDate = 0;
  for (const tenant of tenantStates) {
    const pending = pendingFor(tenant.applied, migrations.tenant);
    if (pending.length) tenants.push({ tenant, pending });
    else upToDate++;
  }
  return { shared, tenants, upToDate };
}

/** Per-tenant detail, read only when the fleet summary shows pending work (`only`: those slugs). */
export async function readPlan(client: pg.ClientBase, migrations: MigrationSet, only?: string[]): Promise<MigrationPlan> {
  const states = await readTenantStates(client);
  const wanted = only && new Set(only);
  return planMigration(await readSharedApplied(client), wanted ? states.filter((t) => wanted.has(t.slug)) : states, migrations);
}

/** Refuses a subset naming tenants that do not exist (a typo must not silently migrate fewer). */
async function checkOnly(client: pg.ClientBase, only: string[]): Promise<void> {
  const { rows } = await client.query<{ slug: string }>("SELECT slug FROM shared.tenants WHERE slug = ANY($1::text[])", [only]);
  const found = new Set(rows.map((r) => r.slug));
  const missing = only.filter((slug) => !found.has(slug));
  if (missing.length) {
    throw new MigrationError(
      `no tenant ${missing.join(", ")} (see \`npm run tenants -- list\`). Nothing was applied.`,
    );
  }
}

export function planIsEmpty(plan: MigrationPlan): boolean {
  return plan.shared.length === 0 && plan.tenants.length === 0;
}

function pgMessage(error: unknown): string {
  const e = error as { message?: string; code?: string; detail?: string };
  return `${e.message ?? String(error)}${e.code ? ` (SQLSTATE ${e.code})` : ""}${e.detail ? `: ${e.detail}` : ""}`;
}

async function applyShared(client: pg.Client, pending: Migration[], citus: boolean): Promise<void> {
  if (pending.length === 0) return;
  // On Citus: `shared` stays an ordinary schema; its new tables become reference tables (after).
  if (citus) await client.query(SHARED_SHARDING_OFF_SQL);
  for (const migration of pending) {
    try {
      for (const query of migrationQueries(migration, "shared", citus)) await client.query(query);
    } catch (error) {
      throw new MigrationError(`shared migration ${migration.name} failed: ${pgMessage(error)}`, undefined, migration.name, {
        cause: error,
        schema: "shared",
      });
    }
  }
  if (citus) await referenceSharedTables(client);
}

async function applyTenant(client: pg.Client, plan: TenantPlan, citus: boolean): Promise<void> {
  for (const migration of plan.pending) {
    try {
      // On Citus one statement per query (citusdata/citus#6608), in the same transaction.
      for (const query of migrationQueries(migration, plan.tenant.schema, citus)) await client.query(query);
    } catch (error) {
      throw new MigrationError(
        `migration tenant/${migration.name} failed on tenant ${plan.tenant.slug} (schema ${plan.tenant.schema}): ${pgMessage(error)}`,
        plan.tenant.slug,
        migration.name,
        { cause: error, schema: plan.tenant.schema },
      );
    }
  }
}

const LEDGER_ROWS_PER_INSERT = 5_000;

async function record(client: pg.Client, rows: Array<{ schema: string; migration: Migration }>): Promise<void> {
  for (let i = 0; i < rows.length; i += LEDGER_ROWS_PER_INSERT) {
    await client.query(recordSql(client, rows.slice(i, i + LEDGER_ROWS_PER_INSERT)));
  }
}

function ledgerRows(plans: TenantPlan[]) {
  return plans.flatMap((p) => p.pending.map((migration) => ({ schema: p.tenant.schema, migration })));
}

interface LockTable {
  /** Which table, for messages: "the server's lock table", "the coordinator's lock table", "the lock table of Citus node host:port". */
  whose: string;
  per_tx: number;
  conns: number;
  prepared: number;
}

const LOCK_SETTINGS_SQL =
  "SELECT concat_ws(',', current_setting('max_locks_per_transaction'), current_setting('max_connections'), current_setting('max_prepared_transactions'))";

/**
 * The lock tables a run fills: the server's; on Citus every node's (the coordinator locks every
 * tenant's tables, a worker those of the tenants it holds), smallest first.
 */
async function lockTables(client: pg.Client, citus: boolean): Promise<LockTable[]> {
  const parse = (whose: string, csv: string): LockTable => {
    const [per_tx, conns, prepared] = csv.split(",").map(Number) as [number, number, number];
    return { whose, per_tx, conns, prepared };
  };
  const here = (await client.query<{ s: string }>(`${LOCK_SETTINGS_SQL} AS s`)).rows[0]!.s;
  if (!citus) return [parse("the server's lock table", here)];
  const { rows } = await client.query<{ nodename: string; nodeport: number; success: boolean; result: string }>(
    `SELECT n.nodename, n.nodeport, r.success, r.result
     FROM run_command_on_all_nodes($$${LOCK_SETTINGS_SQL}$$) r JOIN pg_dist_node n USING (nodeid)
     WHERE n.groupid <> 0 AND n.noderole = 'primary' ORDER BY n.groupid`,
  );
  const tables = [parse("the coordinator's lock table", here)];
  for (const row of rows) {
    if (!row.success) throw new MigrationError(`could not read the lock settings of Citus node ${row.nodename}:${row.nodeport}: ${row.result}. Nothing was applied.`);
    tables.push(parse(`the lock table of Citus node ${row.nodename}:${row.nodeport}`, row.result));
  }
  return tables.sort((a, b) => a.per_tx * (a.conns + a.prepared) - b.per_tx * (b.conns + b.prepared));
}

/**
 * Tells whether one transaction for every tenant (or for one batch of `batchSize`) fits the
 * server's lock table (max_locks_per_transaction x (max_connections + max_prepared_transactions)),
 * from an estimate of the locks the parsed statements take (nothing is executed). On Citus, the
 * estimate is scaled for Citus' own locks (CITUS_LOCK_FACTOR) and checked against the smallest
 * lock table of the cluster's nodes.
 */
export async function checkLockCapacity(client: pg.Client, plan: MigrationPlan, batchSize?: number, largestIsCanary = false, citus = false): Promise<void> {
  if (plan.tenants.length === 0) return;
  const sample = plan.tenants.reduce((a, b) => (b.pending.length > a.pending.length ? b : a));
  const estimate = estimateLocks(plan.shared, sample.pending, citus);
  const perTenant = Math.max(1, estimate.perTenant);
  const forShared = estimate.once;
  const tables = await lockTables(client, citus);
  const { whose, per_tx, conns, prepared } = tables[0]!;
  const capacity = per_tx * (conns + prepared);
  const perTransaction = Math.min(plan.tenants.length, batchSize ?? plan.tenants.length);
  const needed = (batchSize === undefined ? forShared : 0) + perTenant * perTransaction;
  // Other sessions use the same lock table: leave them a fifth of it.
  if (needed > capacity * 0.8) {
    // The setting that makes every node's table fit (a node with fewer connections needs more).
    const raiseTo = Math.max(...tables.map((t) => Math.ceil(needed / 0.8 / (t.conns + t.prepared))));
    const suggested = Math.max(1, Math.floor((capacity * 0.5) / perTenant / 100) * 100 || Math.floor((capacity * 0.5) / perTenant));
    throw new MigrationError(
      `one transaction for ${perTransaction} tenants${largestIsCanary ? " (the canary)" : batchSize === undefined ? "" : " (one batch)"} would take about ${needed} locks (${perTenant} per tenant${citus ? `, PostgreSQL's estimate x ${CITUS_LOCK_FACTOR} for Citus` : ""}), ` +
        `more than ${whose} holds safely (max_locks_per_transaction=${per_tx} x ` +
        `(max_connections=${conns} + max_prepared_transactions=${prepared}) = ${capacity}). Nothing was applied. ` +
        `Run with ${largestIsCanary ? `--canary ${suggested} (or fewer) and --batch-size ${suggested}` : `${batchSize === undefined ? "" : "a smaller "}--batch-size ${suggested}`}, or raise max_locks_per_transaction to at least ` +
        `${raiseTo}${citus ? " on every node" : ""} and restart PostgreSQL.`,
    );
  }
}

function runSettings(options: MigrateOptions): RunSettings {
  return {
    lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_RUN_SETTINGS.lockTimeoutMs,
    statementTimeoutMs: options.statementTimeoutMs ?? DEFAULT_RUN_SETTINGS.statementTimeoutMs,
    lockRetries: options.lockRetries ?? DEFAULT_RUN_SETTINGS.lockRetries,
    waitForRunMs: options.waitForRunMs ?? DEFAULT_RUN_SETTINGS.waitForRunMs,
  };
}

/** The schema a failed statement worked on, to name what blocked it. */
const failedSchema = (error: unknown) => (error instanceof MigrationError ? error.schema : undefined);

/** Runs pending migrations. Throws MigrationError (nothing of the failed transaction is kept). */
export async function migrate(client: pg.Client, options: MigrateOptions): Promise<MigrateResult> {
  const settings = runSettings(options);
  const run = new RunLock(client, settings, options.onNotice);
  // The first transaction, under the advisory lock with no live run holding the lock row: read the
  // fleet's state and, when there is work, claim the row for this run.
  await run.open(() => new NotInitializedError());
  let plan: MigrationPlan;
  try {
    const summary = await readFleetSummary(client);
    verifyLedger(summary, options.migrations);
    if (options.only) await checkOnly(client, options.only);
    const behind = behindHead(summary, options.migrations);
    if (behind.shared.length === 0 && behind.tenant.length === 0) {
      await run.commit();
      return {
        plan: { shared: [], tenants: [], upToDate: options.only?.length ?? summary.tenantCount },
        applied: false,
        transactions: 0,
      };
    }
    plan = await readPlan(client, options.migrations, options.only);
    if (planIsEmpty(plan) || options.dryRun) {
      await run.commit();
      return { plan, applied: false, transactions: 0 };
    }
    await run.claim();
    await run.commit();
  } catch (error) {
    await run.rollback();
    throw error;
  }

  try {
    const citus = await citusFor(client);
    const total = plan.tenants.length;
    const progress = options.onProgress ?? (() => {});

    // Under the lock and the run's timeouts, in a transaction that is rolled back.
    const checkCapacity = (batchSize?: number, largestIsCanary = false) =>
      run.transaction(() => checkLockCapacity(client, plan, batchSize, largestIsCanary, citus), failedSchema, "ROLLBACK");

    if (options.batchSize === undefined && options.canary === undefined) {
      await checkCapacity();
      await run.transaction(async () => {
        await applyShared(client, plan.shared, citus);
        await record(client, plan.shared.map((migration) => ({ schema: "shared", migration })));
        for (let i = 0; i < total; i++) {
          await applyTenant(client, plan.tenants[i]!, citus);
          if ((i + 1) % 100 === 0) progress(i + 1, total);
        }
        await grantMissingOnTenantSchemas(client, plan.tenants.map((p) => p.tenant.schema), options.appRole);
        await record(client, ledgerRows(plan.tenants));
      }, failedSchema);
      progress(total, total);
      return { plan, applied: true, transactions: 1 };
    }

    const groups = planStages(plan.tenants, options.canary, options.batchSize);
    const largest = groups.reduce<(typeof groups)[number] | undefined>((a, g) => (!a || g.plans.length > a.plans.length ? g : a), undefined);
    await checkCapacity(largest?.plans.length ?? 0, largest?.name === "canary");
    const stages: StageResult[] = [];
    const ended = (stage: StageResult) => {
      stages.push(stage);
      options.onStage?.(stage);
    };
    let transactions = 0;
    if (plan.shared.length) {
      await run.transaction(async () => {
        await applyShared(client, plan.shared, citus);
        await record(client, plan.shared.map((migration) => ({ schema: "shared", migration })));
      }, failedSchema);
      transactions++;
      ended({ stage: "shared", tenants: [], status: "applied" });
    }
    const maxFailures = options.maxFailures ?? 1;
    let failures = 0;
    let done = 0;
    let firstFailure: { error: MigrationError; group: (typeof groups)[number]; migratedBefore: number } | undefined;
    for (let g = 0; g < groups.length; g++) {
      const group = groups[g]!;
      const slugs = group.plans.map((p) => p.tenant.slug);
      const stop = (failures >= maxFailures || (firstFailure?.group.name === "canary"));
      if (stop) {
        ended({ stage: group.name, tenants: slugs, status: "not run" });
        continue;
      }
      try {
        await run.transaction(async () => {
          for (const tenantPlan of group.plans) await applyTenant(client, tenantPlan, citus);
          await grantMissingOnTenantSchemas(client, group.plans.map((p) => p.tenant.schema), options.appRole);
          await record(client, ledgerRows(group.plans));
        }, failedSchema);
      } catch (error) {
        if (!(error instanceof MigrationError) && !(error instanceof LockLostError)) throw error;
        const where = `${group.label} was rolled back; the ${done} tenants before it were migrated and recorded. `;
        if (error instanceof LockLostError) throw new LockLostError(`${error.message}\n${where}`);
        failures++;
        firstFailure ??= { error, group, migratedBefore: done };
        ended({ stage: group.name, tenants: slugs, status: "failed", error: error.message });
        continue;
      }
      transactions++;
      done += group.plans.length;
      progress(done, total);
      ended({ stage: group.name, tenants: slugs, status: "applied" });
    }
    if (firstFailure) {
      const { error, group, migratedBefore } = firstFailure;
      const notRun = stages.filter((s) => s.status === "not run").reduce((n, s) => n + s.tenants.length, 0);
      const message =
        failures === 1 && notRun === total - migratedBefore - group.plans.length && done === migratedBefore
          ? `${error.message}\n${group.label} was rolled back; the ${migratedBefore} tenants before it were migrated and recorded. ` +
            (group.name === "canary" ? "No other tenant was attempted. " : "") +
            "Fix the cause and run migrate again to finish the rest."
          : `${error.message}\n${failures} of ${groups.length} tenant stages failed and were rolled back (--max-failures ${maxFailures}):\n` +
            stages
              .filter((s) => s.status === "failed")
              .map((s) => `  ${s.stage} (${s.tenants.join(", ")}): ${s.error!.split("\n")[0]}`)
              .join("\n") +
            `\n${done} tenants were migrated and recorded; ${notRun} were not attempted. Fix the causes and run migrate again to finish the rest.`;
      throw new MigrationError(message, error.tenant, error.migration, { cause: error.cause, schema: error.schema, stages });
    }
    return { plan, applied: true, transactions, stages };
  } finally {
    await run.release();
  }
}

/**
 * A batched or staged run's transactions: the canary (the plan's first `canary` tenants), then the
 * rest in batches of `batchSize` (one batch for all of them without it).
 */
export function planStages(plans: TenantPlan[], canary?: number, batchSize?: number) {
  const groups: Array<{ name: string; label: string; plans: TenantPlan[] }> = [];
  const total = plans.length;
  let start = 0;
  if (canary !== undefined && total > 0) {
    const n = Math.min(canary, total);
    groups.push({ name: "canary", label: `The canary (tenants 1-${n} of ${total})`, plans: plans.slice(0, n) });
    start = n;
  }
  const size = batchSize ?? Math.max(1, total - start);
  for (let k = 1; start < total; k++, start += size) {
    const batch = plans.slice(start, start + size);
    groups.push({ name: `batch ${k}`, label: `Batch ${k} (tenants ${start + 1}-${start + batch.length} of ${total})`, plans: batch });
  }
  return groups;
}
