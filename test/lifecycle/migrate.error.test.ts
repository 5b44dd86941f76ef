// A migration that fails on one tenant: the default (atomic) run keeps nothing anywhere; a batched
// run keeps the batches before the failing one, and a re-run after the fix finishes the rest.
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

// Created in this order on purpose: runs go alphabetically, so charlie is the third either way.
const SLUGS = ["echo", "charlie", "alpha", "delta", "bravo"];
const ALPHABETICAL = ["alpha", "bravo", "charlie", "delta", "echo"];

/** Five tenants at the checkout's head; charlie got items.priority by hand; a fixture adds it everywhere. */
async function fleetWithHandMadeColumn(label: string) {
  const databaseUrl = await freshDatabase(label);
  const client = await connectTo(databaseUrl);
  const schemas = await initWithTenants(client, SLUGS);
  await client.query(`ALTER TABLE "${schemas.charlie}"."items" ADD COLUMN "priority" integer`);
  const migrationsDir = fixtureMigrations();
  const tag = addMigration(migrationsDir, "tenant", "priority", ['ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;']);
  expect(tag).toBe("0003_priority");
  return { databaseUrl, client, migrationsDir, tag, schemas };
}

async function withPriority(client: pg.Client, schemas: Record<string, string>): Promise<string[]> {
  const have: string[] = [];
  for (const slug of ALPHABETICAL) if (await hasColumn(client, schemas[slug]!, "items", "priority")) have.push(slug);
  return have;
}

/** The schemas of these tenants, in the ledger's order (by schema name). */
const schemasOf = (schemas: Record<string, string>, slugs: string[]) => slugs.map((s) => schemas[s]!).sort();

async function recordedFor(client: pg.Client, migration: string): Promise<string[]> {
  return (await ledger(client)).filter((r) => r.migration === migration).map((r) => r.schema_name);
}

describe("a tenant migration failing on the third of five tenants", () => {
  it("atomic run: exit 1 naming tenant, migration and PostgreSQL's error; nothing applied anywhere", async () => {
    const { databaseUrl, client, migrationsDir, tag, schemas } = await fleetWithHandMadeColumn("mig_err_atomic");
    const ledgerBefore = await ledger(client);

    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(`error: migration tenant/${tag} failed on tenant charlie (schema ${schemas.charlie})`);
    expect(r.stderr).toContain('column "priority" of relation "items" already exists (SQLSTATE 42701)');
    expect(r.stderr).toContain("Nothing was applied: the whole run was rolled back.");
    expect(r.stdout).toBe("");

    expect(await withPriority(client, schemas)).toEqual(["charlie"]);
    expect(await ledger(client)).toEqual(ledgerBefore);

    // Refusing again is stable: same failure, still nothing applied.
    const again = await migrateCli({ databaseUrl, migrationsDir });
    expect(again.code, show(again)).toBe(1);
    expect(await withPriority(client, schemas)).toEqual(["charlie"]);
    expect(await ledger(client)).toEqual(ledgerBefore);
  });

  it("--batch-size 2: the first batch is applied and recorded, exit 1; after the fix a re-run finishes the rest", async () => {
    const { databaseUrl, client, migrationsDir, tag, schemas } = await fleetWithHandMadeColumn("mig_err_batch");
    const ledgerBefore = await ledger(client);

    const r = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "2");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(`error: migration tenant/${tag} failed on tenant charlie (schema ${schemas.charlie})`);
    expect(r.stderr).toContain('column "priority" of relation "items" already exists');
    expect(r.stderr).toContain(
      "Batch 2 (tenants 3-4 of 5) was rolled back; the 2 tenants before it were migrated and recorded. " +
        "Fix the cause and run migrate again to finish the rest.",
    );
    expect(r.stderr).not.toContain("Nothing was applied");

    expect(await withPriority(client, schemas)).toEqual(["alpha", "bravo", "charlie"]);
    expect(await recordedFor(client, tag)).toEqual(schemasOf(schemas, ["alpha", "bravo"]));
    // Earlier ledger rows are untouched.
    const ledgerNow = await ledger(client);
    expect(ledgerNow.filter((row) => row.migration !== tag)).toEqual(ledgerBefore);

    // Status shows who is behind.
    const status = await migrateCli({ databaseUrl, migrationsDir }, "status", "--json");
    expect(status.code, show(status)).toBe(0);
    expect(JSON.parse(status.stdout).tenant.behind).toEqual(["charlie", "delta", "echo"]);

    // The fix: drop the hand-made column. The re-run resumes with the three that are left.
    await client.query(`ALTER TABLE "${schemas.charlie}"."items" DROP COLUMN "priority"`);
    const rerun = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "2");
    expect(rerun.code, show(rerun)).toBe(0);
    expect(rerun.stdout).toContain("Migrated: 0 shared migration(s), 3 tenant(s) in 2 transaction(s).");
    expect(rerun.stdout).toContain(`tenant: ${tag} -> charlie, delta, echo`);

    expect(await withPriority(client, schemas)).toEqual(ALPHABETICAL);
    expect(await recordedFor(client, tag)).toEqual(schemasOf(schemas, ALPHABETICAL));
    // Recorded exactly once per schema, and nothing else was recorded twice.
    const { rows } = await client.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM (SELECT schema_name, migration FROM public.schema_migrations GROUP BY 1, 2 HAVING count(*) > 1) d",
    );
    expect(rows[0]!.n).toBe(0);
    // The first batch kept its original ledger rows (not re-applied).
    const firstBatch = ledgerNow.filter((row) => row.migration === tag);
    expect((await ledger(client)).filter((row) => row.migration === tag && schemasOf(schemas, ["alpha", "bravo"]).includes(row.schema_name))).toEqual(
      firstBatch,
    );

    const done = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", "2");
    expect(done.code, show(done)).toBe(0);
    expect(done.stdout).toMatch(/^Nothing to migrate: shared and 5 tenant\(s\) at head\./);
  });
});

describe("a failing shared migration", () => {
  it("stops the run before any tenant, atomic and batched", async () => {
    const databaseUrl = await freshDatabase("mig_err_shared");
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["acme", "globex"]);
    const migrationsDir = fixtureMigrations();
    const shared = addMigration(migrationsDir, "shared", "broken", ['ALTER TABLE "shared"."no_such_table" ADD COLUMN "x" integer;']);
    addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const ledgerBefore = await ledger(client);

    for (const args of [[], ["--batch-size", "1"]]) {
      const r = await migrateCli({ databaseUrl, migrationsDir }, ...args);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain(`error: shared migration ${shared} failed: relation "shared.no_such_table" does not exist (SQLSTATE 42P01)`);
      expect(await ledger(client)).toEqual(ledgerBefore);
      expect(await hasColumn(client, schemas.acme!, "items", "note")).toBe(false);
      expect(await hasColumn(client, schemas.globex!, "items", "note")).toBe(false);
    }
  });
});
