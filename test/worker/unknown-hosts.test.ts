// Unknown hosts cost almost nothing: remembered in isolate memory only (no KV writes), and one
// client's lookups of hosts not known yet are rate-limited (the NEW_HOST_LIMITER binding of
// wrangler.toml: 20 per 60 s window per CF-Connecting-IP); over the limit: 429 rate_limited with
// Retry-After, and no catalog query. Known tenants' traffic is never limited.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { clearMemoryCache, resolutionStats } from "../../src/tenancy/resolve.ts";
import { errorCode, newClientIp, request } from "./helpers.ts";

const LIMIT = 20;
const WINDOW_MS = 60_000;

describe("a client asking for many hosts nobody has", () => {
  it("gets 403 for the first 20 in a window, then 429 rate_limited with Retry-After and no catalog query", async () => {
    // The limiter's windows are aligned to the clock: start early in one so all 30 fall inside it.
    const into = Date.now() % WINDOW_MS;
    if (into > 45_000) await new Promise((r) => setTimeout(r, WINDOW_MS - into + 100));
    const client = newClientIp();
    const prefix = `flood-${Date.now().toString(36)}`;
    const catalogBefore = resolutionStats.catalogQueries;
    const kvWritesBefore = resolutionStats.kvWrites;
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const res = await request(`${prefix}-${i}.test`, { headers: { "CF-Connecting-IP": client } });
      statuses.push(res.status);
      const code = await errorCode(res);
      if (res.status === 429) {
        expect(code).toBe("rate_limited");
        expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
      } else {
        expect(code).toBe("tenant_not_found");
      }
    }
    expect(statuses.filter((s) => s === 403)).toHaveLength(LIMIT);
    expect(statuses.filter((s) => s === 429)).toHaveLength(30 - LIMIT);
    expect(resolutionStats.catalogQueries - catalogBefore).toBe(LIMIT); // none for the limited ones
    expect(resolutionStats.kvWrites).toBe(kvWritesBefore);
    const { keys } = await env.TENANT_CACHE.list({ prefix: hostCacheKey(prefix) });
    expect(keys).toEqual([]); // no KV entry for any unknown host

    // The same client still reaches a known tenant, and another client is not limited.
    expect((await request("acme.test", { headers: { "CF-Connecting-IP": newClientIp() } })).status).toBe(200);
    const known = await request("acme.test", { headers: { "CF-Connecting-IP": client } });
    expect(known.status).toBe(200);
    expect((await request(`${prefix}-other.test`, { headers: { "CF-Connecting-IP": newClientIp() } })).status).toBe(403);

    // A host this isolate has forgotten but KV still holds is known, not new: the limited client
    // gets it from KV, with no catalog query.
    clearMemoryCache();
    expect((await request("acme.test", { headers: { "CF-Connecting-IP": newClientIp() } })).status).toBe(200); // into KV
    clearMemoryCache();
    const catalogBeforeKnown = resolutionStats.catalogQueries;
    const fromKv = await request("acme.test", { headers: { "CF-Connecting-IP": client } });
    expect(fromKv.status).toBe(200);
    expect(((await fromKv.json()) as { slug: string }).slug).toBe("acme");
    expect(resolutionStats.catalogQueries).toBe(catalogBeforeKnown);
    // ... and is still refused for the next new host.
    expect((await request(`${prefix}-later.test`, { headers: { "CF-Connecting-IP": client } })).status).toBe(429);
  });

  it("a host already answered from memory is not looked up again, so it never counts against the limit", async () => {
    const client = newClientIp();
    const host = `again-${Date.now().toString(36)}.test`;
    expect((await request(host, { headers: { "CF-Connecting-IP": client } })).status).toBe(403);
    const before = resolutionStats.catalogQueries;
    for (let i = 0; i < 40; i++) expect((await request(host, { headers: { "CF-Connecting-IP": client } })).status).toBe(403);
    expect(resolutionStats.catalogQueries).toBe(before);
  });
});
