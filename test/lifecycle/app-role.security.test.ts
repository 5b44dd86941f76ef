// Invariant 7: the Worker connects as an app role that may read the catalog and use tenant
// tables, and nothing else. `tenants init` creates the role and resets its grants (also on a
// re-run), tenant creation grants on the new schema, and tables that migrations add later are
// usable at once, in old tenants and in tenants created after the migration.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, inject, it } from "vitest";
import { appDatabaseUrl, workerDatabaseUrl } from "../../scripts/db/roles.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";
import { expectedAppPrivileges, roleAttributes, rolePrivileges } from "../support/privileges.ts";

const roles: string[] = [];

/** A role name of this test's own (roles are global to the server; databases are not). */
function testRole(): string {
  const role = `app_${randomBytes(5).toString("hex")}`;
  roles.push(role);
  return role;
}

afterAll(async () => {
  await dropTestDatabases();
  removeFixtureMigrations();
  const admin = new pg.Client({ connectionString: inject("databaseUrl") });
  await admin.connect();
  try {
    for (const role of roles) await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => {});
  } finally {
    await admin.end();
  }
});

const PASSWORD = randomBytes(18).toString("base64url");

/** Connects as the app role, the way the Worker's connection string names it. */
async function connectAsApp(databaseUrl: string, role: string): Promise<pg.Client> {
  return connectTo(appDatabaseUrl(databaseUrl, role, PASSWORD));
}

async function sqlstate(client: pg.Client, sql: string): Promise<string> {
  try {
    await client.query(sql);
  } catch (error) {
    return (error as { code: string }).code;
  }
  return "succeeded";
}

async function schemaOf(client: pg.Client, slug: string): Promise<string> {
  const { rows } = await client.query<{ schema: string }>("SELECT schema_name AS schema FROM shared.tenants WHERE slug = $1", [slug]);
  return rows[0]!.schema;
}

async function cli(databaseUrl: string, role: string, args: string[], migrationsDir?: string) {
  const r = await tenantsCli({ databaseUrl, migrationsDir, env: { APP_DATABASE_ROLE: role, APP_DATABASE_PASSWORD: PASSWORD } }, ...args);
  expect(r.code, show(r)).toBe(0);
  return r;
}

