// The lifecycle on a Citus cluster (TEST_CITUS=1), beyond the suites that run unchanged on both:
// where `init` and `tenants create` put things (distributed tenant schemas placed whole on one
// worker, `shared` an ordinary schema, its later tables reference tables that tenant tables join),
// a migration failing on one tenant rolled back on every node, and errors mapped by SQLSTATE and the
// constraint's base name (this part runs on plain PostgreSQL too).
import { afterAll, describe, expect, it } from "vitest";
import pg from "pg";
import { isUniqueViolation, violatedConstraint } from "../../src/errors/constraints.ts";
import { COORDINATOR_CATALOG_TABLES } from "../../scripts/db/citus.ts";
import { citusLayout, connectTo, dropTestDatabases, freshDatabase, migrateCli, onCitus, show, tenantsCli } from "../support/database.ts";
import { ledger } from "../support/catalog.ts";
import { schemaOf } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
}, 120_000);

/** A superuser connection to one node's copy of the test database (over the cluster's socket folder). */
async function nodeClient(port: number, databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ host: citusLayout()!.socketDir, port, user: "postgres", database: new URL(databaseUrl).pathname.slice(1) });
  client.on("error", () => {});
  await client.connect();
  return client;
}

async function cli(databaseUrl: string, ...args: string[]): Promise<string> {
  const r = await tenantsCli({ databaseUrl }, ...args);
  expect(r.code, show(r)).toBe(0);
  return r.stdout;
}

/** A new initialized database with one tenant, acme (acme.example.com): its URL, a client, acme's schema. */
async function withAcme(label: string): Promise<{ databaseUrl: string; client: pg.Client; acme: string }> {
  const databaseUrl = await freshDatabase(label);
  await cli(databaseUrl, "init");
  await cli(databaseUrl, "create", "acme", "--name", "Acme", "--host", "acme.example.com");
  const client = await connectTo(databaseUrl);
  return { databaseUrl, client, acme: await schemaOf(client, "acme") };
}

/** Which node ports hold the shards of each schema's tables. */
async function placements(client: pg.Client, schemas: string[]): Promise<Record<string, number[]>> {
  const { rows } = await client.query<{ schema: string; ports: number[] }>(
    `SELECT n.nspname AS schema, array_agg(DISTINCT s.nodeport ORDER BY s.nodeport) AS ports
     FROM citus_shards s JOIN pg_class c ON c.oid = s.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY($1::text[]) GROUP BY n.nspname`,
    [schemas],
  );
  return Object.fromEntries(rows.map((r) => [r.schema, r.ports]));
}

