// The migration lock, made to work through transaction-mode poolers (PgBouncer, Neon's `-pooler`
// host), where consecutive transactions of one client may land on different server sessions:
//
// - every transaction that changes schemas or the catalog takes the transaction-scoped advisory
//   lock (`pg_advisory_xact_lock`), which is released by COMMIT/ROLLBACK wherever it ran;
// - a migration run keeps its exclusivity across its transactions (batches) with a row in
//   `shared.migration_lock` (run id, host, pid, started_at, heartbeat), claimed and released in
//   short transactions under that lock. Every batch re-checks that the run still owns the row.
//   The run refreshes the heartbeat at the end of each transaction and every second in between;
//   a row whose heartbeat is older than STALE_AFTER_MS belongs to a dead run and may be taken
//   over. Tenant commands wait (bounded) while a live run holds the row.
//
// Every run transaction also sets, with SET LOCAL (session settings do not survive a pooler):
// lock_timeout (so DDL queued behind a long query gives up instead of blocking the table for
// everyone; the transaction is retried with backoff), statement_timeout (optional) and
// client_connection_check_interval (so the server ends a killed run's work within seconds).
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import { LEDGER_STATE_COLUMNS, MIGRATION_LOCK_KEY, type LedgerState } from "./ledger.ts";

export const LOCK_TABLE = "shared.migration_lock";

/** One row at most (`singleton`): the run that holds the migration lock across its transactions. */
export const CREATE_LOCK_TABLE_SQL = `
CREATE TABLE IF NOT EXISTS ${LOCK_TABLE} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  run_id text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  heartbeat timestamptz NOT NULL DEFAULT clock_timestamp()
);`;

/** How often a run refreshes its row while it is between transactions. */
export const HEARTBEAT_MS = 1_000;
/** A row not refreshed for this long belongs to a dead run: the next run takes it over. */
export const STALE_AFTER_MS = 5_000;
/** client_connection_check_interval on every run transaction (PostgreSQL 14+). */
export const CONNECTION_CHECK_MS = 1_000;

export interface RunSettings {
  /** lock_timeout of every statement of the run (ms). */
  lockTimeoutMs: number;
  /** statement_timeout of every statement of the run (ms); 0 for none. */
  statementTimeoutMs: number;
  /** Further attempts of a transaction after a lock timeout or a deadlock. */
  lockRetries: number;
  /** How long to wait while another run or a tenant command holds the migration lock (ms). */
  waitForRunMs: number;
}

export const DEFAULT_RUN_SETTINGS: RunSettings = {
  lockTimeoutMs: 3_000,
  statementTimeoutMs: 0,
  lockRetries: 4,
  waitForRunMs: 10_000,
};

/** Another run (or a tenant command) held the migration lock for longer than we were ready to wait. */
export class LockBusyError extends Error {}

/** The run's row was taken over (the run was stalled for longer than STALE_AFTER_MS). */
export class LockLostError extends Error {}

export interface RunHolder {
  runId: string;
  host: string;
  pid: number;
  startedAt: string;
  heartbeatAgeMs: number;
}

const KEY = String(MIGRATION_LOCK_KEY);
const TRY_LOCK_SQL = `SELECT pg_try_advisory_xact_lock(${KEY}) AS locked,
  to_regclass('${LOCK_TABLE}') IS NOT NULL AS has_table,
  ${LEDGER_STATE_COLUMNS}`;

const HOLDER_SQL = `SELECT run_id AS "runId", host, pid,
  to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS "startedAt",
  (extract(epoch FROM clock_timestamp() - heartbeat) * 1000)::int AS "heartbeatAgeMs"
FROM ${LOCK_TABLE}`;

/** Who holds the advisory lock itself (a tenant command, a run's transaction, an older runner). */
const XACT_HOLDER_SQL = `SELECT a.pid, a.application_name AS app, a.usename AS "user", host(a.client_addr) AS addr, a.state,
  to_char(a.state_change AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS since,
  left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.classid::bigint = (${KEY}::bigint >> 32) AND l.objid::bigint = (${KEY}::bigint & 4294967295) AND l.objsubid = 1
LIMIT 1`;

/** Sessions holding locks on relations of `schema` (what a lock timeout there waited for). */
const BLOCKERS_SQL = `SELECT a.pid, a.application_name AS app, a.state,
  to_char(coalesce(a.xact_start, a.query_start) AT TIME ZONE 'UTC', 'HH24:MI:SS "UTC"') AS since,
  left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) AS query,
  string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ') AS locks
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.locktype = 'relation' AND l.pid <> pg_backend_pid()
  AND l.relation IN (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)
GROUP BY a.pid, a.application_name, a.state, a.xact_start, a.query_start, a.query
ORDER BY min(a.xact_start) NULLS LAST
LIMIT 3`;

