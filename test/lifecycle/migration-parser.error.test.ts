// Tenant migrations are read with PostgreSQL's own parser: every case the regular-expression
// validator and rewrite got wrong, run through the real `migrate` CLI against a real fleet.
// Accepted names that merely start with "tenant_" or a string mentioning `public.` apply; an
// unqualified table is refused before anything commits (even with --batch-size 1); `"tenant".`
// inside literals, comments and an alias named "tenant" is left alone; a statement that ends in a
// comment keeps its `;`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { databaseState, ledger, publicObjects } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, onCitus, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { readFileSync } from "node:fs";
import { MigrationFileError } from "../../scripts/migrations/files.ts";
import { BUILTINS_FILE, readBuiltins } from "../../scripts/migrations/pg-builtins.ts";
import { addMigration, fixtureMigrations, migrationSet, removeFixtureMigrations } from "../support/migrations.ts";

const SLUGS = ["acme", "globex"];

afterAll(async () => {
  removeFixtureMigrations();
  await dropTestDatabases();
});

/** The tenants' schema names, as the catalog has them. */
async function tenantSchemas(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ schema_name: string }>("SELECT schema_name FROM shared.tenants ORDER BY slug");
  expect(rows).toHaveLength(SLUGS.length);
  return rows.map((r) => r.schema_name);
}

async function initialized(label: string) {
  const databaseUrl = await freshDatabase(label);
  const client = await connectTo(databaseUrl);
  await initWithTenants(client, SLUGS);
  return { databaseUrl, client, schemas: await tenantSchemas(client) };
}

describe("names the old validator refused by mistake are accepted", () => {
  let databaseUrl: string;
  let client: pg.Client;
  let schemas: string[];
  beforeAll(async () => {
    ({ databaseUrl, client, schemas } = await initialized("parser_accepts"));
  });

  it('a column "tenant_ref", a table "tenant_settings", an index "tenant_items_idx" and public. in a string apply to every tenant', async () => {
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "tenant_names", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "tenant_ref" integer;',
      `CREATE TABLE "tenant"."tenant_settings" ("id" serial PRIMARY KEY NOT NULL, "note" text DEFAULT 'see public.docs' NOT NULL);`,
      'CREATE INDEX "tenant_items_idx" ON "tenant"."items" USING btree ("tenant_ref");',
    ]);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain(`Migrated: 0 shared migration(s), ${SLUGS.length} tenant(s) in 1 transaction(s).`);
    for (const schema of schemas) {
      const { rows } = await client.query(
        `SELECT (SELECT count(*)::int FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'tenant_ref') AS col,
                (SELECT column_default FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'tenant_settings' AND column_name = 'note') AS note_default,
                (SELECT count(*)::int FROM pg_indexes WHERE schemaname = $1 AND tablename = 'items' AND indexname = 'tenant_items_idx') AS idx`,
        [schema],
      );
      expect(rows[0]).toEqual({ col: 1, note_default: "'see public.docs'::text", idx: 1 });
    }
    expect((await ledger(client)).filter((row) => row.migration === tag).map((row) => row.schema_name)).toEqual([...schemas].sort());
    expect(await nonLedgerPublicObjects(client)).toEqual([]);
  });

  it('"tenant". inside string literals, comments and a table alias named "tenant" is not rewritten', async () => {
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "tenant_names", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "tenant_ref" integer;',
      `CREATE TABLE "tenant"."tenant_settings" ("id" serial PRIMARY KEY NOT NULL, "note" text DEFAULT 'see public.docs' NOT NULL);`,
      'CREATE INDEX "tenant_items_idx" ON "tenant"."items" USING btree ("tenant_ref");',
    ]);
    addMigration(migrationsDir, "tenant", "literals", [
      `ALTER TABLE "tenant"."items" ADD COLUMN "origin" text DEFAULT 'copied from "tenant".items' NOT NULL; /* not "tenant".x */`,
      `COMMENT ON COLUMN "tenant"."items"."origin" IS 'rows of "tenant".items -- kept as written';`,
      `INSERT INTO "tenant"."users" ("email", "hashed_password") VALUES ('seed@example.com', 'x');`,
      `INSERT INTO "tenant"."items" ("title", "owner_id") SELECT 'first', "id" FROM "tenant"."users";`,
      // An alias named "tenant": its column qualifiers are the alias, not the schema.
      `UPDATE "tenant"."items" AS "tenant" SET "title" = "tenant"."title" || ' in "tenant".items' WHERE "tenant"."id" > 0;`,
    ]);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(0);
    for (const schema of schemas) {
      const { rows } = await client.query(
        `SELECT (SELECT column_default FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'origin') AS origin_default,
                col_description(format('%I.items', $1::text)::regclass,
                  (SELECT attnum FROM pg_attribute WHERE attrelid = format('%I.items', $1::text)::regclass AND attname = 'origin')::int) AS comment`,
        [schema],
      );
      expect(rows[0]).toEqual({
        origin_default: `'copied from "tenant".items'::text`,
        comment: 'rows of "tenant".items -- kept as written',
      });
      const items = await client.query(`SELECT "title", "origin" FROM ${quote(schema)}."items"`);
      expect(items.rows).toEqual([{ title: 'first in "tenant".items', origin: 'copied from "tenant".items' }]);
    }
  });
});

