// `tenants init` and what an initialized database with tenants holds: invariants 1 (public holds
// only the ledger), 2 (no placeholder schema; each tenant's enum in its own schema) and 6 (init is
// one idempotent step).
import { afterAll, describe, expect, it } from "vitest";
import { databaseState, ledger, publicObjects, schemaCatalog, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { schemaOf } from "../support/fleet.ts";
import { checkoutTags } from "../support/migrations.ts";

afterAll(dropTestDatabases);

/** What `public` may hold: the ledger table, its row type and array type, its indexes and constraints. */
/** `init`, then tenants acme and globex, through the CLI as a user runs it. */
async function initWithAcmeAndGlobex(databaseUrl: string): Promise<{ acme: string; globex: string }> {
  const schemas: Record<string, string> = {};
  for (const args of [
    ["init"],
    ["create", "acme", "--name", "Acme", "--host", "acme.example.com", "--json"],
    ["create", "globex", "--name", "Globex", "--host", "globex.example.com", "--json"],
  ]) {
    const r = await tenantsCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(0);
    if (args[0] === "create") schemas[args[1]!] = (JSON.parse(r.stdout) as { schema: string }).schema;
  }
  return schemas as { acme: string; globex: string };
}

const LEDGER_OBJECTS = [
  "pg_class schema_migrations (r)",
  "pg_class schema_migrations_pkey (i)",
  "pg_class schema_migrations_track_migration_idx (i)",
  "pg_type _schema_migrations",
  "pg_type schema_migrations",
];

describe("tenants init", () => {
  it("creates schema shared at head and the ledger; a second run changes nothing and says so", async () => {
    const databaseUrl = await freshDatabase("init_idem");
    const first = await tenantsCli({ databaseUrl }, "init");
    expect(first.code, show(first)).toBe(0);
    expect(first.stdout).toContain(
      `Initialized: schema shared, the tenant catalog and the migration ledger (${checkoutTags("shared").length} shared migration(s) applied).`,
    );

    const client = await connectTo(databaseUrl);
    expect(await userSchemas(client)).toEqual(["public", "shared"]);
    expect((await ledger(client)).map((r) => `${r.schema_name} ${r.track} ${r.migration}`)).toEqual(
      checkoutTags("shared").map((tag) => `shared shared ${tag}`),
    );
    const stateBefore = await databaseState(client);
    const sharedBefore = await schemaCatalog(client, "shared");
    const publicBefore = await publicObjects(client);

    const second = await tenantsCli({ databaseUrl }, "init");
    expect(second.code, show(second)).toBe(0);
    expect(second.stdout.trim()).toBe(
      "Already initialized: schemas and migrations unchanged.\nApp role edge_tenants_app: grants re-applied on shared and 0 tenant schema(s). " +
        "Its statements stop after 5000 ms (APP_STATEMENT_TIMEOUT_MS).",
    );
    expect(second.stderr).toBe("");
    expect(await databaseState(client)).toEqual(stateBefore);
    expect(await schemaCatalog(client, "shared")).toEqual(sharedBefore);
    expect(await publicObjects(client)).toEqual(publicBefore);
  });

  it("a second init after tenants exist leaves the tenants, their schemas and the ledger alone", async () => {
    const databaseUrl = await freshDatabase("init_idem_tenants");
    const { acme } = await initWithAcmeAndGlobex(databaseUrl);
    const client = await connectTo(databaseUrl);
    const before = await databaseState(client);
    const acmeBefore = await schemaCatalog(client, acme);
    const again = await tenantsCli({ databaseUrl }, "init");
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toContain("Already initialized: schemas and migrations unchanged.");
    expect(await databaseState(client)).toEqual(before);
    expect(await schemaCatalog(client, acme)).toEqual(acmeBefore);
  });
});

describe("an initialized database with two tenants", () => {
  it("public holds nothing but the ledger, and no schema named tenant exists", async () => {
    const databaseUrl = await freshDatabase("init_public");
    for (const args of [
      ["init"],
      ["create", "acme", "--name", "Acme", "--host", "acme.example.com"],
      ["create", "globex", "--name", "Globex", "--host", "globex.example.com", "--host", "globex.localhost"],
    ]) {
      const r = await tenantsCli({ databaseUrl }, ...args);
      expect(r.code, show(r)).toBe(0);
    }
    const client = await connectTo(databaseUrl);
    const objects = await publicObjects(client);
    // Constraints of the ledger table (its primary key, the track check, NOT NULLs) are part of it.
    const constraints = objects.filter((o) => o.startsWith("pg_constraint "));
    expect(constraints.length).toBeGreaterThan(0);
    for (const c of constraints) expect(c).toMatch(/ on schema_migrations$/);
    expect(constraints).toContain("pg_constraint schema_migrations_pkey on schema_migrations");
    expect(objects.filter((o) => !o.startsWith("pg_constraint "))).toEqual(LEDGER_OBJECTS);

    const [acme, globex] = [await schemaOf(client, "acme"), await schemaOf(client, "globex")];
    expect(await userSchemas(client)).toEqual(["public", "shared", ...[acme, globex].sort()]);
    const { rows } = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant'");
    expect(rows).toEqual([]);

    // Every ledger row is for shared or an existing tenant schema, once per migration.
    const entries = (await ledger(client)).map((r) => `${r.schema_name} ${r.migration}`);
    expect(entries).toEqual([
      ...checkoutTags("shared").map((t) => `shared ${t}`),
      ...[acme, globex].sort().flatMap((schema) => checkoutTags("tenant").map((t) => `${schema} ${t}`)),
    ]);
  });

  it("each tenant's enum item_status lives in its own schema, and items.status uses that schema's type", async () => {
    const databaseUrl = await freshDatabase("init_enum");
    const { acme, globex } = await initWithAcmeAndGlobex(databaseUrl);
    const client = await connectTo(databaseUrl);
    const bySchema = <T extends object>(rows: Array<T & { s: string }>) => rows.sort((a, b) => (a.s < b.s ? -1 : 1)).map(({ s: _, ...rest }) => rest);
    const types = await client.query<{ schema: string; labels: string[] }>(
      `SELECT n.nspname AS schema, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
       WHERE t.typname = 'item_status' GROUP BY n.nspname ORDER BY n.nspname`,
    );
    expect(types.rows).toEqual(
      bySchema([
        { s: acme, schema: acme, labels: ["draft", "published", "archived"] },
        { s: globex, schema: globex, labels: ["draft", "published", "archived"] },
      ]),
    );

    const columns = await client.query<{ table_schema: string; udt_schema: string; udt_name: string; column_default: string }>(
      `SELECT table_schema, udt_schema, udt_name, column_default FROM information_schema.columns
       WHERE table_name = 'items' AND column_name = 'status' ORDER BY table_schema`,
    );
    expect(columns.rows).toEqual(
      bySchema([
        { s: acme, table_schema: acme, udt_schema: acme, udt_name: "item_status", column_default: `'draft'::${acme}.item_status` },
        { s: globex, table_schema: globex, udt_schema: globex, udt_name: "item_status", column_default: `'draft'::${globex}.item_status` },
      ]),
    );

    // The shared enum stays in shared; nothing enum-like leaked into public.
    const shared = await client.query<{ schema: string; name: string }>(
      `SELECT n.nspname AS schema, t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE t.typtype = 'e' AND n.nspname IN ('public', 'shared') ORDER BY 1, 2`,
    );
    expect(shared.rows).toEqual([
      { schema: "shared", name: "rate_limit_tier" },
      { schema: "shared", name: "tenant_status" },
    ]);

    // A value of one tenant's enum is stored in that tenant's table only, with its own type.
    await client.query(
      `INSERT INTO ${acme}.users (email, hashed_password) VALUES ('a@acme.test', 'x');
       INSERT INTO ${acme}.items (title, owner_id, status) VALUES ('t', 1, 'published')`,
    );
    const typed = await client.query<{ t: string }>(`SELECT pg_typeof(status)::text AS t FROM ${acme}.items`);
    expect(typed.rows).toEqual([{ t: `${acme}.item_status` }]);
    const globexItems = await client.query(`SELECT * FROM ${globex}.items`);
    expect(globexItems.rowCount).toBe(0);
  });
});
