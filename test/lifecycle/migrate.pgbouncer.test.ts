// The migration lock through a real PgBouncer in transaction mode (what Neon's `-pooler` host is):
// consecutive statements of one client may run on different server sessions, and one server
// session serves many clients. The pool has ONE server connection per database, the harshest
// multiplexing: every client's statements share a session. A session-level advisory lock then
// excludes nobody (test 1); the runner's transaction-scoped lock and its lock row still keep runs
// and tenant commands from interleaving, and nothing is applied twice.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { inject } from "vitest";
import { hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";
import { PGBOUNCER, startPgBouncer, type PgBouncer } from "../support/pgbouncer.ts";
import { MIGRATION_LOCK_KEY } from "../../scripts/migrations/ledger.ts";

let bouncer: PgBouncer;

beforeAll(async () => {
  if (PGBOUNCER) bouncer = await startPgBouncer(inject("databaseUrl"), 1);
});

afterAll(async () => {
  await bouncer?.stop();
  removeFixtureMigrations();
  await dropTestDatabases();
});

/** (schema, migration) pairs recorded more than once: must be none. */
async function duplicates(client: pg.Client): Promise<unknown[]> {
  return (
    await client.query(
      "SELECT schema_name, migration, count(*)::int AS n FROM public.schema_migrations GROUP BY 1, 2 HAVING count(*) > 1",
    )
  ).rows;
}

/** Waits (on a direct connection) until a run has claimed the migration lock row. */
async function runClaimed(client: pg.Client, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await client.query(
      "SELECT 1 FROM pg_tables WHERE schemaname = 'shared' AND tablename = 'migration_lock'",
    );
    if (rows.length && (await client.query("SELECT 1 FROM shared.migration_lock")).rowCount) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no run claimed the migration lock");
}

/** The schema of each tenant, from the catalog. */
async function schemas(client: pg.Client): Promise<Record<string, string>> {
  const { rows } = await client.query<{ slug: string; schema_name: string }>("SELECT slug, schema_name FROM shared.tenants");
  return Object.fromEntries(rows.map((r) => [r.slug, r.schema_name]));
}

describe.skipIf(!PGBOUNCER)("through PgBouncer in transaction mode", () => {
  it("a session-level advisory lock excludes nobody there (why the runner does not use one)", async () => {
    const databaseUrl = await freshDatabase("pgb_session");
    const a = await connectTo(bouncer.url(databaseUrl));
    const b = await connectTo(bouncer.url(databaseUrl));
    expect((await a.query("SELECT pg_try_advisory_lock($1) AS ok", [MIGRATION_LOCK_KEY])).rows[0].ok).toBe(true);
    // Another client gets the "same" lock: its statement ran on the session that holds it.
    expect((await b.query("SELECT pg_try_advisory_lock($1) AS ok", [MIGRATION_LOCK_KEY])).rows[0].ok).toBe(true);
    // A transaction-scoped lock taken inside a transaction does exclude the other client.
    await a.query("BEGIN");
    expect((await a.query("SELECT pg_try_advisory_xact_lock($1) AS ok", [MIGRATION_LOCK_KEY + 1])).rows[0].ok).toBe(true);
    const other = b.query("SELECT pg_try_advisory_xact_lock($1) AS ok", [MIGRATION_LOCK_KEY + 1]);
    await new Promise((r) => setTimeout(r, 200));
    await a.query("COMMIT");
    expect((await other).rows[0].ok).toBe(true); // b ran only after a's transaction let the lock go
    await a.end();
    await b.end();
  });

  it("two batched runs at once: one does every batch, the other finds nothing to do; nothing applied twice", async () => {
    const databaseUrl = await freshDatabase("pgb_batched");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex", "initech", "umbrella"]);
    const migrationsDir = fixtureMigrations();
    const slow = addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(3);"]);
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const pooled = bouncer.url(databaseUrl);

    const [a, b] = await Promise.all([
      migrateCli({ databaseUrl: pooled, migrationsDir }, "--batch-size", "1", "--wait-for-run", "60"),
      migrateCli({ databaseUrl: pooled, migrationsDir }, "--batch-size", "1", "--wait-for-run", "60"),
    ]);
    expect(a.code, `${show(a)}\n${show(b)}`).toBe(0);
    expect(b.code, `${show(a)}\n${show(b)}`).toBe(0);
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).toContain("Migrated: 1 shared migration(s), 4 tenant(s) in 5 transaction(s).");
    expect(outputs[1]).toMatch(/^Nothing to migrate: shared and 4 tenant\(s\) at head\./);
    const rows = await ledger(client);
    expect(rows.filter((r) => r.migration === slow).map((r) => r.schema_name)).toEqual(["shared"]);
    expect(rows.filter((r) => r.migration === note)).toHaveLength(4);
    expect(await duplicates(client)).toEqual([]);
    expect((await client.query("SELECT * FROM shared.migration_lock")).rows).toEqual([]);
  });

  it("two atomic runs at once: one applies everything in one transaction, the other finds nothing to do", async () => {
    const databaseUrl = await freshDatabase("pgb_atomic");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex", "initech"]);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "shared", "slow", ["SELECT pg_sleep(3);"]);
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const pooled = bouncer.url(databaseUrl);

    const [a, b] = await Promise.all([
      migrateCli({ databaseUrl: pooled, migrationsDir }, "--wait-for-run", "60"),
      migrateCli({ databaseUrl: pooled, migrationsDir }, "--wait-for-run", "60"),
    ]);
    expect(a.code, `${show(a)}\n${show(b)}`).toBe(0);
    expect(b.code, `${show(a)}\n${show(b)}`).toBe(0);
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).toContain("Migrated: 1 shared migration(s), 3 tenant(s) in 1 transaction(s).");
    expect(outputs[1]).toMatch(/^Nothing to migrate: shared and 3 tenant\(s\) at head\./);
    expect((await ledger(client)).filter((r) => r.migration === note)).toHaveLength(3);
    expect(await duplicates(client)).toEqual([]);
  });

  it("tenants create racing a batched migrate waits for the whole run, then creates the tenant at head", async () => {
    const databaseUrl = await freshDatabase("pgb_race");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex", "initech"]);
    const migrationsDir = fixtureMigrations();
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const pooled = bouncer.url(databaseUrl);

    // Keep the run busy: a direct session reads the last tenant's table in an open transaction,
    // so that tenant's batch times out on its lock and retries until the session lets go.
    const blocker = await connectTo(databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query(`SELECT count(*) FROM "${(await schemas(client)).initech}".items`);

    const run = migrateCli(
      { databaseUrl: pooled, migrationsDir },
      "--batch-size", "1", "--lock-timeout-ms", "300", "--lock-retries", "30", "--wait-for-run", "30",
    );
    await runClaimed(client);
    const create = tenantsCli(
      { databaseUrl: pooled, migrationsDir },
      "create", "hooli", "--name", "Hooli", "--host", "hooli.example.com",
    );
    await new Promise((r) => setTimeout(r, 2500));
    // Still migrating: the first two batches committed, the new tenant does not exist yet.
    expect((await client.query("SELECT 1 FROM shared.tenants WHERE slug = 'hooli'")).rowCount).toBe(0);
    await blocker.query("COMMIT");

    const [m, c] = await Promise.all([run, create]);
    expect(m.code, show(m)).toBe(0);
    expect(m.stdout).toContain("Migrated: 0 shared migration(s), 3 tenant(s) in 3 transaction(s).");
    expect(m.stderr).toContain("retrying in");
    expect(c.code, show(c)).toBe(0);

    // The tenant was created after the run's last batch committed, at head, and nothing twice.
    const created = await schemas(client);
    expect(Object.keys(created).sort()).toEqual(["acme", "globex", "hooli", "initech"]);
    const rows = await client.query<{ schema_name: string; applied_at: Date }>(
      "SELECT schema_name, applied_at FROM public.schema_migrations WHERE migration = $1",
      [note],
    );
    const runRows = rows.rows.filter((r) => r.schema_name !== created.hooli);
    const hooliRow = rows.rows.find((r) => r.schema_name === created.hooli);
    expect(runRows).toHaveLength(3);
    expect(hooliRow).toBeDefined();
    expect(hooliRow!.applied_at.getTime()).toBeGreaterThanOrEqual(Math.max(...runRows.map((r) => r.applied_at.getTime())));
    expect(await hasColumn(client, created.hooli!, "items", "note")).toBe(true);
    expect(await duplicates(client)).toEqual([]);
  });
});