describe("the app role", () => {
  it("is a plain login role that may read the catalog and use tenant tables, and may not change the schema", async () => {
    const databaseUrl = await freshDatabase("approle_limits");
    const role = testRole();
    const init = await tenantsCli({ databaseUrl, env: { APP_DATABASE_PASSWORD: PASSWORD } }, "init", "--app-role", role);
    expect(init.code, show(init)).toBe(0);
    expect(init.stdout).toContain(`App role ${role} created: grants applied on shared and 0 tenant schema(s).`);
    await cli(databaseUrl, role, ["create", "acme", "--name", "Acme", "--host", "acme.example.com"]);
    await cli(databaseUrl, role, ["create", "globex", "--name", "Globex", "--host", "globex.example.com"]);

    const owner = await connectTo(databaseUrl);
    expect(await roleAttributes(owner, role)).toEqual({
      login: true,
      superuser: false,
      bypassrls: false,
      createrole: false,
      createdb: false,
      memberOf: [],
      owns: 0,
    });
    expect(await rolePrivileges(owner, role)).toEqual(await expectedAppPrivileges(owner));

    const app = await connectAsApp(databaseUrl, role);
    const acme = await schemaOf(app, "acme"); // reading the catalog works
    const s = `"${acme}"`;
    expect((await app.query("SELECT slug FROM shared.tenants ORDER BY slug")).rows.map((r) => r.slug)).toEqual(["acme", "globex"]);
    expect((await app.query("SELECT host FROM shared.tenant_hosts ORDER BY host")).rows.map((r) => r.host)).toEqual([
      "acme.example.com",
      "globex.example.com",
    ]);

    const refused: Record<string, string> = {};
    for (const statement of [
      `DROP SCHEMA ${s} CASCADE`,
      `DROP TABLE ${s}.users CASCADE`,
      `ALTER TABLE ${s}.users ADD COLUMN evil integer`,
      `CREATE TABLE ${s}.evil (x integer)`,
      `CREATE INDEX evil_idx ON ${s}.users (full_name)`,
      `CREATE TYPE ${s}.evil AS ENUM ('x')`,
      `ALTER SCHEMA ${s} RENAME TO evil`,
      `TRUNCATE ${s}.items`,
      "CREATE SCHEMA evil",
      "CREATE TABLE shared.evil (x integer)",
      "CREATE TABLE public.evil (x integer)",
      "DROP TABLE shared.tenant_hosts",
      "ALTER TABLE shared.tenants ADD COLUMN evil integer",
      "SELECT * FROM public.schema_migrations",
      "DELETE FROM public.schema_migrations",
      "UPDATE shared.tenants SET name = 'pwned'",
      // Sign-up may insert a tenant (slug, name, schema) and its hosts, nothing else of theirs.
      "INSERT INTO shared.tenant_hosts (host, tenant_id, is_primary, custom_status) SELECT 'evil.example.com', id, false, 'active' FROM shared.tenants LIMIT 1",
      "INSERT INTO shared.tenants (slug, name, schema_name, rate_limit_tier) VALUES ('evil', 'Evil', 'tenant_evil', 'high')",
      "UPDATE shared.tenant_hosts SET tenant_id = tenant_id",
      "UPDATE shared.tenant_schemas SET released_at = NULL",
      "DELETE FROM shared.tenant_schemas",
      "DELETE FROM shared.tenant_pool",
      "DELETE FROM shared.released_hosts",
      "SELECT * FROM shared.ledger_counts",
      "DELETE FROM shared.tenants",
      "CREATE ROLE evil",
      "CREATE DATABASE evil",
    ]) {
      refused[statement] = await sqlstate(app, statement);
    }
    // 42501 insufficient_privilege for every one of them.
    expect(refused).toEqual(Object.fromEntries(Object.keys(refused).map((k) => [k, "42501"])));

    // DML on the tenant's tables, their sequences and their enum type.
    const user = await app.query(
      `INSERT INTO ${s}.users (email, hashed_password) VALUES ('wile@acme.test', 'x') RETURNING id`,
    );
    await app.query(`INSERT INTO ${s}.items (title, owner_id, status) VALUES ('Rocket', $1, 'published')`, [user.rows[0].id]);
    await app.query(`UPDATE ${s}.items SET status = 'archived'::${s}.item_status WHERE title = 'Rocket'`);
    expect((await app.query(`SELECT status FROM ${s}.items`)).rows).toEqual([{ status: "archived" }]);
    await app.query(`DELETE FROM ${s}.users WHERE email = 'wile@acme.test'`);
    expect((await app.query(`SELECT count(*)::int AS n FROM ${s}.items`)).rows[0].n).toBe(0);
    // The catalog is unchanged by all of the above.
    expect((await owner.query("SELECT name FROM shared.tenants ORDER BY slug")).rows.map((r) => r.name)).toEqual(["Acme", "Globex"]);
  });

  it("can use tables that a migration adds, in old tenants and in tenants created after it", async () => {
    const databaseUrl = await freshDatabase("approle_migrate");
    const migrationsDir = fixtureMigrations();
    const role = testRole();
    await cli(databaseUrl, role, ["init"], migrationsDir);
    await cli(databaseUrl, role, ["create", "alpha", "--name", "Alpha", "--host", "alpha.example.com"], migrationsDir);

    addMigration(migrationsDir, "tenant", "notes", [
      `CREATE TYPE "tenant"."mood" AS ENUM('calm', 'busy');`,
      `CREATE TABLE "tenant"."notes" ("id" serial PRIMARY KEY NOT NULL, "body" text NOT NULL, "mood" "tenant"."mood" DEFAULT 'calm' NOT NULL);`,
    ]);
    const migrated = await migrateCli({ databaseUrl, migrationsDir, env: { APP_DATABASE_ROLE: role } });
    expect(migrated.code, show(migrated)).toBe(0);
    await cli(databaseUrl, role, ["create", "beta", "--name", "Beta", "--host", "beta.example.com"], migrationsDir);

    const owner = await connectTo(databaseUrl);
    expect(await rolePrivileges(owner, role)).toEqual(await expectedAppPrivileges(owner));
    const app = await connectAsApp(databaseUrl, role);
    for (const slug of ["alpha", "beta"]) {
      const s = `"${await schemaOf(app, slug)}"`;
      await app.query(`INSERT INTO ${s}.notes (body) VALUES ('hello ${slug}')`);
      await app.query(`UPDATE ${s}.notes SET mood = 'busy'`);
      expect((await app.query(`SELECT body, mood FROM ${s}.notes`)).rows).toEqual([{ body: `hello ${slug}`, mood: "busy" }]);
      await app.query(`DELETE FROM ${s}.notes`);
      expect(await sqlstate(app, `ALTER TABLE ${s}.notes ADD COLUMN evil integer`)).toBe("42501");
    }
  });

  it("gets grants on migrated tables even where the schema's default privileges are gone (the runner grants what is missing)", async () => {
    const databaseUrl = await freshDatabase("approle_nodefaults");
    const migrationsDir = fixtureMigrations();
    const role = testRole();
    await cli(databaseUrl, role, ["init"], migrationsDir);
    await cli(databaseUrl, role, ["create", "alpha", "--name", "Alpha", "--host", "alpha.example.com"], migrationsDir);
    await cli(databaseUrl, role, ["create", "beta", "--name", "Beta", "--host", "beta.example.com"], migrationsDir);
    const owner = await connectTo(databaseUrl);
    // As if the tables were created by a role the defaults do not cover.
    for (const slug of ["alpha", "beta"]) {
      const s = `"${await schemaOf(owner, slug)}"`;
      for (const kind of ["TABLES", "SEQUENCES", "TYPES"]) {
        await owner.query(`ALTER DEFAULT PRIVILEGES IN SCHEMA ${s} REVOKE ALL ON ${kind} FROM ${role}`);
      }
    }
    addMigration(migrationsDir, "tenant", "tags", [
      `CREATE TYPE "tenant"."color" AS ENUM('red', 'blue');`,
      `CREATE TABLE "tenant"."tags" ("id" serial PRIMARY KEY NOT NULL, "color" "tenant"."color" NOT NULL);`,
    ]);
    const migrated = await migrateCli({ databaseUrl, migrationsDir, env: { APP_DATABASE_ROLE: role } }, "--batch-size", "1");
    expect(migrated.code, show(migrated)).toBe(0);

    const app = await connectAsApp(databaseUrl, role);
    for (const slug of ["alpha", "beta"]) {
      const s = `"${await schemaOf(app, slug)}"`;
      await app.query(`INSERT INTO ${s}.tags (color) VALUES ('red')`);
      expect((await app.query(`SELECT color FROM ${s}.tags`)).rows).toEqual([{ color: "red" }]);
    }
    expect(await rolePrivileges(owner, role)).toEqual(await expectedAppPrivileges(owner));
  });

  it("init run again resets the grants to exactly what serving needs, on every tenant schema, and says so", async () => {
    const databaseUrl = await freshDatabase("approle_reinit");
    const role = testRole();
    await cli(databaseUrl, role, ["init"]);
    await cli(databaseUrl, role, ["create", "acme", "--name", "Acme", "--host", "acme.example.com"]);
    await cli(databaseUrl, role, ["create", "globex", "--name", "Globex", "--host", "globex.example.com"]);
    const owner = await connectTo(databaseUrl);
    const expected = await expectedAppPrivileges(owner);
    expect(await rolePrivileges(owner, role)).toEqual(expected);

    const again = await cli(databaseUrl, role, ["init"]);
    expect(again.stdout).toContain("Already initialized: schemas and migrations unchanged.");
    expect(again.stdout).toContain(`App role ${role}: grants re-applied on shared and 2 tenant schema(s).`);
    expect(await rolePrivileges(owner, role)).toEqual(expected);

    // Someone widened and narrowed the role by hand; init puts it back.
    const acme = `"${await schemaOf(owner, "acme")}"`;
    for (const statement of [
      `GRANT CREATE ON SCHEMA ${acme} TO ${role}`,
      `GRANT TRUNCATE ON ${acme}.items TO ${role}`,
      `REVOKE SELECT ON ${acme}.users FROM ${role}`,
      `REVOKE USAGE ON ALL SEQUENCES IN SCHEMA ${acme} FROM ${role}`,
      `GRANT SELECT ON public.schema_migrations TO ${role}`,
      `GRANT INSERT, UPDATE ON shared.tenants TO ${role}`,
      `GRANT CREATE ON SCHEMA shared TO ${role}`,
      `GRANT CREATE ON SCHEMA public TO ${role}`,
    ]) {
      await owner.query(statement);
    }
    expect(await rolePrivileges(owner, role)).not.toEqual(expected);
    const third = await cli(databaseUrl, role, ["init"]);
    expect(third.stdout).toContain(`App role ${role}: grants re-applied on shared and 2 tenant schema(s).`);
    expect(await rolePrivileges(owner, role)).toEqual(expected);
    expect(await roleAttributes(owner, role)).toMatchObject({ login: true, superuser: false, owns: 0 });
  });

  it("has its statements stopped after APP_STATEMENT_TIMEOUT_MS (init sets it per database); the owner's are not", async () => {
    const databaseUrl = await freshDatabase("approle_timeout");
    const role = testRole();
    const init = await tenantsCli(
      { databaseUrl, env: { APP_DATABASE_PASSWORD: PASSWORD, APP_STATEMENT_TIMEOUT_MS: "300" } },
      "init",
      "--app-role",
      role,
    );
    expect(init.code, show(init)).toBe(0);
    expect(init.stdout).toContain("Its statements stop after 300 ms");
    const app = await connectAsApp(databaseUrl, role);
    const owner = await connectTo(databaseUrl);
    try {
      expect(await sqlstate(app, "SELECT pg_sleep(1)")).toBe("57014"); // query_canceled: statement timeout
      expect(await sqlstate(app, "SELECT pg_sleep(0.05)")).toBe("succeeded");
      expect(await sqlstate(owner, "SELECT pg_sleep(0.5)")).toBe("succeeded");
    } finally {
      await app.end();
      await owner.end();
    }
    const bad = await tenantsCli({ databaseUrl, env: { APP_STATEMENT_TIMEOUT_MS: "soon" } }, "init", "--app-role", role);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("APP_STATEMENT_TIMEOUT_MS must be a whole number of milliseconds");
  });

  it("is created NOLOGIN when init gets no password", async () => {
    const databaseUrl = await freshDatabase("approle_nologin");
    const role = testRole();
    const r = await tenantsCli({ databaseUrl }, "init", "--app-role", role);
    expect(r.code, show(r)).toBe(0);
    const owner = await connectTo(databaseUrl);
    expect(await roleAttributes(owner, role)).toMatchObject({ login: false, superuser: false, bypassrls: false });
  });
});

