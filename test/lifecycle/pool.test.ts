// The warm pool through the CLI: `pool fill`, `pool status`, `create` claiming a slot (DML only) or
// creating as before, the catalog rules on claim (slug, hosts, quarantine), `migrate` migrating
// pooled schemas; and the fleet counters that make creation O(1): kept exact by the triggers, and a
// create reads the same number of ledger rows whatever the fleet's size.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { tenantSchemaCatalog } from "../../scripts/db/catalog.ts";
import { createTenant } from "../../scripts/tenants/operations.ts";
import { dropTenantNow } from "../../scripts/tenants/retention.ts";
import { fillPool } from "../../scripts/tenants/pool.ts";
import { migrate } from "../../scripts/migrations/runner.ts";
import { ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, checkoutTags, fixtureMigrations, migrationSet, removeFixtureMigrations } from "../support/migrations.ts";

vi.setConfig({ testTimeout: 240_000, hookTimeout: 120_000 });

afterAll(() => {
  removeFixtureMigrations();
  return dropTestDatabases();
});

const tenantTags = checkoutTags("tenant");

async function unclaimed(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ s: string }>(
    "SELECT schema_name AS s FROM shared.tenant_pool WHERE claimed_at IS NULL ORDER BY schema_name",
  );
  return rows.map((r) => r.s);
}

