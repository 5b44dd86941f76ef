// `npm run tenants -- adopt` refusing: each case exits 1 with one line saying what is wrong and
// what to do, and the database is exactly as before (a full catalog snapshot: every schema's
// catalog, owners and privileges, rows and sequence positions, default privileges, the app role).
// Also failures injected by the database in the middle of the transaction.
import type pg from "pg";
import { afterAll, describe, expect, it, vi } from "vitest";
import { createTenant, initDatabase } from "../../scripts/tenants/operations.ts";
import { buildAppFixture } from "../fixtures/single-tenant-app.ts";
import { fullSnapshot } from "../support/adopt.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, spawnScript, tenantsCli, TENANTS_CLI } from "../support/database.ts";
import { migrationSet } from "../support/migrations.ts";

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });
afterAll(dropTestDatabases);

const ADOPT = ["adopt", "acme", "--name", "Acme", "--host", "acme.example.com"];

/** A fresh database with the app fixture, then `prepare` (SQL or a function). */
async function appDatabase(label: string, prepare?: string | ((client: pg.Client) => Promise<void>)) {
  const databaseUrl = await freshDatabase(label);
  const client = await connectTo(databaseUrl);
  await buildAppFixture(client, { users: 200, itemsPerUser: 2 });
  if (typeof prepare === "string") await client.query(prepare);
  else if (prepare) await prepare(client);
  return { databaseUrl, client };
}

/** Runs adopt, expects exit 1 with exactly one line on stderr, and the database unchanged. */
async function refused(databaseUrl: string, client: pg.Client, args: string[]): Promise<string> {
  const before = await fullSnapshot(client);
  const r = await tenantsCli({ databaseUrl }, ...args);
  expect(r.code, show(r)).toBe(1);
  expect(r.stdout).toBe("");
  expect(r.stderr.split("\n").filter(Boolean), show(r)).toHaveLength(1);
  expect(r.stderr).toMatch(/^error: /);
  expect(await fullSnapshot(client)).toEqual(before);
  return r.stderr.trim();
}

