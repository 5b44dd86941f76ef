// `npm run tenants -- adopt`: a single-tenant app database built from plain SQL (users and items
// with data, an enum, serial and identity columns, a unique index, a foreign key, a view, a
// trigger) becomes an edge-tenants database whose first tenant holds that data. The plan, the
// moves, the counts, the sequences, the ledger, `public` afterwards, the app role's grants, and a
// tenant created afterwards compared with the adopted one as the drift test compares tenants.
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { catalogWithout, diffCatalogs, ownedSchemaCatalog, renameSchemaInCatalog, tenantSchemaCatalog } from "../../scripts/db/catalog.ts";
import { DEFAULT_APP_ROLE } from "../../scripts/db/roles.ts";
import { ledger, publicObjects, schemaCatalog, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { schemaOf } from "../support/fleet.ts";
import { expectedAppPrivileges, rolePrivileges } from "../support/privileges.ts";
import { buildAppFixture } from "../fixtures/single-tenant-app.ts";
import { fullSnapshot } from "../support/adopt.ts";
import { checkoutTags } from "../support/migrations.ts";

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });
afterAll(dropTestDatabases);

const ADOPT = ["adopt", "acme", "--name", "Acme Corp", "--host", "acme.example.com", "--host", "www.acme.test", "--shared", "plans"];
const KEY_SCHEMA = /^tenant_[a-z2-7]{12}$/;

async function sequenceValues(client: pg.Client, schemas: Record<string, string>) {
  const out: Record<string, string> = {};
  for (const [seq, schema] of Object.entries(schemas)) {
    const { rows } = await client.query(`SELECT last_value::text AS v, is_called FROM "${schema}"."${seq}"`);
    out[seq] = `${rows[0].v} ${rows[0].is_called}`;
  }
  return out;
}

async function counts(client: pg.Client, tables: Record<string, string>) {
  const out: Record<string, number> = {};
  for (const [table, schema] of Object.entries(tables)) {
    out[table] = Number((await client.query(`SELECT count(*) AS n FROM "${schema}"."${table}"`)).rows[0].n);
  }
  return out;
}