/** The counters as triggers keep them, and the same numbers computed from the ledger and the registry. */
async function countersAndTruth(client: pg.Client) {
  const counters = await client.query(
    "SELECT migration, checksum, schemas::int AS n FROM shared.ledger_counts ORDER BY migration, checksum",
  );
  const truth = await client.query(
    `SELECT l.migration, l.checksum, count(*)::int AS n FROM public.schema_migrations l
     JOIN shared.tenant_schemas r ON r.schema_name = l.schema_name AND r.released_at IS NULL
     WHERE l.track = 'tenant' GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  const size = await client.query("SELECT schemas::int AS n FROM shared.fleet_size");
  const live = await client.query(
    `SELECT (SELECT count(*) FROM shared.tenants) + (SELECT count(*) FROM shared.tenant_pool WHERE claimed_at IS NULL) AS n`,
  );
  return { counters: counters.rows, truth: truth.rows, size: size.rows[0].n, live: Number(live.rows[0].n) };
}

describe("the warm pool", () => {
  let databaseUrl: string;
  let client: pg.Client;
  const cli = async (...args: string[]) => {
    const r = await tenantsCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(0);
    return r.stdout;
  };

  beforeAll(async () => {
    databaseUrl = await freshDatabase("pool");
    client = await connectTo(databaseUrl);
    await cli("init");
  });
  afterAll(() => client?.end());

  it("pool fill keeps N unclaimed schemas at head, made like a tenant's; pool status shows size and head", async () => {
    expect(JSON.parse(await cli("pool", "status", "--json"))).toEqual({ size: 0, claimed: 0, head: tenantTags.at(-1), atHead: 0, behind: [] });
    expect(await cli("pool", "fill", "--size", "3")).toMatch(/^Pool filled: created 3 slot\(s\) at head in \d+\.\d\d s; 3 unclaimed now\.\n$/);
    expect(await cli("pool", "fill", "--size", "2")).toBe("Pool already has 3 unclaimed slot(s) (asked for 2): nothing created.\n");
    expect(await cli("pool", "status")).toBe(`pool: 3 unclaimed slot(s) (0 claimed so far), head tenant/${tenantTags.at(-1)}\n`);

    const slots = await unclaimed(client);
    expect(slots).toHaveLength(3);
    for (const s of slots) expect(s).toMatch(/^tenant_[a-z2-7]{12}$/);
    // Registered (never to be assigned again), with no tenant yet; in the ledger at head.
    const registry = await client.query("SELECT schema_name, tenant_id FROM shared.tenant_schemas ORDER BY schema_name");
    expect(registry.rows).toEqual(slots.map((s) => ({ schema_name: s, tenant_id: null })));
    const rows = await ledger(client);
    for (const s of slots) expect(rows.filter((r) => r.schema_name === s).map((r) => r.migration)).toEqual(tenantTags);
    // Each slot's tables, types and grants are those of a tenant made without the pool.
    const plain = JSON.parse(await cli("create", "plain", "--name", "Plain", "--host", "plain.example.com", "--no-pool", "--json"));
    expect(plain.fromPool).toBe(false);
    expect(slots).not.toContain(plain.schema);
    const reference = await tenantSchemaCatalog(client, plain.schema);
    for (const s of slots) expect(await tenantSchemaCatalog(client, s)).toEqual(reference);
    const grants = async (schema: string) =>
      (await client.query(
        `SELECT c.relname, has_table_privilege('edge_tenants_app', c.oid, 'SELECT,INSERT,UPDATE,DELETE') AS dml
         FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' ORDER BY 1`,
        [schema],
      )).rows;
    for (const s of slots) expect(await grants(s)).toEqual(await grants(plain.schema));
  });

  it("create claims a slot (DML only) and says so; the tenant, host and registry rows are its", async () => {
    const before = await unclaimed(client);
    const out = await cli("create", "acme", "--name", "Acme Inc.", "--host", "acme.example.com", "--host", "www.acme.test");
    expect(out).toMatch(/^Created tenant acme \(claimed a warm-pool slot\)\.\n/);
    const acme = JSON.parse(await cli("show", "acme", "--json"));
    expect(before).toContain(acme.schema);
    expect(acme.hosts).toEqual([{ host: "acme.example.com", primary: true }, { host: "www.acme.test", primary: false }]);
    expect(await unclaimed(client)).toEqual(before.filter((s) => s !== acme.schema));
    const registry = await client.query("SELECT tenant_id::int AS id FROM shared.tenant_schemas WHERE schema_name = $1", [acme.schema]);
    expect(registry.rows).toEqual([{ id: acme.id }]);
    const pool = JSON.parse(await cli("pool", "status", "--json"));
    expect(pool).toMatchObject({ size: 2, claimed: 1, atHead: 2 });
  });

  it("a claim keeps the catalog's rules: a taken slug or host, or a quarantined host, is refused and claims nothing", async () => {
    const before = await unclaimed(client);
    const taken = await tenantsCli({ databaseUrl }, "create", "acme", "--name", "Again", "--host", "again.example.com");
    expect(taken.code).toBe(1);
    expect(taken.stderr).toBe("error: tenant acme already exists\n");
    const host = await tenantsCli({ databaseUrl }, "create", "other", "--name", "Other", "--host", "www.acme.test");
    expect(host.code).toBe(1);
    expect(host.stderr).toContain("host www.acme.test already belongs to tenant acme");
    await cli("hosts", "remove", "acme", "www.acme.test");
    const quarantined = await tenantsCli({ databaseUrl }, "create", "other", "--name", "Other", "--host", "www.acme.test");
    expect(quarantined.code).toBe(1);
    expect(quarantined.stderr).toContain("host www.acme.test was removed from tenant acme");
    expect(await unclaimed(client)).toEqual(before);
    expect((await client.query("SELECT count(*)::int AS n FROM shared.tenants WHERE slug = 'other'")).rows[0].n).toBe(0);
  });

  it("with the pool empty, create makes a new schema as before and says so", async () => {
    await cli("create", "b1", "--name", "B1", "--host", "b1.example.com");
    await cli("create", "b2", "--name", "B2", "--host", "b2.example.com");
    expect(await unclaimed(client)).toEqual([]);
    const out = await cli("create", "b3", "--name", "B3", "--host", "b3.example.com");
    expect(out).toMatch(/^Created tenant b3 \(created a new schema\)\.\n/);
  });

  it("migrate migrates pooled schemas like tenants; a pool behind head is refused by fill and create until then", async () => {
    expect(await cli("pool", "fill", "--size", "2")).toMatch(/created 2 slot\(s\)/);
    const slots = await unclaimed(client);
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "priority", ['ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;']);

    const fill = await tenantsCli({ databaseUrl, migrationsDir }, "pool", "fill", "--size", "3");
    expect(fill.code).toBe(1);
    expect(fill.stderr).toContain(`not at head (pending: tenant/${tag})`);
    const status = await tenantsCli({ databaseUrl, migrationsDir }, "pool", "status", "--json");
    const behind = JSON.parse(status.stdout);
    expect({ ...behind, behind: [...behind.behind].sort() }).toMatchObject({ size: 2, head: tag, atHead: 0, behind: slots });
    const plan = await migrateCli({ databaseUrl, migrationsDir }, "--dry-run", "--json");
    expect(plan.code, show(plan)).toBe(0);
    const slugs = JSON.parse(plan.stdout).plan.tenants.map((t: { slug: string }) => t.slug);
    for (const s of slots) expect(slugs).toContain(`(pool) ${s}`);

    const run = await migrateCli({ databaseUrl, migrationsDir });
    expect(run.code, show(run)).toBe(0);
    for (const s of slots) {
      const cols = await client.query(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'priority'",
        [s],
      );
      expect(cols.rowCount).toBe(1);
    }
    const after = await tenantsCli({ databaseUrl, migrationsDir }, "pool", "status", "--json");
    expect(JSON.parse(after.stdout)).toMatchObject({ size: 2, head: tag, atHead: 2, behind: [] });
    const created = await tenantsCli({ databaseUrl, migrationsDir }, "create", "late", "--name", "Late", "--host", "late.example.com");
    expect(created.code, show(created)).toBe(0);
    expect(created.stdout).toContain("(claimed a warm-pool slot)");
  });

  it("bad usage of pool is answered in one line with exit code 2", async () => {
    for (const args of [["pool"], ["pool", "fill"], ["pool", "fill", "--size=-1"], ["pool", "fill", "--size", "x"], ["pool", "drain"]]) {
      const r = await tenantsCli({ databaseUrl }, ...args);
      expect(r.code, show(r)).toBe(2);
      expect(r.stderr).toMatch(/^error: .+\n$/);
    }
  });
});

