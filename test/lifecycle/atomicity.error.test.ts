// Invariant 6: init and create are each one transaction. A failure halfway leaves nothing behind,
// and two of them at once are serialized (one wins, the other sees its result).
import { afterAll, describe, expect, it } from "vitest";
import { databaseState, publicObjects, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants, schemaOf } from "../support/fleet.ts";
import { addMigration, checkoutTags, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

describe("a failure halfway", () => {
  it("init whose second shared migration fails leaves no schema and no ledger", async () => {
    const databaseUrl = await freshDatabase("atom_init");
    const client = await connectTo(databaseUrl);
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "shared", "broken", ['ALTER TABLE "shared"."no_such_table" ADD COLUMN "x" integer;']);

    const r = await tenantsCli({ databaseUrl, migrationsDir }, "init");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain('relation "shared.no_such_table" does not exist');
    expect(r.stdout).toBe("");
    expect(await userSchemas(client)).toEqual(["public"]);
    expect(await publicObjects(client)).toEqual([]);

    // The database is still usable: init with a good set works.
    const ok = await tenantsCli({ databaseUrl }, "init");
    expect(ok.code, show(ok)).toBe(0);
    expect(ok.stdout).toContain("Initialized:");
  });

  it("create whose tenant migration fails leaves no schema, catalog, host or ledger row", async () => {
    const databaseUrl = await freshDatabase("atom_create");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, []);
    // With no tenants yet the database is at head whatever the tenant track holds.
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "broken", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;',
      'ALTER TABLE "tenant"."no_such_table" ADD COLUMN "x" integer;',
    ]);
    const before = await databaseState(client);

    const r = await tenantsCli({ databaseUrl, migrationsDir }, "create", "acme", "--name", "Acme", "--host", "acme.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/relation "tenant_[a-z2-7]{12}\.no_such_table" does not exist/);
    expect(await databaseState(client)).toEqual(before);
    expect(await userSchemas(client)).toEqual(["public", "shared"]);
    const { rows } = await client.query("SELECT count(*)::int AS n FROM shared.tenant_hosts");
    expect(rows[0].n).toBe(0);
  });
});

describe("two at once", () => {
  it("two inits: one initializes, the other finds it done; both exit 0", async () => {
    const databaseUrl = await freshDatabase("atom_two_inits");
    const client = await connectTo(databaseUrl);
    const results = await Promise.all([tenantsCli({ databaseUrl }, "init"), tenantsCli({ databaseUrl }, "init")]);
    for (const r of results) expect(r.code, show(r)).toBe(0);
    const outputs = results.map((r) => r.stdout.split(":")[0]).sort();
    expect(outputs).toEqual(["Already initialized", "Initialized"]);
    const { rows } = await client.query("SELECT count(*)::int AS n FROM public.schema_migrations");
    expect(rows[0].n).toBe(checkoutTags("shared").length);
  });

  it("two creates of the same slug: one tenant, the other refused", async () => {
    const databaseUrl = await freshDatabase("atom_two_creates");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, []);
    const results = await Promise.all([
      tenantsCli({ databaseUrl }, "create", "acme", "--name", "Acme 1", "--host", "one.example.com"),
      tenantsCli({ databaseUrl }, "create", "acme", "--name", "Acme 2", "--host", "two.example.com"),
    ]);
    expect(results.map((r) => r.code).sort()).toEqual([0, 1]);
    const loser = results.find((r) => r.code === 1)!;
    expect(loser.stderr).toBe("error: tenant acme already exists\n");
    const { rows } = await client.query("SELECT t.name, h.host FROM shared.tenants t JOIN shared.tenant_hosts h ON h.tenant_id = t.id");
    expect(rows).toHaveLength(1);
    const { rows: ledgerRows } = await client.query(
      "SELECT migration, count(*)::int AS n FROM public.schema_migrations WHERE schema_name = (SELECT schema_name FROM shared.tenants WHERE slug = 'acme') GROUP BY 1 ORDER BY 1",
    );
    expect(ledgerRows).toEqual([
      { migration: "0000_init", n: 1 },
      { migration: "0001_item_status", n: 1 },
      { migration: "0002_user_role", n: 1 },
    ]);
  });

  it("two creates claiming the same host: one gets it, the other is refused naming the owner", async () => {
    const databaseUrl = await freshDatabase("atom_two_hosts");
    const client = await connectTo(databaseUrl);
    await initWithTenants(client, []);
    const results = await Promise.all([
      tenantsCli({ databaseUrl }, "create", "acme", "--name", "Acme", "--host", "shop.example.com"),
      tenantsCli({ databaseUrl }, "create", "globex", "--name", "Globex", "--host", "shop.example.com"),
    ]);
    expect(results.map((r) => r.code).sort()).toEqual([0, 1]);
    const winner = results[0]!.code === 0 ? "acme" : "globex";
    const loser = results.find((r) => r.code === 1)!;
    expect(loser.stderr).toContain(`error: host shop.example.com already belongs to tenant ${winner}`);
    expect(await userSchemas(client)).toEqual(["public", "shared", await schemaOf(client, winner)]);
  });
});
