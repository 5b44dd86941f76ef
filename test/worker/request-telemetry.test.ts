// Issue: "which tenant is slow / erroring / using the database most?" Every request logs one JSON
// line (request id, tenant, route pattern, status, duration, database time and round trips, where
// the tenant was found, error code) and writes one Analytics Engine data point; neither carries an
// email, a password, its hash or the connection string.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { RequestLogLine } from "../../src/telemetry.ts";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { clearMemoryCache } from "../../src/tenancy/resolve.ts";
import { adminToken, newClientIp, ownerSql, request } from "./helpers.ts";

let output: string[] = [];
beforeEach(() => {
  output = [];
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      output.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a) ?? String(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

function requestLines(): RequestLogLine[] {
  return output.flatMap((text) => {
    try {
      const line = JSON.parse(text) as { event?: string };
      return line.event === "request" ? [line as RequestLogLine] : [];
    } catch {
      return [];
    }
  });
}

/**
 * A typed in-memory Analytics Engine dataset, for tests only: miniflare's REQUEST_METRICS binding
 * accepts writeDataPoint but offers no way to read the points back.
 */
function recordingDataset(): AnalyticsEngineDataset & { points: AnalyticsEngineDataPoint[] } {
  const points: AnalyticsEngineDataPoint[] = [];
  return { points, writeDataPoint: (point?: AnalyticsEngineDataPoint) => void points.push(point ?? {}) };
}

const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

describe("one log line and one data point per request", () => {
  it("tags a mixed run with tenant, route pattern, status, timings and errors, and never logs secrets", async () => {
    expect((await request("acme.test")).status).toBe(200); // acme now in this isolate's memory
    const token = await adminToken("api.test");
    output = [];
    const metrics = recordingDataset();
    const bindings = { ...env, REQUEST_METRICS: metrics };
    const email = `telemetry-${unique()}@example.com`;
    const password = `pw-${unique()}-secret`;
    const answers: number[] = [];
    const send = async (host: string, path: string, method = "GET", body?: unknown) => {
      const res = await request(host, { path, method, body, bindings, token: host === "api.test" && method === "GET" ? token : undefined });
      answers.push(res.status);
      return res;
    };
    const created = await send("api.test", "/users", "POST", { email, password });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };
    expect((await send("api.test", `/users/${id}`)).status).toBe(200);
    expect((await send("api.test", "/users/987654321")).status).toBe(404);
    expect((await send("api.test", "/users", "POST", { email: "not-an-email", password })).status).toBe(400);
    expect((await send("acme.test", "/tenant")).status).toBe(200);
    expect((await send(`nobody-${unique()}.test`, "/users/1")).status).toBe(403);

    const lines = requestLines();
    expect(lines.map((l) => l.status)).toEqual(answers);
    for (const line of lines) {
      expect(line.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(line.durationMs).toBeGreaterThanOrEqual(0);
      expect(line.dbMs).toBeGreaterThanOrEqual(0);
      expect(["memory", "kv", "catalog"]).toContain(line.resolution);
    }
    const [post, get, missing, invalid, tenantInfo, unknownHost] = lines;
    expect(post).toMatchObject({ method: "POST", route: "/users", status: 201, tenant: "api", error: null });
    expect(post!.schema).toMatch(/^tenant_/);
    expect(post!.dbQueries).toBeGreaterThanOrEqual(1);
    // The route pattern, never the path with the user's id in it.
    expect(get).toMatchObject({ method: "GET", route: "/users/:userId", status: 200, tenant: "api", resolution: "memory" });
    expect(get!.dbQueries).toBeGreaterThanOrEqual(1); // the user (and the token's user, when auth reads it)
    expect(missing).toMatchObject({ route: "/users/:userId", status: 404, error: "user_not_found" });
    expect(invalid).toMatchObject({ route: "/users", status: 400, error: "validation_error", dbQueries: 0 });
    // /tenant touches the tenant's tables once (so a deleted tenant answers as on every route).
    expect(tenantInfo).toMatchObject({ route: "/tenant", status: 200, tenant: "acme", resolution: "memory", dbQueries: 1 });
    expect(unknownHost).toMatchObject({ status: 403, error: "tenant_not_found", tenant: null, schema: null, resolution: "catalog" });
    expect(unknownHost!.dbQueries).toBe(1); // the catalog lookup

    // The same facts as data points: the schema as the index.
    expect(metrics.points).toHaveLength(answers.length);
    expect(metrics.points[1]).toEqual({
      indexes: [get!.schema],
      blobs: ["api", "/users/:userId", "GET", "2xx", "memory", ""],
      doubles: [200, get!.durationMs, get!.dbMs, get!.dbQueries],
    });
    expect(metrics.points[5]!.blobs).toEqual(["", "/users/:userId", "GET", "4xx", "catalog", "tenant_not_found"]);

    const everything = output.join("\n");
    expect(everything).not.toContain(email);
    expect(everything).not.toContain(password);
    expect(everything).not.toContain(token);
    expect(everything).not.toMatch(/pbkdf2/i); // the stored hash's prefix
    expect(everything).not.toContain("postgres://");
    expect(everything).not.toContain("postgresql://");
  });

  it("logs a database failure with its SQLSTATE and the request id, not the statement's values", async () => {
    const email = `dupe-${unique()}@example.com`;
    expect((await request("api.test", { path: "/users", method: "POST", body: { email, password: "long enough" } })).status).toBe(201);
    output = [];
    const again = await request("api.test", { path: "/users", method: "POST", body: { email, password: "long enough" } });
    expect(again.status).toBe(409);
    const [line] = requestLines();
    expect(line).toMatchObject({ status: 409, error: "email_taken", tenant: "api" });
    expect(output.join("\n")).not.toContain(email);
  });

  it("counts the requests of a tenant against its tier's limit: 429 tenant_rate_limited with Retry-After", async () => {
    // A real Rate Limiting binding with a small limit (vitest config: TEST_TENANT_LIMITER_5, 5 per 60 s).
    const bindings = { ...env, TENANT_LIMITER: env.TEST_TENANT_LIMITER_5 };
    // The limiter's windows are aligned to the clock: start early in one so all requests fall in it.
    const into = Date.now() % 60_000;
    if (into > 45_000) await new Promise((r) => setTimeout(r, 60_000 - into + 100));
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await request("acme.test", { bindings, headers: { "CF-Connecting-IP": newClientIp() } })).status);
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(5);
    expect(statuses.slice(-2)).toEqual([429, 429]);
    const limited = await request("acme.test", { bindings });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).toBe("10");
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe("tenant_rate_limited");
    // Another tenant has its own count.
    expect((await request("globex.test", { bindings })).status).toBe(200);
    expect(requestLines().at(-2)).toMatchObject({ status: 429, error: "tenant_rate_limited", tenant: "acme" });
  });

  it("counts a high-tier tenant (a catalog column) against TENANT_LIMITER_HIGH instead", async () => {
    await ownerSql().query("UPDATE shared.tenants SET rate_limit_tier = 'high' WHERE slug = 'premium'");
    clearMemoryCache();
    await env.TENANT_CACHE.delete(hostCacheKey("premium.test"));
    // The high tier's binding is the small one here, the standard tier's the usual one.
    const bindings = { ...env, TENANT_LIMITER_HIGH: env.TEST_TENANT_LIMITER_5 };
    const into = Date.now() % 60_000;
    if (into > 45_000) await new Promise((r) => setTimeout(r, 60_000 - into + 100));
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await request("premium.test", { bindings })).status);
    expect(statuses.slice(-2)).toEqual([429, 429]);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    // A standard tenant with the same bindings is not limited by the high tier's binding.
    for (let i = 0; i < 8; i++) expect((await request("hooli.test", { bindings })).status).toBe(200);
  });
});
