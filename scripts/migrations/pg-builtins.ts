// The names PostgreSQL resolves in pg_catalog whatever the search_path: its built-in types and
// functions. Tenant migrations may use these unqualified (`text`, `now()`); any other type or
// function must be qualified. The list is pg-builtins.json beside this file; regenerate it after a
// PostgreSQL major upgrade with `node scripts/migrations/pg-builtins.ts` (starts a throwaway
// embedded server). A test compares the file with the test server's catalog.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type pg from "pg";

export const BUILTINS_FILE = resolve(import.meta.dirname, "pg-builtins.json");

export interface Builtins {
  types: string[];
  functions: string[];
}

/** Base, domain, enum, range, multirange and pseudo types of pg_catalog (not catalog row types or arrays). */
export async function readBuiltins(client: pg.ClientBase): Promise<Builtins> {
  const types = await client.query<{ name: string }>(
    `SELECT DISTINCT typname AS name FROM pg_catalog.pg_type
      WHERE typnamespace = 'pg_catalog'::regnamespace AND typrelid = 0 AND NOT (typcategory = 'A' AND typname LIKE '\\_%')
      ORDER BY 1`,
  );
  const functions = await client.query<{ name: string }>(
    "SELECT DISTINCT proname AS name FROM pg_catalog.pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1",
  );
  return { types: types.rows.map((r) => r.name), functions: functions.rows.map((r) => r.name) };
}

async function main(): Promise<void> {
  const { default: pgModule } = await import("pg");
  const { startEmbeddedPostgres } = await import("../local/postgres.ts");
  const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-builtins-"));
  const server = await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true, database: "builtins" });
  try {
    const client = new pgModule.Client({ connectionString: server.url });
    await client.connect();
    const builtins = await readBuiltins(client);
    await client.end();
    await writeFile(BUILTINS_FILE, `${JSON.stringify(builtins, null, 0).replaceAll('","', '",\n"')}\n`);
    console.log(`${BUILTINS_FILE}: ${builtins.types.length} types, ${builtins.functions.length} functions`);
  } finally {
    await server.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

if (import.meta.filename === process.argv[1]) await main();