/** SQLSTATEs after which a run transaction is retried: lock_not_available (lock_timeout), deadlock_detected. */
const RETRIABLE = new Set(["55P03", "40P01"]);

export function sqlstate(error: unknown): string | undefined {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === "string" ? code : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ageText(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}

export function describeRun(holder: RunHolder): string {
  return (
    `run ${holder.runId} on host ${holder.host} (pid ${holder.pid}), started ${holder.startedAt}, ` +
    `last heartbeat ${ageText(holder.heartbeatAgeMs)} ago`
  );
}

async function describeXactHolder(client: pg.ClientBase): Promise<string> {
  const row = (await client.query(XACT_HOLDER_SQL).catch(() => ({ rows: [] }))).rows[0] as
    | { pid: number; app: string; user: string; addr: string | null; state: string; since: string; query: string }
    | undefined;
  if (!row) return "a tenant command or another run's transaction (it has just finished)";
  return (
    `server session pid ${row.pid} (application "${row.app}", user ${row.user}` +
    `${row.addr ? `, from ${row.addr}` : ""}, ${row.state} since ${row.since}, last query: ${row.query})`
  );
}

/** Who holds locks on `schema`'s relations, for the message of a lock timeout that would not clear. */
export async function describeBlockers(client: pg.ClientBase, schema: string): Promise<string> {
  const { rows } = await client
    .query<{ pid: number; app: string; state: string; since: string; query: string; locks: string }>(BLOCKERS_SQL, [schema])
    .catch(() => ({ rows: [] as never[] }));
  if (rows.length === 0) return `no session holds a lock in schema ${schema} any more`;
  return rows
    .map((r) => `pid ${r.pid} (application "${r.app}", ${r.state} since ${r.since}, holds ${r.locks}; last query: ${r.query})`)
    .join("; ");
}

async function readHolder(client: pg.ClientBase): Promise<RunHolder | undefined> {
  return (await client.query<RunHolder>(HOLDER_SQL)).rows[0];
}

/**
 * BEGIN, the attempt at the advisory lock and the run's row, in one round trip when the caller
 * expects the lock table (`lockTable`); else, or when it turns out to be missing, in three.
 */
async function beginLocked(
  client: pg.ClientBase,
  lockTable: boolean,
): Promise<{ locked: boolean; run: RunHolder | undefined; state: LedgerState }> {
  if (lockTable) {
    try {
      const results = (await client.query(`BEGIN; ${TRY_LOCK_SQL}; ${HOLDER_SQL}`)) as unknown as pg.QueryResult[];
      const row = results[1]!.rows[0] as LockRow;
      return { locked: row.locked, run: results[2]!.rows[0] as RunHolder | undefined, state: row };
    } catch (error) {
      // undefined_table, invalid_schema_name: no lock table yet.
      if (!["42P01", "3F000"].includes(sqlstate(error) ?? "")) throw error;
      await client.query("ROLLBACK");
    }
  }
  await client.query("BEGIN");
  const row = last(await client.query(TRY_LOCK_SQL)).rows[0] as LockRow;
  return { locked: row.locked, run: row.has_table ? await readHolder(client) : undefined, state: row };
}

interface LockRow extends LedgerState {
  locked: boolean;
  has_table: boolean;
}

function isLive(holder: RunHolder | undefined): holder is RunHolder {
  return holder !== undefined && holder.heartbeatAgeMs <= STALE_AFTER_MS;
}

function last(result: unknown): pg.QueryResult {
  return (Array.isArray(result) ? result.at(-1) : result) as pg.QueryResult;
}

/**
 * One transaction of a tenant command under the migration lock: waits (up to `waitMs`) while a
 * tenant command holds the advisory lock or a live migration run holds the lock row, then runs
 * `work` and commits. `work` is told the ledger's state, read with the lock. `busy` turns the
 * holder's description into the error to throw. `lockTable`: false for a command on a database
 * not initialized yet (init, adopt), which has no lock table to read in the same round trip.
 */
export async function commandTransaction<T>(
  client: pg.ClientBase,
  waitMs: number,
  work: (state: LedgerState) => Promise<T>,
  busy: (holder: string) => Error,
  lockTable = true,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let holder: string | undefined;
    try {
      const { locked, run, state } = await beginLocked(client, lockTable);
      // A run's row names the run, whether or not one of its transactions holds the lock now.
      if (isLive(run) || (run && !locked)) holder = `migration ${describeRun(run)}`;
      else if (!locked) holder = await describeXactHolder(client);
      if (holder === undefined) {
        const result = await work(state);
        await client.query("COMMIT");
        return result;
      }
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    }
    await client.query("ROLLBACK");
    if (Date.now() >= deadline) throw busy(holder);
    await sleep(Math.min(200, Math.max(10, deadline - Date.now())));
  }
}