describe.concurrent("refusals leave the database exactly as it was", () => {
  it("an already initialized database (naming the taken slug and host)", async () => {
    const databaseUrl = await freshDatabase("adopt_init");
    const client = await connectTo(databaseUrl);
    const migrations = migrationSet();
    await initDatabase(client, migrations);
    await createTenant(client, migrations, { slug: "acme", name: "Acme", hosts: ["acme.example.com"] });
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toBe(
      "error: this database is already initialized (it has the migration ledger public.schema_migrations; tenant acme already exists; " +
        "host acme.example.com already belongs to tenant acme): adopt turns a database without the edge-tenants catalog into one; " +
        "here create tenants with `npm run tenants -- create`",
    );
  });

  it("a schema named shared (or tenant_*) without a ledger", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_shared_schema", "CREATE SCHEMA shared");
    expect(await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"])).toBe(
      "error: schema shared exists but the database has no migration ledger: adopt needs the names shared and tenant_* free; rename that schema first",
    );
  });

  it("a --shared table that does not exist", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_no_table");
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans,countries"]);
    expect(message).toBe("error: cannot adopt: --shared countries: public has no table countries: name tables of public, separated by commas");
  });

  it("a --shared name that is a view, not a table", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_shared_view");
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans", "--shared", "published_items"]);
    expect(message).toContain("--shared published_items: public has no table published_items (it is a view)");
  });

  it("a foreign key from a tenant table to a table going to shared", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_fk_split");
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans,users"]);
    expect(message).toBe(
      "error: cannot adopt: foreign key items_owner_id_users_id_fk of public.items references public.users, but items would go to " +
        "the tenant schema and users to shared: a tenant table referencing a shared one is not part of the tenant track; " +
        "put both on the same side (--shared) or drop the constraint first",
    );
  });

  it("a foreign key from a shared table into a tenant table", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_fk_shared",
      "ALTER TABLE plans ADD COLUMN created_by integer REFERENCES users (id)",
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toContain(
      "foreign key plans_created_by_fkey of public.plans references public.users, but plans would go to shared and users to " +
        "the tenant schema: a shared row cannot point into one tenant's schema",
    );
  });

  it("a type used by tables on both sides, and a function called by triggers on both sides", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_both_sides",
      `ALTER TABLE plans ADD COLUMN default_status item_status;
       CREATE TRIGGER plans_trim BEFORE INSERT ON plans FOR EACH ROW EXECUTE FUNCTION items_trim_title();`,
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toContain(
      "enum type public.item_status is used by items (going to the tenant schema) and by plans (going to shared): a type lives " +
        "in one schema; give each side its own type, or put those tables on the same side",
    );
    expect(message).toContain(
      "function public.items_trim_title() is called by triggers on tables going to the tenant schema and to shared: give each side its own function",
    );
  });

  it("a --shared table named like one of the catalog's own (checked after the catalog exists, in the transaction)", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_clash", "CREATE TABLE tenants (id integer PRIMARY KEY)");
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans,tenants"]);
    expect(message).toBe(
      "error: cannot adopt: table public.tenants cannot move to shared, which already has an object of that name (the tenant catalog); " +
        "index tenants_pkey of public.tenants cannot move to shared, which already has an object of that name (the tenant catalog): rename it first",
    );
  });

  it("a function whose body names a table of public (text, resolved only when it runs)", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_fn_body",
      "CREATE FUNCTION item_count(owner integer) RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM public.items WHERE owner_id = owner $$",
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toBe(
      "error: cannot adopt: function public.item_count(owner integer) names public.items in its body, which PostgreSQL keeps as " +
        "text and resolves only when the function runs: after the move it would no longer find them; drop it before adopting " +
        "and recreate it in the tenant schema afterwards, or rewrite it without naming tables (in a trigger, use NEW/OLD and TG_TABLE_SCHEMA)",
    );
  });

  it("a function in another schema that names a moved table, unqualified", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_fn_other",
      "CREATE SCHEMA reporting; CREATE FUNCTION reporting.user_total() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT count(*) FROM users); END $$",
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toContain('function "reporting".user_total() names users in its body');
  });

  it("a function that sets search_path to public", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_fn_path",
      "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$ BEGIN RETURN NEW; END $$",
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toContain("function public.touch() sets search_path=public: after the move it would look for its objects in public");
  });

  it("objects adopt does not move (a range type, an aggregate, an operator)", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_unsupported",
      `CREATE TYPE price_range AS RANGE (subtype = integer);
       CREATE AGGREGATE total(integer) (sfunc = int4pl, stype = integer);
       CREATE OPERATOR === (leftarg = integer, rightarg = integer, function = int4eq);`,
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toMatch(/^error: cannot adopt: /);
    expect(message).toContain("adopt does not move range type public.price_range: drop it or move it out of public first, and recreate it after adoption");
    expect(message).toContain("adopt does not move aggregate public.total(integer)");
    expect(message).toContain("adopt does not move operator public.===");
  });

  it("tables that match no tenant migration: the list of differences", async () => {
    const { databaseUrl, client } = await appDatabase(
      "adopt_mismatch",
      `ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;
       ALTER TABLE users ADD COLUMN nickname text;
       ALTER TABLE items ALTER COLUMN status SET DEFAULT 'published';
       ALTER TABLE users DROP CONSTRAINT users_email_unique;
       CREATE INDEX items_title_idx ON items (title);
       ALTER TYPE item_status ADD VALUE 'deleted';`,
    );
    const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
    expect(message).toMatch(/^error: cannot adopt: the tables in public match no migration of the tenant track; differences from tenant\/0002_user_role \(the closest\): /);
    expect(message).toContain(
      'column users.full_name differs: the app has "users.full_name text udt=pg_catalog.text NOT NULL", tenant/0002_user_role has "users.full_name text udt=pg_catalog.text NULL"',
    );
    expect(message).toContain("extra column in the app: users.nickname text udt=pg_catalog.text NULL");
    expect(message).toContain(
      `column items.status differs: the app has "items.status tenant.item_status udt=tenant.item_status NOT NULL DEFAULT 'published'::tenant.item_status"`,
    );
    expect(message).toContain("missing constraint (tenant/0002_user_role has it): users users_email_unique u: UNIQUE (email)");
    expect(message).toContain("missing index (tenant/0002_user_role has it): users_email_unique: CREATE UNIQUE INDEX users_email_unique ON tenant.users USING btree (email)");
    expect(message).toContain("extra index in the app: items_title_idx: CREATE INDEX items_title_idx ON tenant.items USING btree (title)");
    expect(message).toContain('enum item_status differs: the app has "item_status (draft, published, archived, deleted)", tenant/0002_user_role has "item_status (draft, published, archived)"');
    expect(message).toMatch(/: make the tables match \(rename, add or drop what differs\), then run adopt again$/);
  });

  it("a table not named with --shared that the tenant track does not have", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_extra_table");
    const message = await refused(databaseUrl, client, ADOPT);
    expect(message).toContain("extra relation in the app: plans kind=r persistence=p");
  });

  it("a database without the app's tables", async () => {
    const databaseUrl = await freshDatabase("adopt_empty");
    const client = await connectTo(databaseUrl);
    const message = await refused(databaseUrl, client, ADOPT);
    expect(message).toContain("missing relation (tenant/0000_init has it): items kind=r persistence=p");
  });

  it("--dry-run of a refused adoption prints the plan, then the one-line refusal", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_dry_refused", "ALTER TABLE users ADD COLUMN nickname text");
    const before = await fullSnapshot(client);
    const r = await tenantsCli({ databaseUrl }, ...ADOPT, "--shared", "plans", "--dry-run");
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toContain("table users (200 rows)");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("extra column in the app: users.nickname");
    expect(await fullSnapshot(client)).toEqual(before);
  });

  it("tables in use by the running app: refused after the lock timeout, not queued behind it", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_in_use");
    const app = await connectTo(databaseUrl);
    await app.query("BEGIN");
    await app.query("SELECT count(*) FROM items");
    try {
      const message = await refused(databaseUrl, client, [...ADOPT, "--shared", "plans"]);
      expect(message).toBe(
        "error: the app's tables are in use (no exclusive lock within 5000 ms): stop the app (adopt in a maintenance window) and run again",
      );
    } finally {
      await app.query("ROLLBACK");
    }
  });

  it("bad arguments: refused before connecting", async () => {
    const databaseUrl = "postgresql://nobody@127.0.0.1:1/none";
    const cases: Array<[string[], number, string]> = [
      [["adopt", "Acme", "--name", "A", "--host", "a.example.com"], 1, 'error: invalid slug "Acme"'],
      [["adopt", "acme", "--host", "a.example.com"], 1, 'error: the tenant needs a display name: --name "Acme Inc."'],
      [["adopt", "acme", "--name", "A"], 1, "error: the tenant needs at least one host: --host acme.example.com"],
      [["adopt", "acme", "--name", "A", "--host", "127.0.0.1"], 1, 'error: invalid host "127.0.0.1"'],
      [["adopt", "--name", "A", "--host", "a.example.com"], 2, "error: usage: npm run tenants -- adopt <slug>"],
    ];
    const help = await tenantsCli({ databaseUrl }, "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("adopt <slug> --name <name> --host <host> [--host <host> ...] [--shared <table>,...] [--dry-run] [--json]");
    for (const [args, code, start] of cases) {
      const r = await tenantsCli({ databaseUrl }, ...args);
      expect(r.code, show(r)).toBe(code);
      expect(r.stderr.startsWith(start), show(r)).toBe(true);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe.concurrent("a failure in the middle of the transaction leaves the database unchanged", () => {
  // An event trigger (the database itself, not a hook in the code) raises at a chosen statement:
  // when users is moved (after the ledger and shared exist and items was moved), or at the first
  // GRANT (the last step, after the tenant and ledger rows).
  const FAULT_SQL = (target: string, tag: string) => `
    CREATE SCHEMA faults;
    CREATE TABLE faults.config (target text, tag text);
    INSERT INTO faults.config VALUES ('${target}', '${tag}');
    CREATE FUNCTION faults.fail() RETURNS event_trigger LANGUAGE plpgsql AS $$
    DECLARE r record; c record;
    BEGIN
      SELECT * INTO c FROM faults.config;
      FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF r.command_tag = c.tag AND (c.target = '' OR (r.schema_name LIKE 'tenant\\_%' AND r.object_identity LIKE '%.' || c.target)) THEN
          RAISE EXCEPTION 'injected failure at % %', r.command_tag, r.object_identity;
        END IF;
      END LOOP;
    END $$;
    CREATE EVENT TRIGGER adopt_fault ON ddl_command_end EXECUTE FUNCTION faults.fail();`;

  it.each([
    ["moving users (items already moved, the ledger and shared created)", "users", "ALTER TABLE"],
    ["granting the app role (the last step)", "", "GRANT"],
  ])("at %s", async (_label, target, tag) => {
    const { databaseUrl, client } = await appDatabase(`adopt_fault_${tag.replace(" ", "_").toLowerCase()}`, FAULT_SQL(target, tag));
    const before = await fullSnapshot(client);
    const r = await tenantsCli({ databaseUrl }, ...ADOPT, "--shared", "plans");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^error: injected failure at ${tag}`));
    expect(r.stdout).toBe("");
    expect(await fullSnapshot(client)).toEqual(before);
    // And with the fault gone, the same command adopts.
    await client.query("DROP EVENT TRIGGER adopt_fault");
    const again = await tenantsCli({ databaseUrl }, ...ADOPT, "--shared", "plans");
    expect(again.code, show(again)).toBe(0);
  });

  it("when the CLI is killed inside its transaction (while it waits for a table the app holds)", async () => {
    const { databaseUrl, client } = await appDatabase("adopt_killed");
    const before = await fullSnapshot(client);
    const blocker = await connectTo(databaseUrl);
    await blocker.query("BEGIN");
    await blocker.query("SELECT count(*) FROM plans");
    const { child, done } = spawnScript(TENANTS_CLI, [...ADOPT, "--shared", "plans"], { databaseUrl });
    // Wait until adopt is waiting for its lock inside the transaction, then kill it.
    for (let i = 0; i < 100; i++) {
      const { rows } = await client.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'edge-tenants' AND wait_event_type = 'Lock'",
      );
      if (rows[0].n > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await done;
    await blocker.query("ROLLBACK");
    // The server notices the closed connection and rolls back.
    for (let i = 0; i < 100; i++) {
      const { rows } = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'edge-tenants'");
      if (rows[0].n === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await fullSnapshot(client)).toEqual(before);
  });
});
