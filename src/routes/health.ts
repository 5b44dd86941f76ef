import { sql } from "drizzle-orm";
import { Hono } from "hono";
import { catalogDatabase } from "../db/client.ts";
import type { AppEnv } from "../env.ts";
import { normalizeHost } from "../tenancy/naming.ts";

/** How long an isolate reuses its last health answer. */
export const HEALTH_CACHE_SECONDS = 5;

type HealthBody = { status: "ok"; database: { name: string; time: string } };
// A settled plain value, never a promise: concurrent requests never wait on each other's I/O.
const recent = new Map<string, { body: HealthBody; expiresAt: number }>();

/**
 * Proves the whole path (Worker -> neon() over HTTP -> PostgreSQL, through drizzle), on the one host
 * HEALTH_HOST names, at most once per HEALTH_CACHE_SECONDS per isolate. On any other host /health is
 * an ordinary path of the tenant API.
 */
export const healthRoutes = new Hono<AppEnv>().get("/health", async (c, next) => {
  const { HEALTH_HOST, DATABASE_URL, LOCAL_SQL_ENDPOINT } = c.var.config;
  if (!HEALTH_HOST || normalizeHost(new URL(c.req.url).host) !== HEALTH_HOST) return next();
  const key = `${DATABASE_URL}\n${LOCAL_SQL_ENDPOINT ?? ""}`;
  const cached = recent.get(key);
  if (cached && cached.expiresAt > Date.now()) return c.json(cached.body);
  const result = await catalogDatabase(c.var.config).execute<{ database: string; now: string }>(
    sql`SELECT current_database() AS database, now()::text AS now`,
  );
  const row = result.rows[0]!;
  const body: HealthBody = { status: "ok", database: { name: row.database, time: row.now } };
  recent.set(key, { body, expiresAt: Date.now() + HEALTH_CACHE_SECONDS * 1000 });
  return c.json(body);
});
