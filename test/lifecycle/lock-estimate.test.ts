// The lock-capacity check estimates the locks a run takes from the parsed statements instead of
// executing the migrations once and rolling back. The estimate must never be below what PostgreSQL
// really takes (pg_locks of the applying session), or a run could overflow the lock table after
// the check said it fits; and not far above it, or the advice would ask for needlessly small batches.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type pg from "pg";
import { migrationQueries, type Migration } from "../../scripts/migrations/files.ts";
import { CITUS_LOCK_FACTOR, estimateLocks } from "../../scripts/migrations/lock-estimate.ts";
import { checkLockCapacity } from "../../scripts/migrations/runner.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, onCitus, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, migrationSet, removeFixtureMigrations } from "../support/migrations.ts";

const HELD = "SELECT count(*)::int AS n FROM pg_locks WHERE pid = pg_backend_pid() AND locktype NOT IN ('virtualxid', 'transactionid')";

let client: pg.Client;
let tenantSchema: string;

beforeAll(async () => {
  client = await connectTo(await freshDatabase("lock_estimate"));
  await initWithTenants(client, ["acme"]);
  const { rows } = await client.query<{ schema_name: string }>("SELECT schema_name FROM shared.tenants");
  tenantSchema = rows[0]!.schema_name;
});

afterAll(async () => {
  removeFixtureMigrations();
  await client?.end();
  await dropTestDatabases();
});

/** Locks held after applying `migrations` to `schema` in one transaction (rolled back). */
async function realLocks(schema: string, migrations: Migration[]): Promise<number> {
  await client.query("BEGIN");
  try {
    const before = (await client.query<{ n: number }>(HELD)).rows[0]!.n;
    for (const migration of migrations) for (const query of migrationQueries(migration, schema, onCitus)) await client.query(query);
    return (await client.query<{ n: number }>(HELD)).rows[0]!.n - before;
  } finally {
    await client.query("ROLLBACK");
  }
}

/** The factor the estimate carries on this server: CITUS_LOCK_FACTOR on Citus, else 1. */
const FACTOR = onCitus ? CITUS_LOCK_FACTOR : 1;

function compare(label: string, estimate: number, real: number): void {
  expect(real, `${label}: the migrations took no lock at all?`).toBeGreaterThan(0);
  expect(estimate, `${label}: estimate ${estimate} below the real ${real}`).toBeGreaterThanOrEqual(real);
  // "Not far above": at most twice the real count, plus a few entries for very small migrations
  // (on Citus, times the factor: Citus' own locks vary from one statement to the next).
  expect(estimate, `${label}: estimate ${estimate} is far above the real ${real}`).toBeLessThanOrEqual(FACTOR * (2 * real + 4));
}

// On Citus (TEST_CITUS=1) the same comparisons hold for the coordinator's lock table with the
// estimate Citus runs get (PostgreSQL's x CITUS_LOCK_FACTOR): the coordinator also locks Citus'
// metadata. A worker takes locks only for the tenants it holds, fewer than the coordinator.
describe("the repo's tenant migrations", () => {
  it("the whole track on a new schema: the estimate is at least the real count, and not far above it", async () => {
    const { tenant } = migrationSet();
    await client.query('DROP SCHEMA IF EXISTS "lock_probe" CASCADE; CREATE SCHEMA "lock_probe"');
    const real = await realLocks("lock_probe", tenant);
    compare("whole tenant track", estimateLocks([], tenant, onCitus).perTenant, real);
  });

  it("each migration on a schema at the one before it", async () => {
    const { tenant } = migrationSet();
    for (let i = 0; i < tenant.length; i++) {
      await client.query('DROP SCHEMA IF EXISTS "lock_probe" CASCADE; CREATE SCHEMA "lock_probe"');
      for (const earlier of tenant.slice(0, i)) for (const query of migrationQueries(earlier, "lock_probe", onCitus)) await client.query(query);
      const real = await realLocks("lock_probe", [tenant[i]!]);
      compare(tenant[i]!.name, estimateLocks([], [tenant[i]!], onCitus).perTenant, real);
    }
  });
});