describe("adopting the tutorial app's database", () => {
  let databaseUrl: string;
  let client: pg.Client;
  let countsBefore: Record<string, number>;
  let sequencesBefore: Record<string, string>;
  let itemsBefore: unknown[];
  let publishedBefore: number;
  let schema: string;

  beforeAll(async () => {
    databaseUrl = await freshDatabase("adopt_app");
    client = await connectTo(databaseUrl);
    await buildAppFixture(client, { users: 1_000, itemsPerUser: 3 });
    countsBefore = await counts(client, { users: "public", items: "public", plans: "public" });
    sequencesBefore = await sequenceValues(client, { users_id_seq: "public", items_id_seq: "public", plans_id_seq: "public" });
    itemsBefore = (await client.query("SELECT * FROM public.items ORDER BY id")).rows;
    publishedBefore = Number((await client.query("SELECT count(*) AS n FROM public.published_items")).rows[0].n);
  });

  it("fixture sanity: a few thousand rows, sequences ahead of max(id)", () => {
    expect(countsBefore).toEqual({ users: 1000, items: 2970, plans: 3 });
    expect(sequencesBefore).toEqual({ users_id_seq: "1000 true", items_id_seq: "3000 true", plans_id_seq: "3 true" });
    expect(publishedBefore).toBeGreaterThan(900);
  });

  it("--dry-run prints the plan and the matched migration, exits 0 and changes nothing", async () => {
    const before = await fullSnapshot(client);
    const r = await tenantsCli({ databaseUrl }, ...ADOPT, "--dry-run");
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toBe("");
    const out = r.stdout;
    expect(out).toContain('Adopt public as tenant acme ("Acme Corp", hosts acme.example.com, www.acme.test):');
    expect(out).toContain("to a new schema tenant_<key>");
    expect(out).toContain("table users (1000 rows), with sequence users_id_seq, index users_email_unique, index users_pkey");
    expect(out).toMatch(/table items \(2970 rows\), with sequence items_id_seq, index items_pkey, foreign key items_owner_id_users_id_fk, trigger items_trim_title\n/);
    expect(out).toContain("view published_items [its definition refers to tables by identity");
    expect(out).toContain("enum type item_status [used by items]");
    expect(out).toContain("function items_trim_title() [called by triggers on items; names no object of public");
    expect(out).toMatch(/to schema shared:\n    table plans \(3 rows\), with sequence plans_id_seq, index plans_name_lower_idx, index plans_pkey/);
    expect(out).toContain("The tables match tenant migration 0002_user_role (the head).");
    expect(out).toContain("Kept as the app's own (not in the tenant track): view published_items, function items_trim_title(), trigger items_trim_title on items.");
    expect(out).toContain("Dry run: nothing changed.");
    expect(await fullSnapshot(client)).toEqual(before);
  });

  it("--dry-run --json prints the same plan machine-readably", async () => {
    const before = await fullSnapshot(client);
    const r = await tenantsCli({ databaseUrl }, ...ADOPT, "--dry-run", "--json");
    expect(r.code, show(r)).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.applied).toBe(false);
    // An installed extension's objects in public stay where they are (on Citus: its views citus_tables, citus_schemas).
    const objects = (result.plan.objects as Array<{ kind: string; name: string; to: string; note?: string }>).filter((o) => !o.note?.startsWith("belongs to extension"));
    const where = Object.fromEntries(objects.map((o) => [`${o.kind} ${o.name}`, o.to]));
    expect(where).toEqual({
      "table users": "tenant",
      "table items": "tenant",
      "view published_items": "tenant",
      "enum type item_status": "tenant",
      "enum type user_role": "tenant",
      "function items_trim_title()": "tenant",
      "table plans": "shared",
    });
    expect(result.plan.match).toEqual({ migration: "0002_user_role", head: true, pending: [] });
    expect(result.plan.hosts).toEqual(["acme.example.com", "www.acme.test"]);
    expect(await fullSnapshot(client)).toEqual(before);
  });

  it("adopts: one tenant in a new tenant_<key> schema, the data and sequences as they were", async () => {
    const r = await tenantsCli({ databaseUrl }, ...ADOPT);
    expect(r.code, show(r)).toBe(0);
    schema = await schemaOf(client, "acme");
    expect(schema).toMatch(KEY_SCHEMA);
    expect(r.stdout).toContain(`Adopted: tenant acme in schema ${schema}, ledger at tenant/0002_user_role`);
    expect(r.stdout).toContain("verified items: 2970 rows (before: 2970)");
    expect(r.stdout).toContain("verified sequence items_id_seq: 3000 (before: 3000)");

    // The catalog: tenant row, hosts (first primary), the name in the registry.
    expect((await client.query("SELECT slug, name, status::text FROM shared.tenants")).rows).toEqual([{ slug: "acme", name: "Acme Corp", status: "active" }]);
    expect((await client.query("SELECT host, is_primary FROM shared.tenant_hosts ORDER BY host")).rows).toEqual([
      { host: "acme.example.com", is_primary: true },
      { host: "www.acme.test", is_primary: false },
    ]);
    expect((await client.query("SELECT schema_name, released_at FROM shared.tenant_schemas")).rows).toEqual([{ schema_name: schema, released_at: null }]);
    expect(await userSchemas(client)).toEqual(["public", "shared", schema].sort());

    // Where everything went.
    const tenant = await schemaCatalog(client, schema);
    expect(tenant.relations.map((r) => r.split(" ")[0])).toEqual([
      "items", "items_id_seq", "items_pkey", "published_items", "users", "users_email_unique", "users_id_seq", "users_pkey",
    ]);
    expect(tenant.enums).toEqual(["item_status (draft, published, archived)", "user_role (member, admin)"]);
    expect(tenant.functions).toEqual(["items_trim_title()"]);
    expect(tenant.triggers).toEqual([
      `CREATE TRIGGER items_trim_title BEFORE INSERT OR UPDATE ON ${schema}.items FOR EACH ROW EXECUTE FUNCTION ${schema}.items_trim_title()`,
    ]);
    expect(tenant.constraints.some((c) => c.includes(`FOREIGN KEY (owner_id) REFERENCES ${schema}.users(id) ON DELETE CASCADE`))).toBe(true);
    const shared = await schemaCatalog(client, "shared");
    expect(shared.indexes).toContain("plans_name_lower_idx: CREATE UNIQUE INDEX plans_name_lower_idx ON shared.plans USING btree (lower(name))");
    expect(shared.columns).toContain("plans.id integer udt=pg_catalog.int4 NOT NULL IDENTITY a");

    // Same rows, same sequence positions, each table where the plan said.
    expect(await counts(client, { users: schema, items: schema, plans: "shared" })).toEqual(countsBefore);
    expect(await sequenceValues(client, { users_id_seq: schema, items_id_seq: schema, plans_id_seq: "shared" })).toEqual(sequencesBefore);
    expect((await client.query(`SELECT * FROM "${schema}".items ORDER BY id`)).rows).toEqual(itemsBefore);

    // `public` holds exactly what a freshly initialized database's does: the ledger.
    const freshUrl = await freshDatabase("adopt_fresh");
    expect((await tenantsCli({ databaseUrl: freshUrl }, "init")).code).toBe(0);
    const fresh = await connectTo(freshUrl);
    expect(await publicObjects(client)).toEqual(await publicObjects(fresh));
    expect((await publicObjects(client)).filter((o) => o.startsWith("pg_class "))).toEqual([
      "pg_class schema_migrations (r)",
      "pg_class schema_migrations_pkey (i)",
      "pg_class schema_migrations_track_migration_idx (i)",
    ]);

    // The ledger: shared at head, the tenant at the matched migration (here the head).
    const rows = (await ledger(client)).map((l) => `${l.schema_name === schema ? "<tenant>" : l.schema_name} ${l.track} ${l.migration}`);
    expect(rows.sort()).toEqual(
      [
        ...checkoutTags("shared").map((tag) => `shared shared ${tag}`),
        "<tenant> tenant 0000_init",
        "<tenant> tenant 0001_item_status",
        "<tenant> tenant 0002_user_role",
      ].sort(),
    );
    const status = await migrateCli({ databaseUrl });
    expect(status.code, show(status)).toBe(0);
    expect(status.stdout).toMatch(/^Nothing to migrate: shared and 1 tenant\(s\) at head\./);
  });

  it("the moved objects still work: sequences continue, the view reads items, the trigger fires", async () => {
    const user = await client.query(`INSERT INTO "${schema}".users (email, hashed_password) VALUES ('new@acme.test', 'x') RETURNING id`);
    expect(user.rows[0].id).toBe(1001);
    const item = await client.query(
      `INSERT INTO "${schema}".items (title, owner_id, status) VALUES ('  Fresh  ', 1001, 'published') RETURNING id, title`,
    );
    expect(item.rows[0]).toEqual({ id: 3001, title: "Fresh" });
    const published = Number((await client.query(`SELECT count(*) AS n FROM "${schema}".published_items`)).rows[0].n);
    expect(published).toBe(publishedBefore + 1);
    const plan = await client.query("INSERT INTO shared.plans (name, price_cents) VALUES ('Scale', 9900) RETURNING id");
    expect(plan.rows[0].id).toBe(4);
  });

  it("the app role gets exactly the grants init and create give (and nothing on shared.plans)", async () => {
    expect(await rolePrivileges(client, DEFAULT_APP_ROLE)).toEqual(await expectedAppPrivileges(client));
    expect(await rolePrivileges(client, DEFAULT_APP_ROLE)).toContain(`table ${schema}.items: DELETE,INSERT,SELECT,UPDATE`);
    expect((await rolePrivileges(client, DEFAULT_APP_ROLE)).filter((l) => l.includes("plans"))).toEqual([]);
  });

  it("a tenant created after adoption has the adopted tenant's catalog (the drift comparison), apart from the app's own view, function and trigger", async () => {
    const r = await tenantsCli({ databaseUrl }, "create", "globex", "--name", "Globex", "--host", "globex.example.com");
    expect(r.code, show(r)).toBe(0);
    const globex = await schemaOf(client, "globex");
    expect(globex).toMatch(KEY_SCHEMA);
    const appOwn = ["relation:published_items", "function:items_trim_title", "trigger:items_trim_title"];
    const adopted = renameSchemaInCatalog(await ownedSchemaCatalog(client, schema), schema);
    const created = await tenantSchemaCatalog(client, globex);
    // Without the app's own objects: no difference at all.
    expect(diffCatalogs("tenant", catalogWithout(adopted, appOwn), created, ["adopted", "created"])).toEqual([]);
    // With them: the only differences are those objects.
    const full = diffCatalogs("tenant", catalogWithout(adopted), created, ["adopted", "created"]);
    expect(full.length).toBeGreaterThan(0);
    for (const line of full) {
      expect(line).toMatch(/only in adopted: .*(published_items|items_trim_title)/);
    }
  });
});