describe("O(1) creation: the fleet counters", () => {
  it("stay equal to the ledger through fill, claim, create, delete, migrate and hand edits", async () => {
    const databaseUrl = await freshDatabase("pool_counts");
    const client = await connectTo(databaseUrl);
    try {
      const migrations = migrationSet();
      await initWithTenants(client, ["alpha", "beta", "gamma"]);
      await fillPool(client, migrations, 2);
      await createTenant(client, migrations, { slug: "delta", name: "Delta", hosts: ["delta.example.com"] });
      await dropTenantNow(client, "beta"); // delete --now --yes
      const dir = fixtureMigrations();
      addMigration(dir, "tenant", "priority", ['ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;']);
      await migrate(client, { migrations: migrationSet(dir), batchSize: 2 });
      let state = await countersAndTruth(client);
      expect(state.counters).toEqual(state.truth);
      expect(state.size).toBe(state.live);
      expect(state.size).toBe(4); // alpha, gamma, delta (a claimed slot), and one unclaimed slot

      // By hand: a ledger row removed, a tenant removed without `delete`.
      await client.query("DELETE FROM public.schema_migrations WHERE schema_name = (SELECT schema_name FROM shared.tenants WHERE slug = 'alpha') AND migration = $1", [tenantTags.at(-1)]);
      await client.query("DELETE FROM shared.tenants WHERE slug = 'gamma'");
      state = await countersAndTruth(client);
      expect(state.counters).toEqual(state.truth);
      expect(state.size).toBe(state.live);
    } finally {
      await client.end();
    }
  });

  it("a create reads as many ledger rows with 40 tenants as with 5", async () => {
    const databaseUrl = await freshDatabase("pool_flat");
    const client = await connectTo(databaseUrl);
    try {
      const migrations = migrationSet();
      await initWithTenants(client, ["t1", "t2", "t3", "t4", "t5"]);
      /** Ledger rows PostgreSQL read (sequential and index scans) during one create, from its own statistics. */
      const ledgerRowsRead = async (slug: string) => {
        const read = async () => {
          await client.query("SELECT pg_stat_force_next_flush()");
          await client.query("SELECT pg_stat_clear_snapshot()");
          const { rows } = await client.query(
            `SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) AS n FROM pg_stat_user_tables
             WHERE schemaname = 'public' AND relname = 'schema_migrations'`,
          );
          return Number(rows[0].n);
        };
        const before = await read();
        // On a small ledger the planner rightly prefers reading the whole table; a large fleet's
        // ledger is read through its indexes: plan as for a large one.
        await client.query("SET enable_seqscan = off");
        await createTenant(client, migrations, { slug, name: slug, hosts: [`${slug}.example.com`], usePool: false });
        await client.query("RESET enable_seqscan");
        return (await read()) - before;
      };
      const small = await ledgerRowsRead("small");
      for (let i = 0; i < 35; i++) {
        await createTenant(client, migrations, { slug: `f${i}`, name: `F${i}`, hosts: [`f${i}.example.com`], usePool: false });
      }
      const large = await ledgerRowsRead("large");
      expect({ small, large }).toEqual({ small, large: small });
    } finally {
      await client.end();
    }
  });
});
