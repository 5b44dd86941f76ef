import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { catalogDatabase, tenantDatabase } from "../db/client.ts";
import type { AppEnv, WorkerConfig } from "../env.ts";
import { AppError, isMissingSchema } from "../errors/index.ts";
import { isValidSchemaName, normalizeHost } from "../tenancy/naming.ts";
import { evictHost, lookupHostInCatalog, resolveTenant, type TenantRecord } from "../tenancy/resolve.ts";

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

async function findTenant(
  host: string,
  config: WorkerConfig,
  kv: KVNamespace | undefined,
  waitUntil: (p: Promise<unknown>) => void,
): Promise<TenantRecord | null> {
  const mode = config.TENANT_RESOLUTION;
  if (mode.startsWith("fixed:")) {
    // Benchmarks only: `fixed:<schema name>`, as the catalog records it.
    const schema = mode.slice("fixed:".length);
    if (!isValidSchemaName(schema)) throw new AppError("misconfigured", `TENANT_RESOLUTION fixed:${schema} is not a tenant schema name.`);
    return { id: 0, slug: schema, name: schema, schema, status: "active" };
  }
  const db = catalogDatabase(config);
  if (mode === "catalog") return lookupHostInCatalog(db, host);
  return resolveTenant(host, {
    kv,
    db,
    waitUntil,
    ttls: {
      memorySeconds: config.TENANT_MEMORY_TTL_SECONDS,
      negativeMemorySeconds: config.TENANT_NEGATIVE_TTL_SECONDS,
      kvSeconds: config.TENANT_KV_TTL_SECONDS,
      negativeKvSeconds: config.TENANT_KV_NEGATIVE_TTL_SECONDS,
    },
  });
}

function waitUntilOf(c: Context<AppEnv>): (p: Promise<unknown>) => void {
  try {
    const ctx = c.executionCtx;
    return (p) => ctx.waitUntil(p);
  } catch {
    return (p) => void p;
  }
}

/**
 * Resolves the request's Host to its tenant and puts the tenant and a Drizzle client bound to its
 * schema on the context. Handlers after it need no tenancy code, and have no other way to tenant data.
 */
export function tenancy() {
  return createMiddleware<AppEnv>(async function tenantMiddleware(c, next) {
    const raw = requestHost(c.req.raw);
    const host = normalizeHost(raw);
    if (!host) {
      throw new AppError("invalid_host", "The request's host is not a valid DNS name.");
    }
    const kv = c.env.TENANT_CACHE;
    const waitUntil = waitUntilOf(c);
    const tenant = await findTenant(host, c.var.config, kv, waitUntil);
    if (!tenant) throw new AppError("tenant_not_found", `No tenant answers at ${host}.`);
    if (tenant.status === "suspended") {
      throw new AppError("tenant_suspended", `The tenant at ${host} is suspended.`);
    }
    const { db, tables } = tenantDatabase(c.var.config, tenant.schema);
    c.set("tenant", tenant);
    c.set("db", db);
    c.set("tables", tables);
    await next();
    // The tenant was removed while caches still held it: onError answers as for an unknown host;
    // forget the host here so the next request asks the catalog.
    if (c.error && isMissingSchema(c.error, tenant.schema)) waitUntil(evictHost(host, kv));
  });
}