describe("adopting an app whose tables are at an older tenant migration", () => {
  it("adopts at that migration, says to run migrate, and migrate brings it to head", async () => {
    const databaseUrl = await freshDatabase("adopt_old");
    const client = await connectTo(databaseUrl);
    await buildAppFixture(client, { users: 50, itemsPerUser: 2, atInit: true });
    const r = await tenantsCli({ databaseUrl }, "adopt", "acme", "--name", "Acme", "--host", "acme.example.com", "--shared", "plans");
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("The tables match tenant migration 0000_init; pending after it: 0001_item_status, 0002_user_role.");
    expect(r.stdout).toContain("Next: run `npm run migrate` (pending for this tenant: 0001_item_status, 0002_user_role).");
    const schema = await schemaOf(client, "acme");
    expect((await ledger(client)).filter((l) => l.schema_name === schema).map((l) => l.migration)).toEqual(["0000_init"]);

    // create refuses until the fleet is at head, as for any database behind.
    const early = await tenantsCli({ databaseUrl }, "create", "globex", "--name", "Globex", "--host", "globex.example.com");
    expect(early.code, show(early)).toBe(1);
    expect(early.stderr).toContain("the database is not at head (pending: tenant/0001_item_status, tenant/0002_user_role)");

    const m = await migrateCli({ databaseUrl });
    expect(m.code, show(m)).toBe(0);
    expect(m.stdout).toContain("tenant: 0001_item_status, 0002_user_role -> acme");
    expect((await client.query(`SELECT DISTINCT status::text FROM "${schema}".items`)).rows).toEqual([{ status: "draft" }]);

    const c = await tenantsCli({ databaseUrl }, "create", "globex", "--name", "Globex", "--host", "globex.example.com");
    expect(c.code, show(c)).toBe(0);
    const adopted = renameSchemaInCatalog(await ownedSchemaCatalog(client, schema), schema);
    const created = await tenantSchemaCatalog(client, await schemaOf(client, "globex"));
    expect(diffCatalogs("tenant", catalogWithout(adopted, ["relation:published_items", "function:items_trim_title", "trigger:items_trim_title"]), created)).toEqual([]);
  });
});

