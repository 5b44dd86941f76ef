// Code deployed before its migration (a table or column missing in an existing schema) is not a
// deleted tenant: 503 tenant_schema_outdated, nothing evicted. A schema that is gone is: 403
// tenant_not_found, evicted from memory and KV, on every route including /tenant.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { resolutionStats } from "../../src/tenancy/resolve.ts";
import { adminToken, errorCode, ident, ownerSql, request, schemaOf } from "./helpers.ts";

afterEach(() => vi.restoreAllMocks());

async function inKv(host: string): Promise<boolean> {
  return (await env.TENANT_CACHE.get(hostCacheKey(host))) !== null;
}

describe("a tenant schema behind the deployed code", () => {
  it("answers 503 tenant_schema_outdated with Retry-After for a missing column, logs tenant and request id, evicts nothing", async () => {
    const schema = ident(await schemaOf("outdated"));
    expect((await request("outdated.test", { token: await adminToken("outdated.test"), path: "/users" })).status).toBe(200);
    expect(await inKv("outdated.test")).toBe(true);
    const errors = vi.spyOn(console, "error");

    await ownerSql().query(`ALTER TABLE ${schema}.users RENAME COLUMN full_name TO full_name_old`);
    try {
      const catalogBefore = resolutionStats.catalogQueries;
      const res = await request("outdated.test", { token: await adminToken("outdated.test"), path: "/users" });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
      expect(await errorCode(res)).toBe("tenant_schema_outdated");
      const requestId = res.headers.get("X-Request-Id")!;
      const logged = errors.mock.calls.map((args) => args.join(" ")).find((line) => line.includes(requestId));
      expect(logged).toBeDefined();
      expect(JSON.parse(logged!)).toMatchObject({ event: "tenant_schema_outdated", tenant: "outdated", requestId, sqlstate: "42703" });

      // Nothing evicted: KV still has the host, and the next request needs no catalog lookup.
      expect(await inKv("outdated.test")).toBe(true);
      const again = await request("outdated.test", { token: await adminToken("outdated.test"), path: "/users" });
      expect(again.status).toBe(503);
      expect(resolutionStats.catalogQueries).toBe(catalogBefore); // memory still holds the host: no lookup
    } finally {
      await ownerSql().query(`ALTER TABLE ${schema}.users RENAME COLUMN full_name_old TO full_name`);
    }
    expect((await request("outdated.test", { token: await adminToken("outdated.test"), path: "/users" })).status).toBe(200);
  });

  it("answers 503 tenant_schema_outdated for a missing table, and the tenant's other routes keep working", async () => {
    const schema = ident(await schemaOf("outdated"));
    await ownerSql().query(`ALTER TABLE ${schema}.items RENAME TO items_old`);
    try {
      const res = await request("outdated.test", { token: await adminToken("outdated.test"), path: "/items" });
      expect(res.status).toBe(503);
      expect(await errorCode(res)).toBe("tenant_schema_outdated");
      expect(await inKv("outdated.test")).toBe(true);
      expect((await request("outdated.test", { path: "/tenant" })).status).toBe(200);
    } finally {
      await ownerSql().query(`ALTER TABLE ${schema}.items_old RENAME TO items`);
    }
    expect((await request("outdated.test", { token: await adminToken("outdated.test"), path: "/items" })).status).toBe(200);
  });
});

describe("a tenant whose schema is gone", () => {
  it("answers 403 tenant_not_found on /tenant as on data routes, and evicts the host from memory and KV", async () => {
    const schema = await schemaOf("vanishing");
    const token = await adminToken("vanishing.test");
    expect((await request("vanishing.test", { path: "/tenant" })).status).toBe(200);
    expect(await inKv("vanishing.test")).toBe(true);
    await ownerSql().query(`DROP SCHEMA ${ident(schema)} CASCADE`);

    // Caches still hold the tenant: /tenant must not answer 200 for it.
    const res = await request("vanishing.test", { path: "/tenant" });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("tenant_not_found");
    expect(await inKv("vanishing.test")).toBe(false);

    const before = resolutionStats.catalogQueries;
    const users = await request("vanishing.test", { token, path: "/users" });
    expect(users.status).toBe(403);
    expect(await errorCode(users)).toBe("tenant_not_found");
    expect(resolutionStats.catalogQueries).toBeGreaterThan(before); // memory was evicted: asked the catalog
  });
});

describe("responses carry the documented fields only", () => {
  it("a column added to a tenant table later does not leak into item or user responses", async () => {
    const schema = ident(await schemaOf("noted"));
    const created = await request("noted.test", { token: await adminToken("noted.test"), path: "/users", method: "POST", body: { email: "n@noted.test", password: "long enough" } });
    expect(created.status).toBe(201);
    const { id } = await created.json<{ id: number }>();
    expect((await request("noted.test", { token: await adminToken("noted.test"), path: `/users/${id}/items`, method: "POST", body: { title: "one" } })).status).toBe(201);
    await ownerSql().query(`ALTER TABLE ${schema}.items ADD COLUMN IF NOT EXISTS internal_notes text NOT NULL DEFAULT 'secret-note'`);
    await ownerSql().query(`ALTER TABLE ${schema}.users ADD COLUMN IF NOT EXISTS internal_notes text NOT NULL DEFAULT 'secret-note'`);

    const item = await request("noted.test", { token: await adminToken("noted.test"), path: `/users/${id}/items`, method: "POST", body: { title: "two" } });
    expect(item.status).toBe(201);
    for (const res of [item, await request("noted.test", { token: await adminToken("noted.test"), path: "/items" }), await request("noted.test", { token: await adminToken("noted.test"), path: `/users/${id}` }), await request("noted.test", { token: await adminToken("noted.test"), path: "/users" })]) {
      const text = await res.text();
      expect(res.status).toBeLessThan(300);
      expect(text).not.toContain("internal_notes");
      expect(text).not.toContain("internalNotes");
      expect(text).not.toContain("secret-note");
    }
  });
});
