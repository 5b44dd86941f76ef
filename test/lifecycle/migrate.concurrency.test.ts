// Concurrent runs: the advisory lock lets one run apply; another waits (then finds nothing to do) or
// gives up after --lock-timeout with a message about the lock. No migration is applied twice.
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

const LOCK_MESSAGE = "another migration run (or tenant command) holds the migration lock";

/** Waits until some other session holds the migration lock (a run got going). */
async function lockTaken(client: pg.Client, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rowCount } = await client.query(
      `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
         AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295) AND objsubid = 1`,
      [MIGRATION_LOCK_KEY],
    );
    if (rowCount) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no run took the migration lock");
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
  it("--lock-timeout 1: exit 1 with the lock message after about a second, nothing applied", async () => {
    const databaseUrl = await freshDatabase("conc_held");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await ledger(client);

    const holder = await connectTo(databaseUrl);
    await holder.query("SELECT pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    const started = Date.now();
    const r = await migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout", "1");
    const elapsed = Date.now() - started;
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toBe(
      `error: ${LOCK_MESSAGE}; waited 1 s. Try again when it has finished, or raise --lock-timeout.`,
    );
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(await ledger(client)).toEqual(before);
    expect(await hasColumn(client, schemas.acme!, "items", "note")).toBe(false);

    // A run that waits long enough proceeds once the holder lets go; so does a tenant command.
    const waiting = migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout", "20");
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
  it("one applies, one waits and finds nothing to do, one with --lock-timeout 1 gives up; nothing applied twice", async () => {
    const databaseUrl = await freshDatabase("conc_slow");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex", "initech"]);
    const migrationsDir = fixtureMigrations();
    const slow = addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(4);"]);
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await ledger(client);

    const first = migrateCli({ databaseUrl, migrationsDir });
    await lockTaken(client);
    const second = migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout", "30");
    const impatient = migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout", "1");
    const [a, b, c] = await Promise.all([first, second, impatient]);

    expect(a.code, show(a)).toBe(0);
    expect(a.stdout).toContain("Migrated: 1 shared migration(s), 3 tenant(s) in 1 transaction(s).");
    expect(b.code, show(b)).toBe(0);
    expect(b.stdout).toMatch(/^Nothing to migrate: shared and 3 tenant\(s\) at head\./);
    expect(c.code, show(c)).toBe(1);
    expect(c.stderr).toContain(LOCK_MESSAGE);
    expect(c.stderr).toContain("--lock-timeout");

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
      migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "1", "--lock-timeout", "30"),
      migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "1", "--lock-timeout", "30"),
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
