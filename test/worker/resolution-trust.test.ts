// Only what the resolution produced can become a tenant database: cache entries are validated when
// read (a malformed one is ignored, logged, and the catalog asked), and the benchmark-only
// TENANT_RESOLUTION does nothing outside local mode.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { clearMemoryCache, putRawMemoryEntry, resolutionStats } from "../../src/tenancy/resolve.ts";
import { adminToken, errorCode, request, schemaOf } from "./helpers.ts";

afterEach(() => vi.restoreAllMocks());

const KVCHECK = "kvcheck.test";

describe("cache entries are validated when read", () => {
  const malformed: Array<[string, string]> = [
    ["not JSON", "{tenant:"],
    ["a schema outside the tenant pattern", JSON.stringify({ tenant: { id: 1, slug: "kvcheck", name: "x", schema: "public", status: "active" } })],
    ["an injected schema name", JSON.stringify({ tenant: { id: 1, slug: "kvcheck", name: "x", schema: 'tenant_x"; drop schema shared; --', status: "active" } })],
    ["the catalog's schema", JSON.stringify({ tenant: { id: 1, slug: "kvcheck", name: "x", schema: "shared", status: "active" } })],
    ["a missing status", JSON.stringify({ tenant: { id: 1, slug: "kvcheck", name: "x", schema: "tenant_abcdefghijkl" } })],
    ["an unknown status", JSON.stringify({ tenant: { id: 1, slug: "kvcheck", name: "x", schema: "tenant_abcdefghijkl", status: "owner" } })],
    ["a string", JSON.stringify("tenant_abcdefghijkl")],
  ];
  for (const [what, value] of malformed) {
    it(`ignores a KV entry with ${what}, logs it, and answers from the catalog`, async () => {
      const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
      await env.TENANT_CACHE.put(hostCacheKey(KVCHECK), value);
      const before = resolutionStats.catalogQueries;
      const res = await request(KVCHECK, { token: await adminToken(KVCHECK), path: "/users" });
      expect(res.status).toBe(200);
      expect((await request(KVCHECK, { path: "/tenant" })).status).toBe(200);
      expect(resolutionStats.catalogQueries).toBeGreaterThan(before);
      expect(warn.mock.calls.map((c) => c.join(" ")).join("\n")).toMatch(/tenant_cache_entry_ignored.*kvcheck\.test/);
      // The catalog's answer replaced it.
      const fixed = await env.TENANT_CACHE.get<{ tenant: { schema: string } }>(hostCacheKey(KVCHECK), "json");
      expect(fixed?.tenant.schema).toBe(await schemaOf("kvcheck"));
      clearMemoryCache();
    });
  }

  it("ignores a malformed entry in isolate memory and asks again", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    putRawMemoryEntry(KVCHECK, { id: 1, slug: "kvcheck", name: "x", schema: "pg_catalog", status: "active" });
    const res = await request(KVCHECK, { token: await adminToken(KVCHECK), path: "/users" });
    expect(res.status).toBe(200);
    expect(warn.mock.calls.map((c) => c.join(" ")).join("\n")).toMatch(/tenant_cache_entry_ignored.*memory/);
  });
});

describe("TENANT_RESOLUTION (benchmarks only)", () => {
  it("is ignored, with a warning, when the Worker is not in local mode", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const schema = await schemaOf("acme");
    const bindings = { ...env, LOCAL_SQL_ENDPOINT: undefined, TENANT_RESOLUTION: `fixed:${schema}` };
    // An unknown host would be acme's in fixed mode; outside local mode it stays unknown.
    const res = await request(`nobody-${Date.now()}.test`, { bindings });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("tenant_not_found");
    expect(warn.mock.calls.map((c) => c.join(" ")).join("\n")).toMatch(/TENANT_RESOLUTION=fixed:.* is ignored/);
  });

  it("takes a schema name, checked against the strict pattern, not a slug", async () => {
    const schema = await schemaOf("acme");
    const fixed = await request(`anything-${Date.now()}.test`, { bindings: { ...env, TENANT_RESOLUTION: `fixed:${schema}` }, path: "/tenant" });
    expect(fixed.status).toBe(200);
    expect(await fixed.json()).toMatchObject({ slug: "fixed" });
    for (const bad of ["fixed:acme", "fixed:public", 'fixed:tenant_x"y', "fixed:"]) {
      const res = await request("acme.test", { bindings: { ...env, TENANT_RESOLUTION: bad } });
      expect(res.status).toBe(500);
      const body = await res.json<{ error: { code: string; message: string } }>();
      expect(body.error.code).toBe("misconfigured");
      expect(body.error.message).toContain("fixed:<schema>");
    }
  });
});
