// Concurrent runs: the migration lock lets one run apply; another waits (then finds nothing to do) or
// gives up after --wait-for-run with a message naming who holds the lock. No migration is applied
// twice. (Through a transaction-mode pooler: migrate.pgbouncer.test.ts.)
import { hostname } from "node:os";
import { afterAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";
import { MIGRATION_LOCK_KEY } from "../../scripts/migrations/ledger.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

const LOCK_MESSAGE = "another migration run holds the migration lock";

interface RunRow {
  run_id: string;
  host: string;
  pid: number;
  started_at: string;
}

/** Waits until a run has claimed the migration lock row, and returns it. */
async function runClaimed(client: pg.Client, timeoutMs = 10_000): Promise<RunRow> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await client.query<RunRow>(
      `SELECT run_id, host, pid, to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"') AS started_at
       FROM shared.migration_lock`,
    );
    if (rows[0]) return rows[0];
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no run claimed the migration lock");
}

/** (schema, migration) pairs recorded more than once: must be none. */
async function duplicates(client: pg.Client): Promise<unknown[]> {
  return (
    await client.query(
      "SELECT schema_name, migration, count(*)::int AS n FROM public.schema_migrations GROUP BY 1, 2 HAVING count(*) > 1",
    )
  ).rows;
}

describe("the migration lock held by another session", () => {
  it("--wait-for-run 1: exit 1 naming the session that holds it, after about a second; nothing applied", async () => {
    const databaseUrl = await freshDatabase("conc_held");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await ledger(client);

    // A session holding the advisory lock (what a tenant command, or an older runner, does).
    const holder = await connectTo(databaseUrl);
    await holder.query("SET application_name = 'lock-holder'");
    await holder.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    const holderPid = (await holder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
    const started = Date.now();
    const r = await migrateCli({ databaseUrl, migrationsDir }, "--wait-for-run", "1");
    const elapsed = Date.now() - started;
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toMatch(
      new RegExp(
        `^error: the migration lock is held by server session pid ${holderPid} \\(application "lock-holder", user \\w+, from 127\\.0\\.0\\.1, idle since .* UTC, last query: SELECT pg_backend_pid\\(\\) AS pid\\); ` +
          "waited 1 s\\. Try again when it has finished, or raise --wait-for-run\\.$",
      ),
    );
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(await ledger(client)).toEqual(before);
    expect(await hasColumn(client, schemas.acme!, "items", "note")).toBe(false);

    // A run that waits long enough proceeds once the holder lets go; so does a tenant command.
    const waiting = migrateCli({ databaseUrl, migrationsDir }, "--wait-for-run", "20");
    await new Promise((r) => setTimeout(r, 700));
    await holder.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    const w = await waiting;
    expect(w.code, show(w)).toBe(0);
    expect(w.stdout).toContain("Migrated: 0 shared migration(s), 2 tenant(s) in 1 transaction(s).");

    await holder.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    const create = tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    await new Promise((r) => setTimeout(r, 500));
    const { rowCount } = await client.query("SELECT 1 FROM shared.tenants WHERE slug = 'initech'");
    expect(rowCount).toBe(0); // still waiting for the lock
    await holder.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    const c = await create;
    expect(c.code, show(c)).toBe(0);
    expect(await duplicates(client)).toEqual([]);
  });
});

describe("two runs at once over a slow migration", () => {
  it("one applies, one waits and finds nothing to do, one with --wait-for-run 1 gives up naming the run; nothing applied twice", async () => {
    const databaseUrl = await freshDatabase("conc_slow");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex", "initech"]);
    const migrationsDir = fixtureMigrations();
    const slow = addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(1);"]);
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await ledger(client);

    // Keep the first run going (holding the lock) until the impatient one has given up: a session
    // reading a tenant's table makes its ALTER time out and retry.
    const acme = (await client.query<{ s: string }>("SELECT schema_name AS s FROM shared.tenants WHERE slug = 'acme'")).rows[0]!.s;
    const blocker = await connectTo(databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query(`SELECT count(*) FROM "${acme}".items`);
    const first = migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout-ms", "200", "--lock-retries", "200");
    const holder = await runClaimed(client);
    expect(holder.host).toBe(hostname());
    const second = migrateCli({ databaseUrl, migrationsDir }, "--wait-for-run", "60");
    const c = await migrateCli({ databaseUrl, migrationsDir }, "--wait-for-run", "1");
    await blocker.query("COMMIT");
    const [a, b] = await Promise.all([first, second]);

    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toContain("Migrated: 1 shared migration(s), 3 tenant(s) in 1 transaction(s).");
    expect(b.code, show(b)).toBe(0);
    expect(b.stdout).toMatch(/^Nothing to migrate: shared and 3 tenant\(s\) at head\./);
    expect(c.code, show(c)).toBe(1);
    expect(c.stderr).toContain(
      `error: ${LOCK_MESSAGE}: run ${holder.run_id} on host ${holder.host} (pid ${holder.pid}), started ${holder.started_at}, last heartbeat `,
    );
    expect(c.stderr).toContain("waited 1 s. Try again when it has finished, or raise --wait-for-run.");
    // The run released its row when it finished.
    expect((await client.query("SELECT * FROM shared.migration_lock")).rows).toEqual([]);

    const added = (await ledger(client)).filter((row) => !before.some((x) => x.schema_name === row.schema_name && x.migration === row.migration));
    expect(added.map((row) => `${row.schema_name} ${row.migration}`).sort()).toEqual(
      [`shared ${slow}`, ...Object.values(schemas).map((schema) => `${schema} ${note}`)].sort(),
    );
    expect(await duplicates(client)).toEqual([]);
  });

  it("two batched runs at once: one does every batch, the other finds nothing to do", async () => {
    const databaseUrl = await freshDatabase("conc_batched");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex", "initech", "umbrella"]);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(1);"]);
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);

    const [a, b] = await Promise.all([
      migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "1", "--wait-for-run", "30"),
      migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "1", "--wait-for-run", "30"),
    ]);
    expect(a.code, show(a)).toBe(0);
    expect(b.code, show(b)).toBe(0);
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).toContain("Migrated: 1 shared migration(s), 4 tenant(s) in 5 transaction(s).");
    expect(outputs[1]).toMatch(/^Nothing to migrate: shared and 4 tenant\(s\) at head\./);
    const rows = (await ledger(client)).filter((r) => r.migration === note).map((r) => r.schema_name);
    expect(rows).toEqual(Object.values(schemas).sort());
    expect(await duplicates(client)).toEqual([]);
  });
});
