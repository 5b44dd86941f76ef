// A real PostgreSQL session for the Node scripts (migrations need interactive transactions).
import { resolve } from "node:path";
import pg from "pg";
import { parseLocalConfig } from "../local/config.ts";
import { citusPorts, embeddedDatabaseUrl, localDatabaseUrl, readEmbeddedCredentials, serverRunningOn } from "../local/defaults.ts";

/**
 * DATABASE_URL from the environment or `.env`, read by the same rules as `npm run db`; without
 * it, the database that `npm run db` / `npm run dev` run (on LOCAL_PG_PORT, with the password kept in
 * LOCAL_DATA_DIR), or the local Citus cluster's coordinator when `--citus` runs it and the single
 * server does not run.
 */
export function databaseUrlFromEnv(): { url: string; local: boolean } {
  const config = parseLocalConfig();
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, local: false };
  if (!serverRunningOn(config.LOCAL_DATA_DIR) && serverRunningOn(resolve(config.LOCAL_CITUS_DATA_DIR, "coordinator"))) {
    const credentials = readEmbeddedCredentials(config.LOCAL_CITUS_DATA_DIR);
    if (credentials) return { url: embeddedDatabaseUrl(citusPorts(config)[0]!, credentials), local: true };
  }
  return { url: localDatabaseUrl(config.LOCAL_DATA_DIR, config.LOCAL_PG_PORT), local: true };
}

export class ConnectionError extends Error {}

export async function connect(url: string, local = false): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: "edge-tenants" });
  client.on("error", () => {});
  try {
    await client.connect();
  } catch (error) {
    const where = (() => {
      try {
        const u = new URL(url);
        return `${u.hostname}:${u.port || 5432}`;
      } catch {
        return "DATABASE_URL";
      }
    })();
    const hint = local
      ? "DATABASE_URL is not set, so the local database was tried: start it with `npm run db` (or `npm run dev`), or set DATABASE_URL"
      : "check DATABASE_URL";
    throw new ConnectionError(`cannot connect to PostgreSQL at ${where}: ${(error as Error).message}; ${hint}`);
  }
  return client;
}

/** BEGIN, `work`, COMMIT; ROLLBACK and rethrow on any error, so nothing of it is kept. */
export async function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query("BEGIN");
  try {
    const result = await work();
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