describe("function bodies that still resolve after the move", () => {
  it("do not block adoption: names qualified by another schema or a record, and SQL-standard bodies", async () => {
    const databaseUrl = await freshDatabase("adopt_other_fn");
    const client = await connectTo(databaseUrl);
    await buildAppFixture(client, { users: 20, itemsPerUser: 1 });
    await client.query(`
      CREATE SCHEMA auth;
      CREATE TABLE auth.users (id integer);
      CREATE FUNCTION auth.user_count() RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN RETURN (SELECT count(*) FROM auth.users); END $$;
      CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.items := 1; RETURN NEW; END $$;
      -- An SQL-standard body is parsed when created and refers to items by identity, like a view.
      CREATE FUNCTION published_count() RETURNS bigint LANGUAGE sql
        BEGIN ATOMIC SELECT count(*) FROM public.items WHERE status = 'published'; END;`);
    const expected = (await client.query("SELECT published_count() AS n")).rows[0].n;
    const r = await tenantsCli({ databaseUrl }, "adopt", "acme", "--name", "Acme", "--host", "acme.example.com", "--shared", "plans");
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("function stamp() [names no object of public");
    expect(r.stdout).toContain("function published_count() [names no object of public");
    const schema = await schemaOf(client, "acme");
    expect((await client.query(`SELECT "${schema}".published_count() AS n`)).rows[0].n).toBe(expected);
    expect((await client.query("SELECT count(*)::int AS n FROM auth.users")).rows[0].n).toBe(0);
  });
});