// Each test makes a database on three nodes and runs the CLIs several times: minutes on 2 busy cores.
describe.runIf(onCitus)("the lifecycle on Citus", { timeout: 300_000 }, () => {
  it("init keeps shared an ordinary schema on the coordinator; create and pool fill make distributed schemas, each placed whole on one worker", async () => {
    const databaseUrl = await freshDatabase("citus_place");
    await cli(databaseUrl, "init");
    for (const slug of ["acme", "globex", "initech"]) await cli(databaseUrl, "create", slug, "--name", slug, "--host", `${slug}.example.com`, "--no-pool");
    await cli(databaseUrl, "pool", "fill", "--size", "2");
    const client = await connectTo(databaseUrl);
    const tenants = [await schemaOf(client, "acme"), await schemaOf(client, "globex"), await schemaOf(client, "initech")];
    const { rows: pool } = await client.query<{ schema_name: string }>("SELECT schema_name FROM shared.tenant_pool ORDER BY 1");
    const schemas = [...tenants, ...pool.map((r) => r.schema_name)];
    expect(schemas).toHaveLength(5);

    // Every tenant and pool schema is a distributed schema; shared is not.
    const { rows: distributed } = await client.query<{ schema_name: string }>("SELECT schema_name::text FROM citus_schemas ORDER BY 1");
    expect(distributed.map((r) => r.schema_name)).toEqual([...schemas].sort());

    // Its tables (items, users) are Citus tables of type "schema", all in the schema's one colocation group.
    const { rows: tables } = await client.query<{ schema: string; tables: string[]; types: string[]; groups: number }>(
      `SELECT n.nspname AS schema, array_agg(c.relname::text ORDER BY c.relname) AS tables,
              array_agg(DISTINCT t.citus_table_type) AS types, count(DISTINCT t.colocation_id)::int AS groups
       FROM citus_tables t JOIN pg_class c ON c.oid = t.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ANY($1::text[]) GROUP BY n.nspname ORDER BY 1`,
      [schemas],
    );
    expect(tables).toEqual([...schemas].sort().map((schema) => ({ schema, tables: ["items", "users"], types: ["schema"], groups: 1 })));

    // Placed whole on one worker (never on the coordinator, which holds no shards).
    const workers = citusLayout()!.ports.slice(1);
    const placed = await placements(client, schemas);
    for (const schema of schemas) {
      expect(placed[schema], schema).toHaveLength(1);
      expect(workers).toContain(placed[schema]![0]);
    }

    // The catalog stays ordinary tables on the coordinator (docs/citus.md says why); no Citus table is in shared.
    const { rows: sharedCitus } = await client.query("SELECT table_name::text FROM citus_tables WHERE table_name::text LIKE 'shared.%'");
    expect(sharedCitus).toEqual([]);
    const { rows: catalog } = await client.query<{ relname: string }>(
      "SELECT relname::text FROM pg_class WHERE relnamespace = 'shared'::regnamespace AND relkind = 'r' ORDER BY 1",
    );
    expect(catalog.map((r) => r.relname)).toEqual([...COORDINATOR_CATALOG_TABLES].sort());
    // The workers know the tenant schemas but have no shared catalog of their own.
    for (const port of workers) {
      const worker = await nodeClient(port, databaseUrl);
      try {
        const { rows } = await worker.query("SELECT 1 FROM pg_class WHERE relname = 'tenants' AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'shared')");
        expect(rows).toEqual([]);
      } finally {
        await worker.end();
      }
    }

    // A tenant created by claiming a pool slot keeps its distributed schema.
    const claimed = JSON.parse(await cli(databaseUrl, "create", "hooli", "--name", "Hooli", "--host", "hooli.example.com", "--json")) as { schema: string; fromPool?: boolean };
    expect(pool.map((r) => r.schema_name)).toContain(claimed.schema);
    const { rows: hooli } = await client.query("SELECT 1 FROM citus_schemas WHERE schema_name::text = $1", [claimed.schema]);
    expect(hooli).toHaveLength(1);

    // Deleting at once drops the distributed schema and its shards on the worker.
    const worker = placed[tenants[0]!]![0]!;
    await cli(databaseUrl, "delete", "acme", "--now", "--yes");
    const { rows: gone } = await client.query("SELECT 1 FROM citus_schemas WHERE schema_name::text = $1", [tenants[0]]);
    expect(gone).toEqual([]);
    const onWorker = await nodeClient(worker, databaseUrl);
    try {
      const { rows } = await onWorker.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [tenants[0]]);
      expect(rows).toEqual([]);
    } finally {
      await onWorker.end();
    }
  });

  it("a later shared migration's tables become reference tables, once, and tenant tables join them", async () => {
    const { databaseUrl, client, acme } = await withAcme("citus_ref");
    await client.query(`INSERT INTO "${acme}".users (email, hashed_password) VALUES ('a@acme.test', 'x')`);
    await client.query(`INSERT INTO "${acme}".items (title, owner_id) SELECT 'first', id FROM "${acme}".users`);

    const migrationsDir = fixtureMigrations();
    // Created in this order on purpose: plan_features refers to plans, which must become a reference table first.
    addMigration(migrationsDir, "shared", "plans", [
      'CREATE TABLE "shared"."plan_features" ("plan_id" integer NOT NULL, "feature" text NOT NULL);',
      'CREATE TABLE "shared"."plans" ("id" integer PRIMARY KEY NOT NULL, "name" text NOT NULL);',
      'ALTER TABLE "shared"."plan_features" ADD CONSTRAINT "plan_features_plan_id_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "shared"."plans"("id");',
      'CREATE INDEX "plans_name_idx" ON "shared"."plans" ("name");',
      `INSERT INTO "shared"."plans" ("id", "name") VALUES (1, 'free');`,
      // A table with a trigger cannot be a reference table: it stays on the coordinator, and migrate says so.
      'CREATE TABLE "shared"."plan_changes" ("id" serial PRIMARY KEY NOT NULL, "at" timestamptz);',
      `CREATE FUNCTION "shared"."stamp_plan_change"() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.at := now(); RETURN NEW; END $$;`,
      'CREATE TRIGGER "plan_changes_stamp" BEFORE INSERT ON "shared"."plan_changes" FOR EACH ROW EXECUTE FUNCTION "shared"."stamp_plan_change"();',
    ]);
    const r = await migrateCli({ databaseUrl, migrationsDir });
    expect(r.code, show(r)).toBe(0);
    expect(r.stderr).toContain(
      "warning: shared.plan_changes stays an ordinary table on the coordinator, not a Citus reference table: " +
        "it has triggers, which Citus cannot run on a reference table; tenant tables cannot join it (docs/citus.md)\n",
    );
    const referenceTables = async () =>
      (await client.query<{ t: string }>("SELECT table_name::text AS t FROM citus_tables WHERE citus_table_type = 'reference' ORDER BY 1")).rows.map((row) => row.t);
    expect(await referenceTables()).toEqual(["shared.plan_features", "shared.plans"]);

    // A tenant table (on a worker) joins the reference table; the seed row came along.
    const { rows } = await client.query(`SELECT i.title, p.name FROM "${acme}".items i CROSS JOIN shared.plans p`);
    expect(rows).toEqual([{ title: "first", name: "free" }]);

    // Nothing to do the second time, and the tables stay as they are.
    const again = await migrateCli({ databaseUrl, migrationsDir });
    expect(again.code, show(again)).toBe(0);
    expect(await referenceTables()).toEqual(["shared.plan_features", "shared.plans"]);
  });

  it("a migration with CREATE INDEX and ADD CONSTRAINT failing on one tenant rolls back on every node; after the fix it applies everywhere", async () => {
    const databaseUrl = await freshDatabase("citus_2pc");
    await cli(databaseUrl, "init");
    const slugs = ["alpha", "bravo", "charlie", "delta"];
    for (const slug of slugs) await cli(databaseUrl, "create", slug, "--name", slug, "--host", `${slug}.example.com`);
    const client = await connectTo(databaseUrl);
    const schemas = await Promise.all(slugs.map((slug) => schemaOf(client, slug)));
    const [w1, w2] = citusLayout()!.ports.slice(1) as [number, number];
    // The tenants on both workers, so the run's transaction spans the coordinator and two workers.
    let placed = await placements(client, schemas);
    if (!schemas.some((s) => placed[s]![0] === w1) || !schemas.some((s) => placed[s]![0] === w2)) {
      const to = placed[schemas[0]!]![0] === w1 ? w2 : w1;
      await client.query("SELECT citus_schema_move($1::regnamespace, $2, $3, 'block_writes')", [schemas[0], citusLayout()!.socketDir, to]);
      placed = await placements(client, schemas);
    }
    expect(new Set(schemas.map((s) => placed[s]![0]))).toEqual(new Set([w1, w2]));

    // The last tenant in the run's order (by slug) has a title the new CHECK refuses.
    const last = await schemaOf(client, "delta");
    await client.query(`INSERT INTO "${last}".users (email, hashed_password) VALUES ('d@delta.test', 'x')`);
    await client.query(`INSERT INTO "${last}".items (title, owner_id) SELECT 'a title far too long', id FROM "${last}".users`);

    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "short_titles", [
      'CREATE INDEX "items_title_idx" ON "tenant"."items" ("title");',
      'ALTER TABLE "tenant"."items" ADD CONSTRAINT "items_title_short" CHECK (length("title") < 12);',
    ]);
    const ledgerBefore = await ledger(client);
    const failed = await migrateCli({ databaseUrl, migrationsDir });
    expect(failed.code, show(failed)).toBe(1);
    expect(failed.stderr).toContain(`migration tenant/${tag} failed on tenant delta (schema ${last})`);
    expect(failed.stderr).toContain("SQLSTATE 23514");
    expect(await ledger(client)).toEqual(ledgerBefore);

    /** Per node: the shards' indexes and constraints the migration made, and prepared transactions left. */
    const onNodes = async () => {
      const out: Array<{ indexes: number; constraints: number; prepared: number }> = [];
      for (const port of citusLayout()!.ports) {
        const node = await nodeClient(port, databaseUrl);
        try {
          const { rows } = await node.query<{ indexes: number; constraints: number; prepared: number }>(
            `SELECT (SELECT count(*)::int FROM pg_class WHERE relkind = 'i' AND relname LIKE 'items\\_title\\_idx%') AS indexes,
                    (SELECT count(*)::int FROM pg_constraint WHERE conname LIKE 'items\\_title\\_short%') AS constraints,
                    (SELECT count(*)::int FROM pg_prepared_xacts WHERE database = current_database()) AS prepared`,
          );
          out.push(rows[0]!);
        } finally {
          await node.end();
        }
      }
      return out;
    };
    expect(await onNodes()).toEqual([0, 0, 0].map(() => ({ indexes: 0, constraints: 0, prepared: 0 })));

    await client.query(`UPDATE "${last}".items SET title = 'short'`);
    const fixed = await migrateCli({ databaseUrl, migrationsDir });
    expect(fixed.code, show(fixed)).toBe(0);
    // The coordinator holds each tenant's table definitions (4 each); the workers the shards, 4 in all.
    const after = await onNodes();
    expect(after[0]).toEqual({ indexes: 4, constraints: 4, prepared: 0 });
    const perWorker = (port: number) => schemas.filter((s) => placed[s]![0] === port).length;
    // On a worker, Citus keeps a shell of each distributed table too (its metadata): count only shards.
    for (const [i, port] of [w1, w2].entries()) {
      const node = await nodeClient(port, databaseUrl);
      try {
        const { rows } = await node.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_constraint WHERE conname ~ '^items_title_short_[0-9]+$'",
        );
        expect(rows[0]!.n, `worker ${i + 1}`).toBe(perWorker(port));
      } finally {
        await node.end();
      }
    }
    expect((await ledger(client)).filter((row) => row.migration === tag).map((row) => row.schema_name)).toEqual([...schemas].sort());
  });
});

describe("a unique violation on a tenant table", { timeout: 120_000 }, () => {
  it("is recognized by SQLSTATE and the constraint's base name, also with Citus's shard suffix", async () => {
    const { client, acme } = await withAcme("citus_errors");
    const insert = () => client.query(`INSERT INTO "${acme}".users (email, hashed_password) VALUES ('same@acme.test', 'x')`);
    await insert();
    const error = await insert().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeDefined();
    expect((error as { code: string }).code).toBe("23505");
    // Citus reports the shard's copy of the constraint, and no constraint field.
    if (onCitus) expect((error as Error).message).toMatch(/unique constraint "users_email_unique_\d{6,}"/);
    else expect((error as { constraint: string }).constraint).toBe("users_email_unique");
    expect(violatedConstraint(error)).toBe("users_email_unique");
    expect(isUniqueViolation(error, "users_email_unique")).toBe(true);
    expect(isUniqueViolation(error, "users_pkey")).toBe(false);
  });
});
