// Dropping a tenant with many tables must not need one giant lock set (django-tenants #943: "out of
// shared memory"). On a small server (max_locks_per_transaction=10, max_connections=20) a tenant
// whose schema holds hundreds of tables cannot be dropped in one transaction, as the old `delete`
// did (shown below with the same DROP SCHEMA ... CASCADE); `delete --now --yes` and `purge-deleted`
// drop it in lock-bounded batches.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startEmbeddedPostgres, type LocalDatabase } from "../../scripts/local/postgres.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { LEDGER_TABLE } from "../../scripts/migrations/ledger.ts";

const EXTRA_TABLES = 400;

let scratch: string;
let server: LocalDatabase;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "edge-tenants-purgelocks-"));
  server = await startEmbeddedPostgres({
    dataDir: join(scratch, "pgdata"),
    ephemeral: true,
    database: "purgelocks",
    postgresFlags: ["-c", "max_locks_per_transaction=10", "-c", "max_connections=20"],
  });
}, 120_000);

afterAll(async () => {
  await dropTestDatabases();
  await server?.stop();
  await rm(scratch, { recursive: true, force: true });
}, 60_000);

it(
  "a tenant whose schema needs more locks than the lock table holds is dropped in batches, by delete --now and by purge-deleted",
  async () => {
    const databaseUrl = await freshDatabase("purgelocks", server.url);
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["big", "huge"]);
    // Hundreds of tables, each with a sequence, a primary key, a default and a TOAST table: about
    // ten objects (locks) each. Created a few per transaction (creating takes locks too).
    for (const schema of Object.values(schemas)) {
      for (let i = 0; i < EXTRA_TABLES; i += 5) {
        const ddl = [0, 1, 2, 3, 4].map((k) => `CREATE TABLE "${schema}".t${i + k} (id serial PRIMARY KEY, body text DEFAULT 'x');`).join("\n");
        await client.query(`BEGIN; ${ddl} COMMIT;`);
      }
      await client.query(`INSERT INTO "${schema}".t0 (body) VALUES ('data')`);
    }

    // The old way, one transaction for the whole schema: the server runs out of lock slots.
    const oneTransaction = await client.query(`BEGIN; DROP SCHEMA "${schemas.big}" CASCADE; COMMIT;`).catch((e: Error & { code?: string }) => e);
    await client.query("ROLLBACK").catch(() => {});
    expect(oneTransaction).toBeInstanceOf(Error);
    expect((oneTransaction as Error & { code?: string }).code).toBe("53200"); // out_of_memory
    expect((oneTransaction as Error).message).toBe("out of shared memory");
    expect((await client.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1", [schemas.big])).rows[0].n).toBe(EXTRA_TABLES + 2);

    // delete --now --yes: the same tenant, dropped.
    const now = await tenantsCli({ databaseUrl }, "delete", "big", "--now", "--yes", "--json");
    expect(now.code, show(now)).toBe(0);
    const dropped = JSON.parse(now.stdout);
    expect(dropped.tables).toBe(EXTRA_TABLES + 2);
    expect(dropped.tableBatches).toBeGreaterThan(10);
    expect((await client.query("SELECT to_regnamespace($1) AS r", [schemas.big])).rows[0].r).toBeNull();

    // purge-deleted after a retention of 0s: the other one.
    expect((await tenantsCli({ databaseUrl }, "delete", "huge", "--retain", "0s")).code).toBe(0);
    const purge = await tenantsCli({ databaseUrl }, "purge-deleted");
    expect(purge.code, show(purge)).toBe(0);
    expect(purge.stdout).toMatch(
      new RegExp(`^Purged tenant huge: dropped schema ${schemas.huge} \\(${EXTRA_TABLES + 2} table\\(s\\) in \\d+ transaction\\(s\\), then the schema\\)\\.\n$`),
    );
    expect((await client.query("SELECT to_regnamespace($1) AS r", [schemas.huge])).rows[0].r).toBeNull();
    expect((await client.query("SELECT count(*)::int AS n FROM shared.tenants")).rows[0].n).toBe(0);
  },
  600_000,
);

it(
  "a purge interrupted after the catalog step is finished by the next purge-deleted",
  async () => {
    const databaseUrl = await freshDatabase("purgelocks_resume", server.url);
    const client = await connectTo(databaseUrl);
    const schemas = await initWithTenants(client, ["cut"]);
    // What step 1 leaves when the process dies right after it: the tenant out of the catalog, its
    // name released in the registry, its schema (with data) still there.
    await client.query(`INSERT INTO "${schemas.cut}".users (email, hashed_password) VALUES ('a@b.test', 'h')`);
    await client.query("BEGIN");
    await client.query("DELETE FROM shared.tenants WHERE slug = 'cut'");
    await client.query(`DELETE FROM ${LEDGER_TABLE} WHERE schema_name = $1`, [schemas.cut]);
    await client.query("UPDATE shared.tenant_schemas SET released_at = now() WHERE schema_name = $1", [schemas.cut]);
    await client.query("COMMIT");
    const purge = await tenantsCli({ databaseUrl }, "purge-deleted");
    expect(purge.code, show(purge)).toBe(0);
    expect(purge.stdout).toBe("No deleted tenant is due: nothing purged.\n");
    expect(purge.stderr).toBe(`Finished an interrupted purge: dropped schema ${schemas.cut} (its tenant had already left the catalog).\n`);
    expect((await client.query("SELECT to_regnamespace($1) AS r", [schemas.cut])).rows[0].r).toBeNull();
  },
  300_000,
);
