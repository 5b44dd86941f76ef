// Host -> tenant answers come from isolate memory, then KV, then one catalog query; changes reach
// requests once the caches are purged; a tenant dropped while cached answers as unknown.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { resolutionStats } from "../../src/tenancy/resolve.ts";
import { adminToken, errorCode, ident, ownerSql, request, schemaOf, unreachableDatabase } from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// The test bindings (vitest.config.ts) set 2 s for known hosts and 1 s for unknown ones in memory.
const MEMORY_TTL_MS = 2_000;
const NEGATIVE_TTL_MS = 1_000;

const sql = ownerSql;

async function kvExpiration(host: string): Promise<number | undefined> {
  const { keys } = await env.TENANT_CACHE.list({ prefix: hostCacheKey(host) });
  return keys.find((k) => k.name === hostCacheKey(host))?.expiration;
}

describe("tenant resolution caching", () => {
  it("makes no catalog query for a host once it has been resolved, and keeps it in KV with a TTL", async () => {
    const first = await request("cached.test");
    expect(first.status).toBe(200);
    const catalogAfterFirst = resolutionStats.catalogQueries;

    for (let i = 0; i < 20; i++) expect((await request("cached.test")).status).toBe(200);
    expect(resolutionStats.catalogQueries).toBe(catalogAfterFirst);

    const expiration = await kvExpiration("cached.test");
    const now = Date.now() / 1000;
    expect(expiration).toBeGreaterThan(now + 250); // TENANT_KV_TTL_SECONDS defaults to 300
    expect(expiration).toBeLessThanOrEqual(now + 301);

    // Past the isolate's memory TTL, KV answers: still no catalog query.
    await sleep(MEMORY_TTL_MS + 200);
    const kvReads = resolutionStats.kvReads;
    expect((await request("cached.test")).status).toBe(200);
    expect(resolutionStats.kvReads).toBe(kvReads + 1);
    expect(resolutionStats.catalogQueries).toBe(catalogAfterFirst);
  });

  it("remembers an unknown host in isolate memory only: one lookup per negative TTL, nothing written to KV", async () => {
    const host = `ghost-${Date.now()}.test`;
    const before = resolutionStats.catalogQueries;
    const kvWrites = resolutionStats.kvWrites;
    const answers: Response[] = [];
    for (let i = 0; i < 20; i++) answers.push(await request(host));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(403));
    expect(resolutionStats.catalogQueries).toBe(before + 1);
    expect(resolutionStats.kvWrites).toBe(kvWrites);
    expect(await kvExpiration(host)).toBeUndefined(); // no KV entry for an unknown host

    await sleep(NEGATIVE_TTL_MS + 200);
    expect((await request(host)).status).toBe(403);
    expect(resolutionStats.catalogQueries).toBe(before + 2); // memory expired; KV never knew it
    expect(await kvExpiration(host)).toBeUndefined();
  });

  it("stops resolving a removed host once it is purged from KV (what the tenants CLI does)", async () => {
    expect((await request("moving-away.test")).status).toBe(200);
    await sql().query("DELETE FROM shared.tenant_hosts WHERE host = $1", ["moving-away.test"]);

    // Until purged, caches may answer with the old tenant: that staleness is what the TTLs bound.
    expect((await request("moving-away.test")).status).toBe(200);

    await env.TENANT_CACHE.delete(hostCacheKey("moving-away.test"));
    await sleep(MEMORY_TTL_MS + 200);
    const res = await request("moving-away.test");
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("tenant_not_found");
    expect((await request("movable.test")).status).toBe(200); // the tenant's other host still works
  });

  it("answers a tenant dropped while cached as unknown, and evicts it from memory and KV", async () => {
    expect((await request("doomed.test", { token: await adminToken("doomed.test"), path: "/users" })).status).toBe(200);
    expect(await kvExpiration("doomed.test")).toBeDefined();
    const db = sql();
    await db.query(`DROP SCHEMA ${ident(await schemaOf("doomed"))} CASCADE`);
    await db.query("DELETE FROM shared.tenants WHERE slug = 'doomed'");

    const res = await request("doomed.test", { token: await adminToken("doomed.test"), path: "/users" });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("tenant_not_found");
    expect(await kvExpiration("doomed.test")).toBeUndefined();

    const before = resolutionStats.catalogQueries;
    const again = await request("doomed.test", { token: await adminToken("doomed.test"), path: "/users" });
    expect(again.status).toBe(403);
    expect(resolutionStats.catalogQueries).toBe(before + 1); // memory was evicted too: asked the catalog
  });
});

describe("database unreachable", () => {
  it("answers 503 database_unavailable with Retry-After on tenant routes, then recovers", async () => {
    const down = await request("umbrella.test", {
      path: "/users",
      bindings: unreachableDatabase(),
    });
    expect(down.status).toBe(503);
    expect(Number(down.headers.get("Retry-After"))).toBeGreaterThan(0);
    expect(await errorCode(down)).toBe("database_unavailable");

    // /tenant reads the tenant's schema too (signing a user in here would add a user to umbrella,
    // whose user ids test/worker/tenancy.security.test.ts counts).
    const up = await request("umbrella.test", { path: "/tenant" });
    expect(up.status).toBe(200);
  });
});
