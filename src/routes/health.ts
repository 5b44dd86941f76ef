import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { catalogDatabase } from "../db/client.ts";
import type { AppEnv } from "../env.ts";

/** Proves the whole path: Worker -> neon() over HTTP -> PostgreSQL, through drizzle. No tenant needed. */
export const healthRoutes = new Hono<AppEnv>().get("/health", async (c) => {
  const result = await catalogDatabase(c.var.config).execute<{ database: string; server_version: string; now: string }>(
    sql`SELECT current_database() AS database, current_setting('server_version') AS server_version, now()::text AS now`,
  );
  const row = result.rows[0]!;
  return c.json({
    status: "ok",
    database: { name: row.database, serverVersion: row.server_version, time: row.now },
  });
});