/**
 * A migration run's hold on the migration lock. `open()` starts the run's first transaction under
 * the advisory lock once no live run holds the row; then either `commit()` (nothing to do) or
 * `claim()` + `commit()`, then `transaction()` for each batch, and `release()` at the end.
 */
export class RunLock {
  readonly runId = randomBytes(4).toString("hex");
  readonly host = hostname();
  readonly pid = process.pid;
  private claimed = false;
  private inTransaction = false;
  private beating = false;
  private timer: NodeJS.Timeout | undefined;

  private readonly client: pg.Client;
  private readonly settings: RunSettings;
  private readonly notice: (line: string) => void;

  constructor(client: pg.Client, settings: RunSettings, notice: (line: string) => void = () => {}) {
    this.client = client;
    this.settings = settings;
    this.notice = notice;
  }

  /** BEGIN and the run's SET LOCAL settings, in one round trip (`then`: more statements). */
  private beginSql(then = ""): string {
    const { lockTimeoutMs, statementTimeoutMs } = this.settings;
    return (
      `BEGIN; SELECT set_config('lock_timeout', '${Math.round(lockTimeoutMs)}ms', true), ` +
      `set_config('statement_timeout', '${Math.round(statementTimeoutMs)}ms', true), ` +
      `CASE WHEN current_setting('server_version_num')::int >= 140000 ` +
      `THEN set_config('client_connection_check_interval', '${CONNECTION_CHECK_MS}ms', true) END;${then}`
    );
  }

  private async rollbackQuietly(): Promise<void> {
    await this.client.query("ROLLBACK").catch(() => {});
    this.inTransaction = false;
  }

  /**
   * Opens the run's first transaction holding the advisory lock, waiting up to `waitForRunMs`
   * while a tenant command holds it or a live run holds the lock row. Creates the lock table if
   * this database does not have it yet. The transaction stays open.
   */
  async open(notInitialized: () => Error): Promise<void> {
    const deadline = Date.now() + this.settings.waitForRunMs;
    for (;;) {
      this.inTransaction = true;
      let holder: string | undefined;
      try {
        const state = last(await this.client.query(this.beginSql(TRY_LOCK_SQL))).rows[0] as LockRow;
        if (!state.exists) throw notInitialized();
        // A run's row names the run, whether or not one of its transactions holds the lock now.
        const run = state.has_table ? await readHolder(this.client) : undefined;
        // (A run inside a long transaction has an old heartbeat but holds the advisory lock.)
        if (isLive(run) || (run && !state.locked)) holder = `another migration run holds the migration lock: ${describeRun(run)}`;
        else if (!state.locked) holder = await describeXactHolder(this.client);
        else if (!state.has_table) await this.client.query(CREATE_LOCK_TABLE_SQL);
        else if (run) this.notice(`taking over the migration lock from a dead run: ${describeRun(run)}`);
      } catch (error) {
        await this.rollbackQuietly();
        throw error;
      }
      if (holder === undefined) return;
      await this.rollbackQuietly();
      if (Date.now() >= deadline) {
        const what = holder.startsWith("another") ? holder : `the migration lock is held by ${holder}`;
        throw new LockBusyError(
          `${what}; waited ${Math.round(this.settings.waitForRunMs / 1000)} s. ` +
            "Try again when it has finished, or raise --wait-for-run.",
        );
      }
      await sleep(Math.min(200, Math.max(10, deadline - Date.now())));
    }
  }

  /** Writes the run's row (in the open transaction); it becomes visible at `commit()`. */
  async claim(): Promise<void> {
    const { rowCount } = await this.client.query(
      `INSERT INTO ${LOCK_TABLE} AS l (run_id, host, pid) VALUES ($1, $2, $3)
       ON CONFLICT (singleton) DO UPDATE SET run_id = excluded.run_id, host = excluded.host, pid = excluded.pid,
         started_at = excluded.started_at, heartbeat = excluded.heartbeat
       WHERE l.heartbeat < clock_timestamp() - $4::int * interval '1 millisecond'`,
      [this.runId, this.host, this.pid, STALE_AFTER_MS],
    );
    if (!rowCount) {
      const run = await readHolder(this.client);
      throw new LockBusyError(
        `another migration run holds the migration lock: ${run ? describeRun(run) : "(just released)"}. Try again when it has finished.`,
      );
    }
    this.claimed = true;
  }

  /** Commits the open transaction; a claimed row is then kept alive by a heartbeat until `release()`. */
  async commit(): Promise<void> {
    try {
      await this.client.query("COMMIT");
    } finally {
      this.inTransaction = false;
    }
    if (this.claimed && !this.timer) {
      this.timer = setInterval(() => this.beat(), HEARTBEAT_MS);
      this.timer.unref();
    }
  }

  async rollback(): Promise<void> {
    if (this.inTransaction) await this.rollbackQuietly();
  }

