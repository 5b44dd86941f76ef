// A tenant in maintenance (what `npm run tenants -- maintenance <slug> on` records in the catalog:
// the message and the SHA-256 of a bypass token): its hosts answer 503 tenant_maintenance with the
// message (JSON, or a page for browsers) and Retry-After; the window's token lets a request through
// (header, or once in the URL, then a host-only cookie); another tenant's token, a wrong one, or the
// token after maintenance ended does not.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { clearMemoryCache, evictHost } from "../../src/tenancy/resolve.ts";
import { errorCode, ownerSql, request } from "./helpers.ts";

async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** As the CLI does: the catalog columns, then the tenant's hosts purged from memory and KV. */
async function setMaintenance(slug: string, host: string, maintenance: { message: string; token: string } | null): Promise<void> {
  if (maintenance) {
    await ownerSql().query(
      "UPDATE shared.tenants SET maintenance_message = $2, maintenance_bypass_hash = $3, maintenance_since = now() WHERE slug = $1",
      [slug, maintenance.message, await sha256Hex(maintenance.token)],
    );
  } else {
    await ownerSql().query(
      "UPDATE shared.tenants SET maintenance_message = NULL, maintenance_bypass_hash = NULL, maintenance_since = NULL WHERE slug = $1",
      [slug],
    );
  }
  await evictHost(host, env.TENANT_CACHE);
}

const MESSAGE = "Moving to faster disks <back at 14:00 UTC> & more";
const TOKEN = "maint-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const OTHER_TOKEN = "other-token-BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

afterEach(async () => {
  await setMaintenance("maint", "maint.test", null);
  await setMaintenance("maint_other", "maint-other.test", null);
});

