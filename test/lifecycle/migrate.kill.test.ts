// A killed run does not keep the lock: `kill -9` of `migrate` in the middle of a batch. The server
// notices the dead client within seconds (client_connection_check_interval on the run's
// transactions) and rolls its work back, so the tenant's table is free again at once; the run's
// lock row stops getting heartbeats, and the next run takes it over a few seconds later.
import { afterAll, expect, it } from "vitest";
import { hasColumn, ledger } from "../support/catalog.ts";
import { MIGRATE_CLI, connectTo, dropTestDatabases, freshDatabase, migrateCli, show, spawnScript } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, editMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";
import { STALE_AFTER_MS } from "../../scripts/migrations/lock.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

it("kill -9 mid-batch: the tenant's table is free within seconds and the next run takes the lock over and finishes", async () => {
  const databaseUrl = await freshDatabase("kill9");
  const client = await connectTo(databaseUrl);
  await initWithTenants(client, ["acme", "globex"]);
  const migrationsDir = fixtureMigrations();
  // A slow migration: the ALTER takes the table's ACCESS EXCLUSIVE lock, then the batch sleeps.
  const note = addMigration(migrationsDir, "tenant", "note", [
    'ALTER TABLE "tenant"."items" ADD COLUMN "note" text;',
    "SELECT pg_sleep(60);",
  ]);
  const acme = (await client.query<{ s: string }>("SELECT schema_name AS s FROM shared.tenants WHERE slug = 'acme'")).rows[0]!.s;

  const { child, done } = spawnScript(MIGRATE_CLI, ["--batch-size", "1"], { databaseUrl, migrationsDir });
  const orphan = await waitFor("the first batch to sleep", async () => {
    const { rows } = await client.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND state = 'active' AND pid <> pg_backend_pid()",
    );
    return rows[0]?.pid;
  });
  const held = await client.query(
    "SELECT mode FROM pg_locks WHERE pid = $1 AND relation = $2::regclass AND granted",
    [orphan, `"${acme}".items`],
  );
  expect(held.rows.map((r) => r.mode)).toContain("AccessExclusiveLock");

  child.kill("SIGKILL");
  const killed = await done;
  expect(killed.code).toBe(null);

  // A Worker query on the tenant's table: blocked only until the server has ended the orphaned
  // batch (about a second), well inside its 5 s lock_timeout. (Before: the batch slept on for a
  // minute holding the lock.)
  const worker = await connectTo(databaseUrl);
  await worker.query("SET lock_timeout = '5s'");
  const started = performance.now();
  const { rows } = await worker.query(`SELECT count(*)::int AS n FROM "${acme}".items`);
  expect(rows[0].n).toBe(0);
  console.log(`worker query after kill -9 waited ${Math.round(performance.now() - started)} ms`);
  await waitFor("the orphaned session to end", async () =>
    (await client.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [orphan])).rowCount === 0 ? true : undefined,
  );
  // Nothing of the killed batch was kept.
  expect(await hasColumn(client, acme, "items", "note")).toBe(false);

  // The dead run's row is still there; the next run waits until it is stale, takes it over and
  // finishes (default --wait-for-run 10 s; the row goes stale STALE_AFTER_MS after the last heartbeat).
  const row = (await client.query<{ pid: number }>("SELECT pid FROM shared.migration_lock")).rows[0];
  expect(row?.pid).toBe(child.pid);
  expect(STALE_AFTER_MS).toBeLessThanOrEqual(5_000);
  editMigration(migrationsDir, "tenant", note, (text) => text.replace("pg_sleep(60)", "pg_sleep(0)"));
  const next = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "1");
  expect(next.code, show(next)).toBe(0);
  expect(next.stderr).toContain(`notice: taking over the migration lock from a dead run: run `);
  expect(next.stderr).toContain(`(pid ${child.pid})`);
  expect(next.stdout).toContain("Migrated: 0 shared migration(s), 2 tenant(s) in 2 transaction(s).");
  expect((await ledger(client)).filter((r) => r.migration === note)).toHaveLength(2);
  expect((await client.query("SELECT * FROM shared.migration_lock")).rows).toEqual([]);
});