describe("app role setup refusals", () => {
  it("refuses an invalid role name before connecting (exit 2)", async () => {
    const nowhere = "postgresql://nobody@127.0.0.1:9/nothing";
    for (const [args, env, message] of [
      [["init", "--app-role", "Bad-Name"], {}, 'invalid app role name "Bad-Name"'],
      [["init"], { APP_DATABASE_ROLE: "pg_evil" }, 'APP_DATABASE_ROLE: invalid app role name "pg_evil": names starting with pg_ are reserved'],
      [["create", "acme", "--name", "Acme", "--host", "acme.example.com", "--app-role", "public"], {}, 'invalid app role name "public"'],
    ] as const) {
      const r = await tenantsCli({ databaseUrl: nowhere, env }, ...args);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  it("refuses the owner itself, or an existing role with powers, as the app role; nothing is initialized", async () => {
    const databaseUrl = await freshDatabase("approle_refuse");
    const owner = await connectTo(databaseUrl);
    const ownerName = (await owner.query("SELECT current_user AS u")).rows[0].u as string;
    const self = await tenantsCli({ databaseUrl }, "init", "--app-role", ownerName);
    expect(self.code, show(self)).toBe(1);
    expect(self.stderr).toContain(`the app role ${ownerName} is the role DATABASE_URL connects as`);

    const powerful = testRole();
    await owner.query(`CREATE ROLE ${powerful} NOLOGIN CREATEDB BYPASSRLS`);
    const r = await tenantsCli({ databaseUrl }, "init", "--app-role", powerful);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toContain(`role ${powerful} has BYPASSRLS, has CREATEDB`);
    const { rows } = await owner.query("SELECT to_regclass('public.schema_migrations') AS ledger, to_regnamespace('shared') AS shared");
    expect(rows[0]).toEqual({ ledger: null, shared: null });
  });

  it("tenant creation names the fix when the app role does not exist", async () => {
    const databaseUrl = await freshDatabase("approle_missing");
    const role = testRole();
    await cli(databaseUrl, role, ["init"]);
    const missing = `${role}_gone`;
    const r = await tenantsCli({ databaseUrl, env: { APP_DATABASE_ROLE: missing } }, "create", "acme", "--name", "Acme", "--host", "acme.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toBe(
      `error: the app role ${missing} does not exist: run \`npm run tenants -- init\` to create it and its grants ` +
        "(or set APP_DATABASE_ROLE to the Worker's role)",
    );
    const owner = await connectTo(databaseUrl);
    expect((await owner.query("SELECT count(*)::int AS n FROM shared.tenants")).rows[0].n).toBe(0);
  });
});

describe("the Worker's connection string from npm run dev", () => {
  it("is the app role with a fresh password on every start, the previous one no longer working", async () => {
    const databaseUrl = await freshDatabase("approle_dev");
    const role = testRole();
    const init = await tenantsCli({ databaseUrl }, "init", "--app-role", role);
    expect(init.code, show(init)).toBe(0);
    const env = { APP_DATABASE_ROLE: role };
    const first = await workerDatabaseUrl({ url: databaseUrl, embedded: true }, env);
    expect(new URL(first).username).toBe(role);
    expect(new URL(first).password.length).toBeGreaterThanOrEqual(24);
    const app = await connectTo(first);
    expect((await app.query("SELECT current_user AS u")).rows[0].u).toBe(role);
    await app.end();

    const second = await workerDatabaseUrl({ url: databaseUrl, embedded: true }, env);
    expect(second).not.toBe(first);
    await expect(connectTo(first)).rejects.toMatchObject({ code: "28P01" }); // password authentication failed
    const again = await connectTo(second);
    expect((await again.query("SELECT current_user AS u")).rows[0].u).toBe(role);
  });

  it("for another database, is APP_DATABASE_URL, and without it npm run dev refuses instead of changing a password", async () => {
    const given = "postgresql://someone:secret@db.example.com/app";
    expect(await workerDatabaseUrl({ url: "postgresql://owner@db.example.com/app", embedded: false }, { APP_DATABASE_URL: given })).toBe(given);
    await expect(workerDatabaseUrl({ url: "postgresql://owner@db.example.com/app", embedded: false }, {})).rejects.toThrow(
      "DATABASE_URL names a database other than the embedded one: set APP_DATABASE_URL",
    );
  });
});
