import { checkMaintenance } from "../tenancy/maintenance.ts";
import type { Context } from "hono";
import { sql } from "drizzle-orm";
import { createMiddleware } from "hono/factory";
import { bindTenant, catalogDatabase } from "../db/client.ts";
import type { AppEnv, WorkerConfig } from "../env.ts";
import { AppError, classifyDatabaseError, databaseUnavailable, errorResponse, logFailure, onError } from "../errors/index.ts";
import { LruTtlCache } from "../tenancy/cache.ts";
import { normalizeHost } from "../tenancy/naming.ts";
import { evictHost, fixedTenant, resolveFromCatalog, resolveTenant, type Resolution, type ResolvedTenant } from "../tenancy/resolve.ts";

/** Seconds a client over its new-host lookup limit is told to wait (the limiter's period). */
export const RATE_LIMIT_RETRY_AFTER_SECONDS = 60;
/**
 * How long this isolate remembers that the limiter refused a client, and refuses that client's
 * next lookups itself without asking the limiter again (locally the binding costs more CPU than the
 * rest of the refusal). A plain value per client, never a promise; at most this long past the
 * limiter's own window. Hosts known in memory or KV are still served to that client.
 */
export const LIMITED_CLIENT_MEMORY_MS = 10_000;
const limitedClients = new LruTtlCache<string, true>(1_000);

/** Seconds a client is told to wait while the tenant's schema is behind the deployed code. */
export const SCHEMA_OUTDATED_RETRY_AFTER_SECONDS = 30;

/**
 * The request's host: from the URL (in workerd a Request built from a URL carries no Host header),
 * else the Host header.
 */
function requestHost(request: Request): string | undefined {
  try {
    return new URL(request.url).host || request.headers.get("Host") || undefined;
  } catch {
    return request.headers.get("Host") ?? undefined;
  }
}

/** Who is asking, for per-client limits: Cloudflare sets CF-Connecting-IP on every request. */
export function clientKey(request: Request): string {
  return request.headers.get("CF-Connecting-IP") ?? "no-client-ip";
}

function waitUntilOf(c: Context<AppEnv>): (p: Promise<unknown>) => void {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return (p) => void p.catch(() => {});
  }
}

async function resolve(c: Context<AppEnv>, host: string, config: WorkerConfig): Promise<Resolution> {
  const mode = config.TENANT_RESOLUTION;
  if (mode.startsWith("fixed:")) return { kind: "tenant", tenant: fixedTenant(mode.slice("fixed:".length)), source: "fixed" };
  const db = catalogDatabase(config);
  if (mode === "catalog") return resolveFromCatalog(host, db);
  const limiter = c.env.NEW_HOST_LIMITER;
  const client = clientKey(c.req.raw);
  return resolveTenant(host, {
    kv: c.env.TENANT_CACHE,
    db,
    waitUntil: waitUntilOf(c),
    ttls: {
      memorySeconds: config.TENANT_MEMORY_TTL_SECONDS,
      negativeMemorySeconds: config.TENANT_NEGATIVE_TTL_SECONDS,
      kvSeconds: config.TENANT_KV_TTL_SECONDS,
    },
    async allowCatalogLookup() {
      if (!limiter) return true;
      if (limitedClients.get(client)) return false;
      const success = await limiterAllows(limiter, client, "new_host");
      if (!success) limitedClients.set(client, true, LIMITED_CLIENT_MEMORY_MS);
      return success;
    },
  });
}

/** Seconds a tenant over its request limit is told to wait (the TENANT_LIMITER bindings' period). */
export const TENANT_LIMIT_RETRY_AFTER_SECONDS = 10;

/**
 * The per-tenant request limit (noisy neighbours): every request of a tenant counts against the
 * Rate Limiting binding of its tier, keyed by its schema (its identity; kept across renames).
 * No binding, or a failing one: allowed (serving matters more; the failure is logged).
 */
async function withinTenantLimit(c: Context<AppEnv>, tenant: ResolvedTenant): Promise<boolean> {
  const limiter = tenant.rateLimitTier === "high" ? c.env.TENANT_LIMITER_HIGH : c.env.TENANT_LIMITER;
  return !limiter || limiterAllows(limiter, tenant.schema, "tenant");
}

/**
 * One call of a Rate Limiting binding that fails open: these limits protect the database, and if
 * the binding itself fails, serving tenants matters more (the failure is logged).
 */