/** Objects in public other than the migration ledger (which lives there). */
async function nonLedgerPublicObjects(client: pg.Client): Promise<string[]> {
  return (await publicObjects(client)).filter((o) => !/schema_migrations/.test(o));
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

describe("a statement that ends in a comment", () => {
  it("keeps the ; that ends it: the next statement still runs on its own", async () => {
    const { databaseUrl, client, schemas } = await initialized("parser_comment");
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "commented", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer -- how urgent; NULL means normal',
      'ALTER TABLE "tenant"."items" ADD COLUMN "due" date -- no semicolon either',
    ]);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(0);
    for (const schema of schemas) {
      const { rows } = await client.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name IN ('priority', 'due') ORDER BY 1",
        [schema],
      );
      expect(rows.map((row) => row.column_name)).toEqual(["due", "priority"]);
    }
  });
});

describe("objects outside the placeholder schema are refused before anything runs", () => {
  it("an unqualified CREATE TABLE is refused naming the file, the statement and the table; with --batch-size 1 nothing commits", async () => {
    const { databaseUrl, client } = await initialized("parser_unqualified");
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "widgets", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "size" integer;',
      'CREATE TABLE widgets (\n  "id" serial PRIMARY KEY NOT NULL\n);',
    ]);
    const before = await databaseState(client);
    const expected =
      `error: migrations/tenant/${tag}.sql is refused: statement 2 (line 2): table "widgets" is not schema-qualified: ` +
      'write "tenant"."widgets"; an unqualified name lands in (or is looked up through) the search_path, e.g. public\n';
    for (const args of [[], ["--batch-size", "1"], ["--dry-run"], ["status"]]) {
      const r = await migrateCli({ databaseUrl, migrationsDir }, ...args);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toBe(expected);
      expect(r.stdout).toBe("");
    }
    // Tenant creation loads the same files and refuses the same way.
    const create = await tenantsCli({ databaseUrl, migrationsDir }, "create", "initech", "--name", "Initech", "--host", "initech.example.com");
    expect(create.code, show(create)).toBe(1);
    expect(create.stderr).toBe(expected);
    expect(await databaseState(client)).toEqual(before);
    expect(await nonLedgerPublicObjects(client)).toEqual([]);
  }, 60_000);

  it("each refused object is named: public, unqualified types and functions, writes to shared, DO blocks", () => {
    const cases: Array<[string, string]> = [
      ['CREATE INDEX "items_title_idx" ON "public"."items" ("title");', 'table "public"."items" is in the public schema'],
      ['ALTER TABLE "tenant"."items" ADD COLUMN "state" item_status;', 'type "item_status" is not schema-qualified: write "tenant"."item_status"'],
      ['ALTER TABLE "tenant"."items" ADD COLUMN "code" text DEFAULT make_code();', 'function "make_code" is not schema-qualified'],
      ['ALTER TABLE "shared"."tenants" ADD COLUMN "x" integer;', 'table "shared"."tenants" would be changed in the shared schema'],
      [
        'ALTER TABLE "tenant"."items" ADD CONSTRAINT "items_tenant_fk" FOREIGN KEY ("owner_id") REFERENCES "shared"."tenants"("id");',
        'a foreign key to "shared"."tenants" would add triggers to that shared table',
      ],
      ["DO $$ BEGIN EXECUTE 'CREATE TABLE leak (id int)'; END $$;", "a DO block's body is a string literal"],
      ['ALTER TABLE "tenant"."items" ADD COLUMN "x" integer;\nDROP INDEX "items_title_idx";', 'statement 2 (line 2): index "items_title_idx" is not schema-qualified'],
      ['ALTER TABLE "tenant"."items" ADD COLUMN "x" integer;\nCREATE TABLE "tenant"."t" (a int', "statement 2 (line 2): PostgreSQL cannot parse it: syntax error at end of input"],
    ];
    for (const [statement, problem] of cases) {
      // The same loader `migrate` and `tenants create` use, in-process (the CLI path is tested above).
      const migrationsDir = fixtureMigrations();
      const tag = addMigration(migrationsDir, "tenant", "bad", [statement]);
      let message = "";
      try {
        migrationSet(migrationsDir);
      } catch (error) {
        expect(error).toBeInstanceOf(MigrationFileError);
        message = (error as Error).message;
      }
      expect(message).toMatch(new RegExp(`^migrations/tenant/${tag}\\.sql is refused: statement \\d+ \\(line \\d+\\): `));
      expect(message).toContain(problem);
    }
  });

  it("an empty custom migration (as drizzle-kit --custom writes it, or truly empty) is accepted and changes nothing", () => {
    const migrationsDir = fixtureMigrations();
    const comment = addMigration(migrationsDir, "tenant", "custom", ["-- Custom SQL migration file, put your code below! --"]);
    const empty = addMigration(migrationsDir, "tenant", "empty", [""]);
    const loaded = migrationSet(migrationsDir).tenant.filter((m) => m.name === comment || m.name === empty);
    expect(loaded.map((m) => [m.name, m.statements])).toEqual([
      [comment, []],
      [empty, []],
    ]);
  });

  it("reading shared in a data migration, built-in types and functions, and tenant types are accepted", async () => {
    const { databaseUrl, client, schemas } = await initialized("parser_reads");
    const migrationsDir = fixtureMigrations();
    addMigration(migrationsDir, "tenant", "reads", [
      'CREATE TYPE "tenant"."size" AS ENUM(\'s\', \'m\');',
      'ALTER TYPE "tenant"."size" ADD VALUE \'l\';',
      'ALTER TABLE "tenant"."items" ADD COLUMN "size" "tenant"."size", ADD COLUMN "ref" uuid DEFAULT gen_random_uuid() NOT NULL, ADD COLUMN "seen" timestamp with time zone DEFAULT now();',
      `INSERT INTO "tenant"."users" ("email", "hashed_password") SELECT 'owner@' || t."slug" || '.example.com', 'x' FROM "shared"."tenants" AS t ORDER BY t."id" LIMIT 1;`,
    ]);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(0);
    for (const schema of schemas) {
      const { rows } = await client.query(
        `SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
           FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid WHERE t.typnamespace = $1::regnamespace GROUP BY 1 ORDER BY 1`,
        [schema],
      );
      expect(rows).toContainEqual({ typname: "size", labels: ["s", "m", "l"] });
      const users = await client.query(`SELECT count(*)::int AS n FROM ${quote(schema)}."users"`);
      expect(users.rows[0].n).toBe(1);
    }
  });
});

// PostgreSQL-only: the list is the server's own pg_catalog, and a Citus cluster's pg_catalog also
// holds Citus's functions and types (and runs PostgreSQL 15, whose built-ins differ from the list's).
describe.skipIf(onCitus)("the built-in names tenant migrations may leave unqualified", () => {
  it("are exactly the server's pg_catalog types and functions (regenerate with node scripts/migrations/pg-builtins.ts)", async () => {
    const client = await connectTo(await freshDatabase("parser_builtins"));
    try {
      expect(JSON.parse(readFileSync(BUILTINS_FILE, "utf8"))).toEqual(await readBuiltins(client));
    } finally {
      await client.end();
    }
  });
});
