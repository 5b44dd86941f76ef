// Migrations do not take production down: every statement of a run has a lock_timeout, so an
// ALTER TABLE queued behind a long transaction gives up (and retries the whole transaction later)
// instead of making every other query on that table queue behind it; a run that cannot get its
// lock stops cleanly, naming what blocked it.
import { afterAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

async function schemaOf(client: pg.Client, slug: string): Promise<string> {
  return (await client.query<{ s: string }>("SELECT schema_name AS s FROM shared.tenants WHERE slug = $1", [slug])).rows[0]!.s;
}

/** Waits until some session waits for (not holds) a lock on `relation`. */
async function lockRequested(client: pg.Client, relation: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rowCount } = await client.query("SELECT 1 FROM pg_locks WHERE relation = $1::regclass AND NOT granted", [relation]);
    if (rowCount) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nobody queued for a lock on ${relation}`);
}

/** A long transaction (think: a slow report) holding a lock on the tenant's table. */
async function longReader(databaseUrl: string, table: string): Promise<{ client: pg.Client; pid: number }> {
  const client = await connectTo(databaseUrl);
  await client.query("SET application_name = 'slow-report'");
  await client.query("BEGIN");
  await client.query(`SELECT count(*) FROM ${table}`);
  const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
  return { client, pid };
}

describe("an ALTER TABLE queued behind a long transaction", () => {
  it("times out, retries, and never blocks other queries on the table longer than its lock_timeout; applies when the transaction ends", async () => {
    const databaseUrl = await freshDatabase("to_retry");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    const note = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const table = `"${await schemaOf(client, "acme")}".items`;

    const holder = await longReader(databaseUrl, table);
    const run = migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout-ms", "500", "--lock-retries", "30");
    await lockRequested(client, table);

    // Meanwhile the Worker keeps querying the table. Were the ALTER to wait without a timeout, these
    // would queue behind it for as long as the long transaction lasts: their own lock_timeout
    // (4x the migration's) would cancel them.
    const worker = await connectTo(databaseUrl);
    await worker.query("SET lock_timeout = '2000ms'");
    const failures: string[] = [];
    const waits: number[] = [];
    const until = Date.now() + 4_000;
    while (Date.now() < until) {
      const started = performance.now();
      await worker.query(`SELECT count(*) FROM ${table}`).catch((e: Error) => failures.push(e.message));
      waits.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(failures).toEqual([]);
    expect(waits.length).toBeGreaterThan(5);
    console.log(`worker queries during the retries: ${waits.length}, longest wait ${Math.round(Math.max(...waits))} ms (migration lock_timeout 500 ms)`);

    await holder.client.query("COMMIT");
    const r = await run;
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("Migrated: 0 shared migration(s), 2 tenant(s) in 1 transaction(s).");
    expect(r.stderr).toContain(
      `notice: migration tenant/${note} failed on tenant acme (schema ${await schemaOf(client, "acme")}): canceling statement due to lock timeout (SQLSTATE 55P03): ` +
        `the transaction could not take a lock within 500 ms (--lock-timeout-ms), blocked by pid ${holder.pid} (application "slow-report", idle in transaction since `,
    );
    expect(r.stderr).toMatch(/rolled back, retrying in \d+\.\d s \(attempt 2 of 31\)/);
    expect(await hasColumn(client, await schemaOf(client, "acme"), "items", "note")).toBe(true);
    expect(await hasColumn(client, await schemaOf(client, "globex"), "items", "note")).toBe(true);
    expect((await ledger(client)).filter((row) => row.migration === note)).toHaveLength(2);
  });

  it("gives up after its retries, naming the blocking session; nothing applied anywhere", async () => {
    const databaseUrl = await freshDatabase("to_giveup");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const globex = await schemaOf(client, "globex");
    const before = await ledger(client);

    // The second tenant is the blocked one: the first one's ALTER must be rolled back too.
    const holder = await longReader(databaseUrl, `"${globex}".items`);
    const r = await migrateCli({ databaseUrl, migrationsDir }, "--lock-timeout-ms", "200", "--lock-retries", "2");
    await holder.client.query("ROLLBACK");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain("canceling statement due to lock timeout (SQLSTATE 55P03)");
    expect(r.stderr).toContain("The transaction could not take a lock within 200 ms (--lock-timeout-ms) on each of 3 attempt(s)");
    expect(r.stderr).toContain(
      `Blocked by: pid ${holder.pid} (application "slow-report", idle in transaction since `,
    );
    expect(r.stderr).toContain(`holds AccessShareLock on ${globex}.items`);
    expect(r.stderr).toContain("Nothing was applied: the whole run was rolled back.");
    expect(r.stderr.match(/retrying in/g)).toHaveLength(2);
    expect(await ledger(client)).toEqual(before);
    expect(await hasColumn(client, await schemaOf(client, "acme"), "items", "note")).toBe(false);
    expect(await hasColumn(client, globex, "items", "note")).toBe(false);
    expect((await client.query("SELECT * FROM shared.migration_lock")).rows).toEqual([]);
  });
});

