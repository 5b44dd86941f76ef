// Lock capacity: one transaction for every tenant takes locks on every tenant's tables, and a small
// server's lock table (max_locks_per_transaction x (max_connections + max_prepared_transactions))
// cannot hold them. The atomic run must refuse before applying anything and advise --batch-size;
// the batched run then succeeds. This needs its own small server: the shared test server has the
// defaults (64 x 100).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type pg from "pg";
import { startEmbeddedPostgres, type LocalDatabase } from "../../scripts/local/postgres.ts";
import { hasColumn, ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { addMigration, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

const TENANTS = 60;
const SLUGS = Array.from({ length: TENANTS }, (_, i) => `t${String(i).padStart(2, "0")}`);

let scratch: string;
let server: LocalDatabase;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "edge-tenants-lockcap-"));
  server = await startEmbeddedPostgres({
    dataDir: join(scratch, "pgdata"),
    ephemeral: true,
    database: "lockcap",
    postgresFlags: ["-c", "max_locks_per_transaction=10", "-c", "max_connections=20"],
  });
}, 120_000);

afterAll(async () => {
  removeFixtureMigrations();
  await dropTestDatabases();
  await server?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

let schemas: Record<string, string> = {};

async function columnsEverywhere(client: pg.Client): Promise<number> {
  let n = 0;
  for (const slug of SLUGS) if (await hasColumn(client, schemas[slug]!, "items", "priority")) n++;
  return n;
}

it(
  "an atomic run that would overflow the lock table refuses before doing anything; --batch-size then succeeds",
  async () => {
    const databaseUrl = await freshDatabase("lockcap", server.url);
    const client = await connectTo(databaseUrl);
    const { rows: settings } = await client.query<{ capacity: number }>(
      `SELECT current_setting('max_locks_per_transaction')::int
              * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int) AS capacity`,
    );
    expect(settings[0]!.capacity).toBe(200);
    schemas = await initWithTenants(client, SLUGS);

    // One migration touching both tenant tables and adding an index: several locks per tenant.
    const migrationsDir = fixtureMigrations();
    const tag = addMigration(migrationsDir, "tenant", "wide", [
      'ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer;',
      'ALTER TABLE "tenant"."users" ADD COLUMN "nickname" text;',
      'CREATE INDEX "items_priority_idx" ON "tenant"."items" USING btree ("priority");',
    ]);
    const ledgerBefore = await ledger(client);

    const refused = await migrateCli({ databaseUrl, migrationsDir });
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `^error: one transaction for ${TENANTS} tenants would take about \\d+ locks \\(\\d+ per tenant\\), ` +
          "more than the server's lock table holds safely \\(max_locks_per_transaction=10 x " +
          "\\(max_connections=20 \\+ max_prepared_transactions=0\\) = 200\\)\\. Nothing was applied\\. " +
          "Run with --batch-size \\d+, or raise max_locks_per_transaction to at least \\d+ and restart PostgreSQL\\.\n$",
      ),
    );
    expect(refused.stderr).not.toContain("the whole run was rolled back");
    expect(refused.stdout).toBe("");
    expect(await ledger(client)).toEqual(ledgerBefore);
    expect(await columnsEverywhere(client)).toBe(0);

    // The advice is taken literally.
    const perTenant = Number(/\((\d+) per tenant\)/.exec(refused.stderr)![1]);
    const batchSize = Number(/--batch-size (\d+)/.exec(refused.stderr)![1]);
    expect(perTenant).toBeGreaterThan(1);
    expect(batchSize).toBeGreaterThanOrEqual(1);
    expect(batchSize * perTenant).toBeLessThanOrEqual(200 * 0.8);

    // A batch as large as the fleet is no safer than one transaction: refused the same way.
    const tooBig = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", String(TENANTS));
    expect(tooBig.code, show(tooBig)).toBe(1);
    expect(tooBig.stderr).toContain(`one transaction for ${TENANTS} tenants (one batch) would take about`);
    expect(tooBig.stderr).toMatch(/Run with a smaller --batch-size \d+/);
    expect(await columnsEverywhere(client)).toBe(0);

    const batched = await migrateCli({ databaseUrl, migrationsDir }, "--batch-size", String(batchSize));
    expect(batched.code, show(batched)).toBe(0);
    const transactions = Math.ceil(TENANTS / batchSize);
    expect(batched.stdout).toContain(`Migrated: 0 shared migration(s), ${TENANTS} tenant(s) in ${transactions} transaction(s).`);
    expect(await columnsEverywhere(client)).toBe(TENANTS);
    const recorded = (await ledger(client)).filter((r) => r.migration === tag).map((r) => r.schema_name);
    expect(recorded).toEqual(Object.values(schemas).sort());

    const nothing = await migrateCli({ databaseUrl, migrationsDir });
    expect(nothing.code, show(nothing)).toBe(0);
    expect(nothing.stdout).toMatch(new RegExp(`^Nothing to migrate: shared and ${TENANTS} tenant\\(s\\) at head\\.`));
  },
  180_000,
);