describe("typical next migrations, on a tenant at head", () => {
  const cases: Array<[string, string[]]> = [
    ["two columns and an index", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;',
      'ALTER TABLE "tenant"."users" ADD COLUMN "nickname" text;',
      'CREATE INDEX "items_priority_idx" ON "tenant"."items" USING btree ("priority");',
    ]],
    ["a new table with identity, foreign key and unique constraint", [
      'CREATE TABLE "tenant"."tags" ("id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY, "item_id" integer NOT NULL, "name" text NOT NULL, CONSTRAINT "tags_item_name_unique" UNIQUE("item_id", "name"));',
      'ALTER TABLE "tenant"."tags" ADD CONSTRAINT "tags_item_id_items_id_fk" FOREIGN KEY ("item_id") REFERENCES "tenant"."items"("id") ON DELETE cascade;',
    ]],
    ["a column changing type (a table rewrite)", ['ALTER TABLE "tenant"."users" ALTER COLUMN "email" SET DATA TYPE varchar(320);']],
    ["an enum value", ["ALTER TYPE \"tenant\".\"item_status\" ADD VALUE 'deleted';"]],
    ["a data migration reading shared", [
      `INSERT INTO "tenant"."users" ("email", "hashed_password") SELECT 'owner@' || "slug" || '.example.com', '-' FROM "shared"."tenants";`,
      'UPDATE "tenant"."items" SET "title" = upper("title");',
    ]],
  ];
  for (const [label, statements] of cases) {
    it(label, async () => {
      const dir = fixtureMigrations();
      const tag = addMigration(dir, "tenant", "next", statements);
      const migration = migrationSet(dir).tenant.find((m) => m.name === tag)!;
      const estimate = estimateLocks([], [migration], onCitus);
      // One tenant in one transaction: its own locks plus the shared objects it reads.
      compare(label, estimate.perTenant + estimate.once, await realLocks(tenantSchema, [migration]));
    });
  }
});

describe("the check runs nothing", () => {
  it("no trial run: a sequence used by a data migration is not advanced before the real run", async () => {
    // Sequences are not transactional: a trial run rolled back would still consume ids.
    const databaseUrl = await freshDatabase("lock_estimate_cli");
    const fleet = await connectTo(databaseUrl);
    try {
      await initWithTenants(fleet, ["acme", "globex"]);
      const dir = fixtureMigrations();
      addMigration(dir, "tenant", "seed_owner", [
        `INSERT INTO "tenant"."users" ("email", "hashed_password") VALUES ('owner@example.com', '-');`,
      ]);
      for (const args of [[], ["--batch-size", "1"]]) {
        const r = await migrateCli({ databaseUrl, migrationsDir: dir }, ...args);
        expect(r.code, show(r)).toBe(0);
        if (args.length === 0) expect(r.stdout).toContain("Migrated: 0 shared migration(s), 2 tenant(s) in 1 transaction(s).");
        if (args.length === 0) addMigration(dir, "tenant", "seed_second", [
          `INSERT INTO "tenant"."users" ("email", "hashed_password") VALUES ('second@example.com', '-');`,
        ]);
      }
      const { rows } = await fleet.query<{ schema_name: string }>("SELECT schema_name FROM shared.tenants ORDER BY slug");
      for (const { schema_name } of rows) {
        const users = await fleet.query(`SELECT "id", "email" FROM "${schema_name}"."users" ORDER BY "id"`);
        expect(users.rows).toEqual([
          { id: 1, email: "owner@example.com" },
          { id: 2, email: "second@example.com" },
        ]);
      }
    } finally {
      await fleet.end();
    }
  }, 60_000);
});

describe("the capacity check on this server", () => {
  it("refuses a run that would fill the smallest lock table, naming it, the per-tenant count and the advice", async () => {
    const { tenant } = migrationSet();
    const { rows } = await client.query<{ capacity: number }>(
      `SELECT current_setting('max_locks_per_transaction')::int
              * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int) AS capacity`,
    );
    const { perTenant, once } = estimateLocks([], tenant, onCitus);
    // Enough tenants (on paper: nothing runs) to fill the lock table; then in the batches advised.
    const fleet = Math.ceil(rows[0]!.capacity / perTenant) + 1;
    const plan = (n: number) => ({
      shared: [],
      upToDate: 0,
      tenants: Array.from({ length: n }, (_, i) => ({ tenant: { id: i + 1, slug: `t${i}`, schema: `tenant_t${i}`, applied: [] }, pending: tenant })),
    });
    const refused = await checkLockCapacity(client, plan(fleet), undefined, false, onCitus).then(() => "fits", (error: Error) => error.message);
    expect(refused).toContain(`one transaction for ${fleet} tenants would take about ${once + perTenant * fleet} locks (${perTenant} per tenant`);
    if (onCitus) {
      // All nodes of the test cluster have the same settings: the coordinator's table comes first.
      expect(refused).toContain(`${perTenant} per tenant, PostgreSQL's estimate x ${CITUS_LOCK_FACTOR} for Citus), more than the coordinator's lock table holds safely`);
      expect(refused).toMatch(/raise max_locks_per_transaction to at least \d+ on every node and restart PostgreSQL\.$/);
    } else {
      expect(refused).toContain(`${perTenant} per tenant), more than the server's lock table holds safely`);
    }
    const batch = Number(/--batch-size (\d+)/.exec(refused)![1]);
    await expect(checkLockCapacity(client, plan(fleet), batch, false, onCitus)).resolves.toBeUndefined();
  });
});
