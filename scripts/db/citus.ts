// Citus, detected from the server: the lifecycle commands behave as on plain PostgreSQL unless the
// database has the `citus` extension, and then adapt (docs/citus.md). No flag is needed by users.
import type pg from "pg";

/** The Citus extension's version in the connected database, or undefined on plain PostgreSQL. */
export async function citusVersion(client: pg.ClientBase): Promise<string | undefined> {
  const result = await client.query<{ extversion: string }>("SELECT extversion FROM pg_extension WHERE extname = 'citus'");
  return result.rows[0]?.extversion;
}

/** True when the connected database is a Citus coordinator (the extension is installed in it). */
export async function isCitus(client: pg.ClientBase): Promise<boolean> {
  return (await citusVersion(client)) !== undefined;
}
