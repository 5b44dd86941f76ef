import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { HEALTH_CACHE_SECONDS } from "../../src/routes/health.ts";

type Health = { status: string; database: { name: string; time: string } };

describe("GET /health inside workerd", () => {
  it("answers on the configured health host with a query made through neon() and drizzle, without the server version", async () => {
    expect(env.HEALTH_HOST).toBe("localhost"); // wrangler.toml [vars]
    const res = await exports.default.fetch("http://localhost/health");
    expect(res.status).toBe(200);
    const text = await res.text();
    const body = JSON.parse(text) as Health;
    expect(body.status).toBe("ok");
    expect(body.database.name).toBe(new URL(env.DATABASE_URL!).pathname.slice(1));
    expect(Date.parse(body.database.time)).not.toBeNaN();
    expect(text).not.toMatch(/version/i);
  });

  it("reuses its answer for a few seconds instead of querying on every request", async () => {
    const first = (await (await exports.default.fetch("http://localhost/health")).json()) as Health;
    const second = (await (await exports.default.fetch("http://localhost/health")).json()) as Health;
    expect(second.database.time).toBe(first.database.time); // the database's now() was not asked again
    await new Promise((r) => setTimeout(r, HEALTH_CACHE_SECONDS * 1000 + 200));
    const later = (await (await exports.default.fetch("http://localhost/health")).json()) as Health;
    expect(later.database.time).not.toBe(first.database.time);
  });

  it("is not served on other hosts: a tenant's host has no such route, an unknown host is no tenant", async () => {
    const onTenant = await exports.default.fetch(new Request("http://acme.test/health", { headers: { "CF-Connecting-IP": "192.0.2.10" } }));
    expect(onTenant.status).toBe(404);
    expect(((await onTenant.json()) as { error: { code: string } }).error.code).toBe("not_found");
    const onRandom = await exports.default.fetch(new Request(`http://r${Date.now()}.example.com/health`, { headers: { "CF-Connecting-IP": "192.0.2.11" } }));
    expect(onRandom.status).toBe(403);
    expect(((await onRandom.json()) as { error: { code: string } }).error.code).toBe("tenant_not_found");
  });
});