async function limiterAllows(limiter: RateLimit, key: string, name: string): Promise<boolean> {
  try {
    return (await limiter.limit({ key })).success;
  } catch (error) {
    console.warn(JSON.stringify({ event: "rate_limiter_failed", limiter: name, error: String(error) }));
    return true;
  }
}

/**
 * Resolves the request's Host to its tenant and puts the tenant and a Drizzle client bound to its
 * tables on the context. Handlers after it need no tenancy code, and have no other way to tenant data.
 */
export function tenancy() {
  return createMiddleware<AppEnv>(async function tenantMiddleware(c, next) {
    const host = normalizeHost(requestHost(c.req.raw));
    if (!host) {
      throw new AppError("invalid_host", "The request's host is not a valid DNS name.");
    }
    const resolution = await resolve(c, host, c.var.config);
    const telemetry = c.get("telemetry");
    if (telemetry) telemetry.resolution = resolution.kind === "rate_limited" ? "limited" : resolution.source;
    if (resolution.kind === "rate_limited") {
      throw new AppError(
        "rate_limited",
        `Too many requests for hosts this service does not know yet; try again in ${RATE_LIMIT_RETRY_AFTER_SECONDS} seconds.`,
        { headers: { "Retry-After": String(RATE_LIMIT_RETRY_AFTER_SECONDS) } },
      );
    }
    if (resolution.kind === "unknown") throw new AppError("tenant_not_found", `No tenant answers at ${host}.`);
    const { tenant } = resolution;
    c.set("tenant", tenant); // for the request's log line, also when refused below
    if (tenant.status === "suspended") {
      throw new AppError("tenant_suspended", `The tenant at ${host} is suspended.`);
    }
    const bypassRedirect = await checkMaintenance(c, tenant);
    if (bypassRedirect) return bypassRedirect;
    if (c.var.config.REQUEST_TELEMETRY !== "off" && !(await withinTenantLimit(c, tenant))) {
      throw new AppError(
        "tenant_rate_limited",
        `This tenant is receiving more requests than its plan allows; try again in ${TENANT_LIMIT_RETRY_AFTER_SECONDS} seconds.`,
        { headers: { "Retry-After": String(TENANT_LIMIT_RETRY_AFTER_SECONDS) } },
      );
    }
    const { db, tables } = bindTenant(c.var.config, tenant);
    c.set("db", db);
    c.set("tables", tables);
    await next();
  });
}

async function schemaExists(config: WorkerConfig, schema: string): Promise<boolean> {
  const result = await catalogDatabase(config).execute<{ present: boolean }>(
    sql`SELECT to_regnamespace(${schema}) IS NOT NULL AS present`,
  );
  return result.rows[0]?.present === true;
}

/**
 * The app's error handler. A query of a tenant route that names something missing is either a
 * tenant whose schema is gone (removed while caches still held it: answered as unknown, and the
 * host is evicted from memory and KV) or code deployed before its migration reached this tenant
 * (503 tenant_schema_outdated, nothing evicted). Which one, the database says: does the schema exist?
 */
export async function answerError(error: Error, c: Context<AppEnv>): Promise<Response> {
  const tenant = c.get("tenant");
  if (!tenant || error instanceof AppError || classifyDatabaseError(error) !== "undefined_object") return onError(error, c);
  let present: boolean;
  try {
    present = await schemaExists(c.var.config, tenant.schema);
  } catch (checkError) {
    if (classifyDatabaseError(checkError) === "unavailable") {
      logFailure(c, "database_unavailable", checkError);
      return errorResponse(c, databaseUnavailable());
    }
    return onError(checkError as Error, c);
  }
  if (!present) {
    const host = normalizeHost(requestHost(c.req.raw));
    if (host) waitUntilOf(c)(evictHost(host, c.env.TENANT_CACHE));
    console.warn(JSON.stringify({ event: "tenant_schema_gone", requestId: c.get("requestId"), tenant: tenant.slug, schema: tenant.schema, host }));
    return errorResponse(c, new AppError("tenant_not_found", "No tenant answers at this host."));
  }
  logFailure(c, "tenant_schema_outdated", error, { tenant: tenant.slug, schema: tenant.schema });
  return errorResponse(
    c,
    new AppError(
      "tenant_schema_outdated",
      "This tenant's database has not been migrated to what this version of the service needs yet; try again shortly.",
      { headers: { "Retry-After": String(SCHEMA_OUTDATED_RETRY_AFTER_SECONDS) } },
    ),
  );
}
