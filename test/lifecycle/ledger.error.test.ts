// The ledger guards: an applied migration edited afterwards is refused everywhere, a database with
// migrations the checkout lacks is refused, migration files that break the rules are refused, and
// a tenant cannot be created while the database is behind head. Each refusal changes nothing.
import { renameSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { initWithTenants, schemaOf } from "../support/fleet.ts";
import { addMigration, editMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

async function initialized(label: string, slugs = ["acme", "globex"]) {
  const databaseUrl = await freshDatabase(label);
  const client = await connectTo(databaseUrl);
  await initWithTenants(client, slugs);
  return { databaseUrl, client };
}

describe("an applied migration edited afterwards", () => {
  it("is refused by migrate, migrate status and tenants create, and nothing is applied", async () => {
    const { databaseUrl, client } = await initialized("ledger_edited");
    const migrationsDir = fixtureMigrations();
    // One byte: 'archived' -> 'archivee' in an applied tenant migration; plus a pending migration.
    editMigration(migrationsDir, "tenant", "0001_item_status", (text) => text.replace("'archived'", "'archivee'"));
    addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await databaseState(client);

    const expected = /^error: migrations\/tenant\/0001_item_status\.sql was edited after it was applied \(ledger checksum [0-9a-f]{12}…, file [0-9a-f]{12}…; line endings do not count, so this is a real edit\): restore the applied file and put the change in a new migration\n$/;
    for (const args of [[], ["--batch-size", "1"], ["--dry-run"], ["status"]]) {
      const r = await migrateCli({ databaseUrl, migrationsDir }, ...args);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toMatch(expected);
    }
    const create = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(create.code, show(create)).toBe(1);
    expect(create.stderr).toMatch(expected);
    expect(await databaseState(client)).toEqual(before);
  });

  it("an edited shared migration is refused too", async () => {
    const { databaseUrl, client } = await initialized("ledger_edited_shared", ["acme"]);
    const migrationsDir = fixtureMigrations();
    editMigration(migrationsDir, "shared", "0000_init", (text) => `${text}\n`);
    const before = await databaseState(client);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain("migrations/shared/0000_init.sql was edited after it was applied");
    expect(await databaseState(client)).toEqual(before);
  });
});

describe("a database ahead of the checkout", () => {
  it("refuses to migrate when the ledger has a migration the checkout does not have", async () => {
    const databaseUrl = await freshDatabase("ledger_ahead");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, ["acme"]);
    const older = fixtureMigrations({ tenant: 1 });
    const before = await databaseState(client);
    const r = await migrateCli({ databaseUrl, migrationsDir: older });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(
      "error: the database has tenant migration 0001_item_status, which this checkout does not have: update your checkout",
    );
    expect(await databaseState(client)).toEqual(before);
  });
});

describe("migration files that break the rules", () => {
  it("a .sql file missing from meta/_journal.json is refused, nothing applied", async () => {
    const { databaseUrl, client } = await initialized("ledger_journal", ["acme"]);
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const unlisted = `${String(Number(tag.slice(0, 4)) + 1).padStart(4, "0")}_unlisted`;
    // Listed in the journal, but the file is gone; and another file is not listed.
    renameSync(join(migrationsDir, "tenant", `${tag}.sql`), join(migrationsDir, "tenant", `${unlisted}.sql`));
    const before = await databaseState(client);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(
      `error: migrations/tenant: ${unlisted} not in meta/_journal.json; meta/_journal.json lists missing file(s) ${tag}`,
    );
    expect(await databaseState(client)).toEqual(before);
  });

  it("a tenant migration naming public or a real tenant schema is refused, nothing applied", async () => {
    const { databaseUrl, client } = await initialized("ledger_names", ["acme"]);
    const before = await databaseState(client);
    const cases: Array<[string, string]> = [
      ['CREATE TABLE "public"."leak" (id integer);', 'statement 1 (line 1): table "public"."leak" is in the public schema'],
      ['ALTER TABLE "tenant_acme"."items" ADD COLUMN "x" integer;', 'statement 1 (line 1): table "tenant_acme"."items" names the real tenant schema'],
      ['CREATE SCHEMA "extra";', "statement 1 (line 1): it creates or drops a schema"],
    ];
    for (const [statement, problem] of cases) {
      const migrationsDir = fixtureMigrations();
      const tag = addMigration(migrationsDir, "tenant", "bad", [statement]);
      const r = await migrateCli({ databaseUrl, migrationsDir });
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toContain(`error: migrations/tenant/${tag}.sql is refused: ${problem}`);
      expect(await databaseState(client)).toEqual(before);
    }
  });
});

describe("tenants create while the database is behind head", () => {
  it("is refused with the pending migrations named; no schema, catalog or ledger row is created", async () => {
    const { databaseUrl, client } = await initialized("ledger_behind_tenant");
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "note", ['ALTER TABLE "tenant"."items" ADD COLUMN "note" text;']);
    const before = await databaseState(client);

    const r = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toBe(
      `error: the database is not at head (pending: tenant/${tag}): run \`npm run migrate\` first, then create the tenant`,
    );
    expect(r.stdout).toBe("");
    expect(await databaseState(client)).toEqual(before);
    const { rowCount } = await client.query("SELECT 1 FROM shared.tenants WHERE slug = 'initech'");
    expect(rowCount).toBe(0);

    // After migrating, the same command succeeds and the new tenant is at the new head.
    const m = await migrateCli({ databaseUrl, migrationsDir });
    expect(m.code, show(m)).toBe(0);
    const ok = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(ok.code, show(ok)).toBe(0);
    const { rows } = await client.query("SELECT migration FROM public.schema_migrations WHERE schema_name = $1 ORDER BY 1", [
      await schemaOf(client, "initech"),
    ]);
    expect(rows.map((x) => x.migration)).toEqual(["0000_init", "0001_item_status", "0002_user_role", tag]);
  });

  it("a database from before a shared table the checks read (shared/0008_tenant_retention) is refused by name, not with an SQL error", async () => {
    const databaseUrl = await freshDatabase("ledger_behind_retention");
    const client = await connectTo(databaseUrl);
    const older = fixtureMigrations({ shared: 8 });
    const init = await tenantsCli({ databaseUrl, migrationsDir: older }, "init");
    expect(init.code, show(init)).toBe(0);
    const before = await databaseState(client);
    const migrationsDir = fixtureMigrations();
    for (const args of [[], ["--no-pool"]]) {
      const r = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com", ...args);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr.trim()).toBe(
        "error: the database is not at head (pending: shared/0008_tenant_retention): run `npm run migrate` first, then create the tenant",
      );
    }
    expect(await databaseState(client)).toEqual(before);
    // Migrated, the same command succeeds.
    const m = await migrateCli({ databaseUrl, migrationsDir });
    expect(m.code, show(m)).toBe(0);
    const ok = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(ok.code, show(ok)).toBe(0);
  });

  it("a pending shared migration refuses create too", async () => {
    const { databaseUrl, client } = await initialized("ledger_behind_shared", ["acme"]);
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "shared", "note", ['ALTER TABLE "shared"."tenants" ADD COLUMN "note" text;']);
    const before = await databaseState(client);
    const r = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(`error: the database is not at head (pending: shared/${tag})`);
    expect(await databaseState(client)).toEqual(before);
  });
});
