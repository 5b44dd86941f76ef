// Custom domains (Cloudflare for SaaS): the Worker serves a custom hostname only once Cloudflare
// reports it active. `tenants hosts add <slug> <host> --custom` records a new one as pending and
// `tenants hosts status` records what Cloudflare reports (test/lifecycle/tenants-cli.custom-domains.test.ts);
// here the catalog rows are written as those commands write them, through the owner's connection.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { errorCode, ownerSql, request } from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// vitest.config.ts: unknown hosts are remembered 1 s in memory, known ones 2 s.
const NEGATIVE_TTL_MS = 1_000;
const MEMORY_TTL_MS = 2_000;

const HOST = "shop.globex-customer.example";

async function addCustomHost(host: string, slug: string, status: string, sslStatus: string): Promise<void> {
  await ownerSql().query(
    `INSERT INTO shared.tenant_hosts (host, tenant_id, custom_hostname_id, custom_zone_id, custom_status, custom_ssl_status, custom_checked_at)
     SELECT $1, id, gen_random_uuid()::text, '0123456789abcdef0123456789abcdef', $3, $4, now() FROM shared.tenants WHERE slug = $2`,
    [host, slug, status, sslStatus],
  );
}

async function setCustomStatus(host: string, status: string, sslStatus: string): Promise<void> {
  await ownerSql().query("UPDATE shared.tenant_hosts SET custom_status = $2, custom_ssl_status = $3, custom_checked_at = now() WHERE host = $1", [
    host,
    status,
    sslStatus,
  ]);
}

describe("a custom hostname", () => {
  it("answers 403 tenant_not_found while pending, and serves its tenant once active", async () => {
    await addCustomHost(HOST, "globex", "pending", "pending_validation");
    const pending = await request(HOST);
    expect(pending.status).toBe(403);
    expect(await errorCode(pending)).toBe("tenant_not_found");
    // Nothing about it was cached in KV (unknown hosts never are).
    expect(await env.TENANT_CACHE.get(hostCacheKey(HOST))).toBeNull();

    // Verified by Cloudflare, recorded by `hosts status`: served once the negative answer expires.
    await setCustomStatus(HOST, "active", "active");
    await sleep(NEGATIVE_TTL_MS + 200);
    const active = await request(HOST);
    expect(active.status).toBe(200);
    expect(((await active.json()) as { slug: string }).slug).toBe("globex");
  });

  it("stops being served when Cloudflare reports it moved (after the purge `hosts status` does)", async () => {
    const host = "www.initech-customer.example";
    await addCustomHost(host, "initech", "active", "active");
    expect((await request(host)).status).toBe(200);
    await setCustomStatus(host, "moved", "active");
    await env.TENANT_CACHE.delete(hostCacheKey(host));
    await sleep(MEMORY_TTL_MS + 200);
    const moved = await request(host);
    expect(moved.status).toBe(403);
    expect(await errorCode(moved)).toBe("tenant_not_found");
    // The tenant's own hosts are untouched.
    expect((await request("initech.test")).status).toBe(200);
  });

  it("a host that is not a custom hostname is served as before", async () => {
    expect((await request("globex.test")).status).toBe(200);
  });
});
