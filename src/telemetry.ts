// One structured log line and one Analytics Engine data point per request, tagged with the tenant.
// The database time and query count come from the database client (src/db/client.ts), which finds
// the request it serves through Hono's context storage (AsyncLocalStorage: the nodejs_als flag).
// Nothing here holds I/O across requests: each request gets its own counters.
import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import { matchedRoutes } from "hono/route";
import type { AppEnv } from "./env.ts";
import type { ErrorCode } from "./errors/index.ts";
import type { ResolutionSource } from "./tenancy/resolve.ts";

export interface RequestTelemetry {
  /** Milliseconds spent waiting for the database (workerd's clock advances only on I/O). */
  dbMs: number;
  /**
   * Round trips to the database: one per query, batch or transaction sent over HTTP (neon-http);
   * with the Hyperdrive client, one per statement sent over the request's connection.
   */
  dbQueries: number;
  /** Where the tenant was found; "limited" when the new-host limit refused the lookup. */
  resolution?: ResolutionSource | "limited";
  /** The error code answered, if any. */
  errorCode?: ErrorCode;
}

/** The line logged for every request (Workers Logs keeps it as JSON, queryable by field). */
export interface RequestLogLine {
  event: "request";
  requestId: string;
  method: string;
  /** The route pattern that answered (e.g. /users/:id), never the path with its ids. */
  route: string;
  status: number;
  durationMs: number;
  dbMs: number;
  dbQueries: number;
  resolution: string | null;
  tenant: string | null;
  schema: string | null;
  error: ErrorCode | null;
}

/** The route pattern of the handler that answered: the last matched route that is not middleware. */
function routePattern(c: Context<AppEnv>): string {
  try {
    const handlers = matchedRoutes(c).filter((r) => r.method !== "ALL");
    return handlers.at(-1)?.path ?? "(no route)";
  } catch {
    return "(no route)";
  }
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

/** The counters of the request being served, when there is one (the driver's fetch asks). */
export function currentTelemetry(c: Context<AppEnv> | undefined): RequestTelemetry | undefined {
  try {
    return c?.get("telemetry");
  } catch {
    return undefined;
  }
}

/**
 * Times the request, then logs one JSON line and writes one data point to REQUEST_METRICS (when
 * bound). Runs outside the error handler, so error answers are logged too.
 */
export function requestTelemetry() {
  return createMiddleware<AppEnv>(async function requestTelemetryMiddleware(c, next) {
    const started = Date.now();
    const telemetry: RequestTelemetry = { dbMs: 0, dbQueries: 0 };
    c.set("telemetry", telemetry);
    await next();
    if (c.get("config")?.REQUEST_TELEMETRY === "off") return;
    const tenant = c.get("tenant");
    const line: RequestLogLine = {
      event: "request",
      requestId: c.get("requestId") ?? "",
      method: c.req.method,
      route: routePattern(c),
      status: c.res.status,
      durationMs: Date.now() - started,
      dbMs: telemetry.dbMs,
      dbQueries: telemetry.dbQueries,
      resolution: telemetry.resolution ?? null,
      tenant: tenant?.slug ?? null,
      schema: tenant?.schema ?? null,
      error: telemetry.errorCode ?? null,
    };
    console.log(JSON.stringify(line));
    const metrics = c.env.REQUEST_METRICS;
    if (!metrics) return;
    try {
      // Query with Analytics Engine's SQL API: index1 = schema (a tenant's identity, kept across
      // renames), blob1..6 = slug, route, method, status class, resolution, error code,
      // double1..4 = status, duration ms, database ms, database round trips. See docs/observability.md.
      metrics.writeDataPoint({
        indexes: [line.schema ?? ""],
        blobs: [line.tenant ?? "", line.route, line.method, statusClass(line.status), line.resolution ?? "", line.error ?? ""],
        doubles: [line.status, line.durationMs, line.dbMs, line.dbQueries],
      });
    } catch (error) {
      console.warn(JSON.stringify({ event: "metrics_write_failed", requestId: line.requestId, error: String(error) }));
    }
  });
}
