// `npm run tenants` refusing what the database's state does not allow: not initialized, taken
// slugs and hosts, unknown tenants, delete without --yes, the last host, suspending twice. Each
// exits 1 with one line naming the problem and leaves the database exactly as it was.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState, publicObjects, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, onCitus, show, tenantsCli } from "../support/database.ts";
import { migrationSet } from "../support/migrations.ts";
import { createTenant, initDatabase } from "../../scripts/tenants/operations.ts";

// Each test starts CLI processes; on a loaded machine they take seconds each.
// Citus: every CLI run does its DDL on three nodes.
vi.setConfig({ testTimeout: onCitus ? 360_000 : 120_000, hookTimeout: 120_000 });

afterAll(dropTestDatabases);

const NOT_INITIALIZED = "the database is not initialized: run `npm run tenants -- init` first";

describe.concurrent("any command before init", () => {
  const commands: string[][] = [
    ["list"],
    ["list", "--json"],
    ["show", "acme"],
    ["create", "acme", "--name", "Acme", "--host", "acme.example.com"],
    ["hosts", "add", "acme", "acme.example.com"],
    ["hosts", "remove", "acme", "acme.example.com"],
    ["suspend", "acme"],
    ["resume", "acme"],
    ["delete", "acme"],
    ["delete", "acme", "--now", "--yes"],
    ["restore-deleted", "acme"],
    ["purge-deleted"],
  ];
  it.each(commands)("%s ... exits 1 saying so, and creates nothing", async (...args) => {
    const databaseUrl = await freshDatabase("tcli_uninit");
    const client = await connectTo(databaseUrl);
    const r = await tenantsCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: ${NOT_INITIALIZED}\n`);
    expect(r.stdout).toBe("");
    expect(await userSchemas(client)).toEqual(["public"]);
    expect(await publicObjects(client)).toEqual([]);
  });

  it("init refuses a database that has tenant-like schemas but no ledger", async () => {
    for (const schema of ["shared", "tenant_acme"]) {
      const databaseUrl = await freshDatabase("tcli_foreign");
      const client = await connectTo(databaseUrl);
      await client.query(`CREATE SCHEMA ${schema}`);
      const r = await tenantsCli({ databaseUrl }, "init");
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toBe(
        `error: schema ${schema} exists but the database has no migration ledger (public.schema_migrations): ` +
          "it was not initialized by edge-tenants; use an empty database\n",
      );
      expect(await userSchemas(client)).toEqual(["public", schema].sort());
      expect(await publicObjects(client)).toEqual([]);
    }
  });
});

describe("on an initialized database with tenants acme and globex", () => {
  let databaseUrl: string;
  let client: pg.Client;
  let before: Awaited<ReturnType<typeof databaseState>>;

  beforeAll(async () => {
    databaseUrl = await freshDatabase("tcli_state");
    client = await connectTo(databaseUrl);
    const migrations = migrationSet();
    await initDatabase(client, migrations);
    await createTenant(client, migrations, { slug: "acme", name: "Acme", hosts: ["acme.example.com", "www.acme.test"] });
    await createTenant(client, migrations, { slug: "globex", name: "Globex", hosts: ["globex.example.com"] });
    await client.query("UPDATE shared.tenants SET status = 'suspended' WHERE slug = 'globex'");
    // A schema named like a tenant that the catalog does not know: no command may treat it as one.
    await client.query("CREATE SCHEMA tenant_ghost");
    before = await databaseState(client);
  }, 60_000);

  async function refused(args: string[], message: string): Promise<void> {
    const r = await tenantsCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: ${message}\n`);
    expect(r.stdout).toBe("");
    expect(await databaseState(client)).toEqual(before);
  }

  it("a taken slug", async () => {
    await refused(["create", "acme", "--name", "Acme again", "--host", "acme2.example.com"], "tenant acme already exists");
  });

  it("a taken host names the tenant that has it, whatever its case", async () => {
    const hint = ": remove it there first (`npm run tenants -- hosts remove globex globex.example.com`)";
    await refused(["create", "initech", "--name", "Initech", "--host", "globex.example.com"], `host globex.example.com already belongs to tenant globex${hint}`);
    await refused(
      ["create", "initech", "--name", "Initech", "--host", "initech.example.com", "--host", "GLOBEX.Example.com."],
      `host globex.example.com already belongs to tenant globex${hint}`,
    );
    await refused(["hosts", "add", "acme", "globex.example.com"], "host globex.example.com already belongs to tenant globex");
    await refused(["hosts", "add", "globex", "WWW.ACME.TEST"], "host www.acme.test already belongs to tenant acme");
    await refused(["hosts", "add", "acme", "acme.example.com"], "tenant acme already has host acme.example.com");
  });

  it.each([
    [["show", "nope"], "nope"],
    [["show", "nope", "--json"], "nope"],
    [["delete", "nope", "--yes"], "nope"],
    [["suspend", "nope"], "nope"],
    [["resume", "nope"], "nope"],
    [["hosts", "add", "nope", "nope.example.com"], "nope"],
    [["hosts", "remove", "nope", "acme.example.com"], "nope"],
    [["delete", "ghost", "--now", "--yes"], "ghost"],
    [["restore-deleted", "ghost"], "ghost"],
  ] as Array<[string[], string]>)("an unknown tenant: %j", async (args, slug) => {
    await refused(args, `no tenant ${slug}: see \`npm run tenants -- list\``);
  });

  it("delete --now without --yes drops nothing", async () => {
    await refused(["delete", "acme", "--now"], "delete --now drops tenant acme's schema and all its data at once, with no way back: run again with --yes to confirm (or without --now to keep it restorable for the retention period)");
    const { rowCount } = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = (SELECT schema_name FROM shared.tenants WHERE slug = 'acme')");
    expect(rowCount).toBe(1);
  });

  it("removing a tenant's last host", async () => {
    await refused(
      ["hosts", "remove", "globex", "globex.example.com"],
      "globex.example.com is the only host of tenant globex: add another host first, or delete the tenant",
    );
  });

  it("removing a host the tenant does not have (another tenant's, or none's)", async () => {
    await refused(["hosts", "remove", "acme", "globex.example.com"], "tenant acme has no host globex.example.com");
    await refused(["hosts", "remove", "acme", "nowhere.example.com"], "tenant acme has no host nowhere.example.com");
  });

  it("suspending a suspended tenant, resuming an active one", async () => {
    await refused(["suspend", "globex"], "tenant globex is already suspended");
    await refused(["resume", "acme"], "tenant acme is already active");
  });

  it("suspend twice: the first succeeds, the second is refused and changes nothing", async () => {
    const databaseUrl2 = await freshDatabase("tcli_suspend");
    const client2 = await connectTo(databaseUrl2);
    const migrations = migrationSet();
    await initDatabase(client2, migrations);
    await createTenant(client2, migrations, { slug: "acme", name: "Acme", hosts: ["acme.example.com"] });
    const first = await tenantsCli({ databaseUrl: databaseUrl2 }, "suspend", "acme");
    expect(first.code, show(first)).toBe(0);
    expect(first.stdout).toBe("Tenant acme is now suspended.\n");
    const afterFirst = await databaseState(client2);
    const second = await tenantsCli({ databaseUrl: databaseUrl2 }, "suspend", "acme");
    expect(second.code, show(second)).toBe(1);
    expect(second.stderr).toBe("error: tenant acme is already suspended\n");
    expect(await databaseState(client2)).toEqual(afterFirst);
  });
});