describe("a tenant in maintenance", () => {
  it("answers 503 tenant_maintenance with the operator's message and Retry-After, as JSON and as a page", async () => {
    expect((await request("maint.test")).status).toBe(200);
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });

    const json = await request("maint.test");
    expect(json.status).toBe(503);
    expect(json.headers.get("Retry-After")).toBe("300");
    const body = (await json.json()) as { error: { code: string; message: string } };
    expect(body.error).toMatchObject({ code: "tenant_maintenance", message: MESSAGE });

    const page = await request("maint.test", { path: "/", headers: { Accept: "text/html" } });
    expect(page.status).toBe(503);
    expect(page.headers.get("Content-Type")).toContain("text/html");
    const html = await page.text();
    expect(html).toContain("Moving to faster disks &#60;back at 14:00 UTC&#62; &#38; more");
    expect(html).not.toContain("<back at");

    // Every route of the tenant, signed in or not; another tenant is unaffected.
    expect(await errorCode(await request("maint.test", { path: "/items" }))).toBe("tenant_maintenance");
    expect((await request("maint-other.test")).status).toBe(200);
  });

  it("lets the window's bypass token through (header), but not a wrong one, another tenant's, or an old one", async () => {
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });
    await setMaintenance("maint_other", "maint-other.test", { message: "Other work", token: OTHER_TOKEN });

    const bypassed = await request("maint.test", { headers: { "X-Maintenance-Bypass": TOKEN } });
    expect(bypassed.status).toBe(200);
    expect(((await bypassed.json()) as { slug: string }).slug).toBe("maint");
    // The bypass lifts maintenance only: the API still wants a signed-in user.
    expect(await errorCode(await request("maint.test", { path: "/items", headers: { "X-Maintenance-Bypass": TOKEN } }))).toBe("unauthenticated");

    for (const token of [OTHER_TOKEN, `${TOKEN}x`, TOKEN.slice(0, -1), "", "x".repeat(10_000)]) {
      const refused = await request("maint.test", { headers: { "X-Maintenance-Bypass": token } });
      expect(refused.status, token.slice(0, 20)).toBe(503);
    }
    // maint's token at maint_other's host.
    expect((await request("maint-other.test", { headers: { "X-Maintenance-Bypass": TOKEN } })).status).toBe(503);

    // On again with a new token: the old one stops working.
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: `${TOKEN}-new` });
    expect((await request("maint.test", { headers: { "X-Maintenance-Bypass": TOKEN } })).status).toBe(503);
    expect((await request("maint.test", { headers: { "X-Maintenance-Bypass": `${TOKEN}-new` } })).status).toBe(200);
  });

  it("a token in the URL becomes a host-only cookie and the browser goes to the same URL without it", async () => {
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });
    const res = await request("maint.test", { path: `/tenant?view=full&maintenance_bypass=${TOKEN}`, headers: { Accept: "text/html" } });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/tenant?view=full");
    const cookie = res.headers.get("Set-Cookie")!;
    expect(cookie).toMatch(new RegExp(`^maintenance_bypass=${TOKEN};`));
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("Secure");
    expect(cookie).toContain("SameSite=Lax");
    expect(cookie.toLowerCase()).not.toContain("domain=");

    expect((await request("maint.test", { headers: { Cookie: `maintenance_bypass=${TOKEN}` } })).status).toBe(200);
    expect((await request("maint.test", { headers: { Cookie: `maintenance_bypass=${OTHER_TOKEN}` } })).status).toBe(503);
    // A wrong token in the URL sets nothing.
    const wrong = await request("maint.test", { path: `/tenant?maintenance_bypass=${OTHER_TOKEN}` });
    expect(wrong.status).toBe(503);
    expect(wrong.headers.get("Set-Cookie")).toBeNull();
  });

  it("the redirect never leaves the host, whatever the path; a stale token in the URL does not hide a valid cookie; other methods are not redirected", async () => {
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });
    for (const [path, location] of [
      [`//evil.example/x?maintenance_bypass=${TOKEN}`, "/evil.example/x"],
      [`/\\evil.example/?maintenance_bypass=${TOKEN}`, "/evil.example/"],
      [`///evil.example?a=1&maintenance_bypass=${TOKEN}`, "/evil.example?a=1"],
    ]) {
      const res = await request("maint.test", { path });
      expect(res.status, path).toBe(303);
      expect(res.headers.get("Location"), path).toBe(location);
    }
    const cookie = { Cookie: `maintenance_bypass=${TOKEN}` };
    expect((await request("maint.test", { path: "/tenant?maintenance_bypass=", headers: cookie })).status).toBe(200);
    expect((await request("maint.test", { path: `/tenant?maintenance_bypass=${OTHER_TOKEN}`, headers: cookie })).status).toBe(200);
    // A POST with the token in its URL is served (with the cookie set), not turned into a GET.
    const post = await request("maint.test", { path: `/users?maintenance_bypass=${TOKEN}`, method: "POST", body: { email: `m-${Date.now()}@example.com`, password: "correct horse" } });
    expect(post.status).toBe(201);
    expect(post.headers.get("Set-Cookie")).toMatch(/^maintenance_bypass=/);
  });

  it("a cached entry written by code that knew no maintenance is not trusted: the catalog is asked again", async () => {
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });
    // What the Worker before maintenance existed wrote to KV (no maintenance field), e.g. during a
    // deploy that runs migrate first, while the old Worker still serves.
    const id = ((await ownerSql().query("SELECT id::int AS id, schema_name FROM shared.tenants WHERE slug = 'maint'")) as Array<{ id: number; schema_name: string }>)[0]!;
    await env.TENANT_CACHE.put(
      hostCacheKey("maint.test"),
      JSON.stringify({ tenant: { id: id.id, slug: "maint", name: "Maint", schema: id.schema_name, status: "active", rateLimitTier: "standard" } }),
    );
    clearMemoryCache();
    const res = await request("maint.test");
    expect(res.status).toBe(503);
    expect(await errorCode(res)).toBe("tenant_maintenance");
  });

  it("off: the tenant answers everyone again", async () => {
    await setMaintenance("maint", "maint.test", { message: MESSAGE, token: TOKEN });
    expect((await request("maint.test")).status).toBe(503);
    await setMaintenance("maint", "maint.test", null);
    expect((await request("maint.test")).status).toBe(200);
  });
});