  /** Refreshes the row while the run is between transactions (inside one, the advisory lock protects it). */
  private beat(): void {
    if (this.inTransaction || this.beating) return;
    this.beating = true;
    this.client
      .query(`UPDATE ${LOCK_TABLE} SET heartbeat = clock_timestamp() WHERE run_id = $1`, [this.runId])
      .catch(() => {})
      .finally(() => (this.beating = false));
  }

  /**
   * One transaction of the run: BEGIN with the run's settings, the advisory lock (waited for
   * under lock_timeout), the check that the run still owns the row, `work`, the heartbeat, COMMIT.
   * On a lock timeout or a deadlock the whole transaction is rolled back and retried, up to
   * `lockRetries` more times with growing pauses; then the error is rethrown with what blocked it.
   * `schemaOf` names the schema a failed statement worked on (for the blockers in the message).
   * With `end` ROLLBACK, the transaction only guards `work` (under the lock and the run's settings).
   */
  async transaction<T>(
    work: () => Promise<T>,
    schemaOf: (error: unknown) => string | undefined = () => undefined,
    end: "COMMIT" | "ROLLBACK" = "COMMIT",
  ): Promise<T> {
    const started = Date.now();
    const attempts = this.settings.lockRetries + 1;
    for (let attempt = 1; ; attempt++) {
      this.inTransaction = true;
      try {
        const check = last(
          await this.client.query(
            this.beginSql(
              ` SELECT pg_advisory_xact_lock(${KEY}); UPDATE ${LOCK_TABLE} SET heartbeat = clock_timestamp() WHERE run_id = ${this.client.escapeLiteral(this.runId)};`,
            ),
          ),
        );
        if (!check.rowCount) {
          const run = await readHolder(this.client).catch(() => undefined);
          throw new LockLostError(
            `this run (${this.runId}) lost the migration lock: it was stalled for more than ${STALE_AFTER_MS / 1000} s ` +
              `and ${run ? describeRun(run) : "another run"} took it over. Nothing of this transaction was applied; ` +
              "run migrate again to finish.",
          );
        }
        const result = await work();
        await this.client.query(`UPDATE ${LOCK_TABLE} SET heartbeat = clock_timestamp() WHERE run_id = $1`, [this.runId]);
        await this.client.query(end);
        this.inTransaction = false;
        return result;
      } catch (error) {
        await this.rollbackQuietly();
        const code = sqlstate(error);
        if (code === "57014" && this.settings.statementTimeoutMs > 0 && error instanceof Error && /statement timeout/.test(error.message)) {
          error.message +=
            `\nA statement ran longer than --statement-timeout-ms ${this.settings.statementTimeoutMs} and was cancelled; ` +
            "the transaction was rolled back. Raise --statement-timeout-ms (0: none) if it needs longer.";
        }
        if (code === undefined || !RETRIABLE.has(code)) throw error;
        const schema = schemaOf(error);
        const blockers = schema ? await describeBlockers(this.client, schema) : await describeXactHolder(this.client);
        const what = code === "40P01" ? "was chosen as a deadlock victim" : `could not take a lock within ${this.settings.lockTimeoutMs} ms (--lock-timeout-ms)`;
        if (attempt >= attempts) {
          const detail =
            `\nThe transaction ${what} on each of ${attempts} attempt(s) over ${((Date.now() - started) / 1000).toFixed(1)} s ` +
            `and was rolled back each time. Blocked by: ${blockers}.\n` +
            "Let that work finish (or end it), then run migrate again; or raise --lock-timeout-ms or --lock-retries.";
          if (error instanceof Error) {
            error.message += detail;
            throw error;
          }
          throw new LockBusyError(`${String(error)}${detail}`);
        }
        const pause = Math.min(10_000, 500 * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5);
        this.notice(
          `${(error as Error).message.split("\n")[0]}: the transaction ${what}, blocked by ${blockers}; ` +
            `rolled back, retrying in ${(pause / 1000).toFixed(1)} s (attempt ${attempt + 1} of ${attempts})`,
        );
        await sleep(pause);
      }
    }
  }

  /** Stops the heartbeat and deletes the run's row (a dead run's row goes stale instead). */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.claimed) return;
    this.claimed = false;
    await this.client.query(`DELETE FROM ${LOCK_TABLE} WHERE run_id = $1`, [this.runId]).catch(() => {});
  }
}

/** The live run holding the lock row, if any (for `migrate status`). */
export async function currentRun(client: pg.ClientBase): Promise<RunHolder | undefined> {
  const { rows } = await client.query<{ exists: boolean }>(`SELECT to_regclass('${LOCK_TABLE}') IS NOT NULL AS exists`);
  if (!rows[0]!.exists) return undefined;
  const run = await readHolder(client);
  return isLive(run) ? run : undefined;
}
