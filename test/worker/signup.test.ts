// Self-service sign-up on the apex (APEX_HOST localhost in the tests): POST /signup claims a
// warm-pool slot (filled by global setup) as the app role and sends the browser, signed in through
// a one-time link, to the new tenant's host. Every request is a separate request through the
// runtime (exports.default), as browsers (and an attacker with a browser) would send them.
import { neon, neonConfig } from "@neondatabase/serverless";
import { env, exports } from "cloudflare:workers";
import { afterAll, describe, expect, it, vi } from "vitest";
import { newClientIp, ownerSql } from "./helpers.ts";

/** The Worker's own connection: the app role. */
function workerSql() {
  neonConfig.fetchEndpoint = () => env.LOCAL_SQL_ENDPOINT!;
  return neon(env.DATABASE_URL!);
}

const PASSWORD = "correct horse battery";
const unique = () => `s${Date.now().toString(36)}${Math.random().toString(36).slice(2, 7)}`;
const APEX = "localhost";

/** One browser: host-only cookie jars, one address; Accept: text/html unless `json`. */
class Browser {
  readonly jar = new Map<string, Map<string, string>>();
  constructor(readonly ip = newClientIp()) {}

  async fetch(url: string, init: { method?: string; form?: Record<string, string>; origin?: string | null; json?: boolean } = {}): Promise<Response> {
    const host = new URL(url).host;
    const jar = this.jar.get(host) ?? new Map<string, string>();
    this.jar.set(host, jar);
    const headers = new Headers({ Accept: init.json ? "application/json" : "text/html", "CF-Connecting-IP": this.ip });
    if (jar.size) headers.set("Cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    let body: string | undefined;
    if (init.form) {
      headers.set("Content-Type", "application/x-www-form-urlencoded");
      body = new URLSearchParams(init.form).toString();
    }
    if (init.origin !== null && (init.method ?? "GET") !== "GET") headers.set("Origin", init.origin ?? `http://${host}`);
    const res = await exports.default.fetch(new Request(url, { method: init.method ?? "GET", headers, body, redirect: "manual" }));
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      jar.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    return res;
  }

  async signupToken(): Promise<string> {
    const html = await (await this.fetch(`http://${APEX}/sign-up`)).text();
    return /name="csrf" value="([^"]+)"/.exec(html)![1]!;
  }

  async signUp(form: Record<string, string>, options: { json?: boolean } = {}): Promise<Response> {
    const csrf = await this.signupToken();
    return this.fetch(`http://${APEX}/signup`, { method: "POST", form: { csrf, ...form }, json: options.json });
  }
}

const form = (slug: string) => ({ slug, name: `Org ${slug}`, email: `admin@${slug}.example`, password: PASSWORD, fullName: "First Admin" });

async function unclaimed(): Promise<string[]> {
  const rows = (await ownerSql().query("SELECT schema_name FROM shared.tenant_pool WHERE claimed_at IS NULL ORDER BY 1")) as Array<{ schema_name: string }>;
  return rows.map((r) => r.schema_name);
}

async function tenantRow(slug: string) {
  const rows = (await ownerSql().query(
    `SELECT t.id::int AS id, t.schema_name AS schema, t.name, t.status::text AS status,
            (SELECT json_agg(json_build_object('host', h.host, 'primary', h.is_primary)) FROM shared.tenant_hosts h WHERE h.tenant_id = t.id) AS hosts,
            (SELECT r.tenant_id::int FROM shared.tenant_schemas r WHERE r.schema_name = t.schema_name) AS registered_to
     FROM shared.tenants t WHERE t.slug = $1`,
    [slug],
  )) as Array<{ id: number; schema: string; name: string; status: string; hosts: unknown; registered_to: number }>;
  return rows[0];
}

// Slots held back by the race test (marked claimed with this token), released at the end.
const HOLD = "test-hold";
afterAll(async () => {
  await ownerSql().query("UPDATE shared.tenant_pool SET claimed_at = NULL, claim_token = NULL WHERE claim_token = $1", [HOLD]);
});

describe("POST /signup on the apex", () => {
  let first: { slug: string; link: string; browser: Browser };

  it("claims a pool slot, creates the admin, and sends the browser to the new host signed in", async () => {
    const before = await unclaimed();
    const slug = unique();
    const browser = new Browser();
    const res = await browser.signUp(form(slug));
    expect(res.status, await res.clone().text()).toBe(303);
    const location = new URL(res.headers.get("Location")!);
    expect(location.origin).toBe(`http://${slug}.${APEX}`);
    expect(location.pathname).toBe("/welcome");

    const tenant = (await tenantRow(slug))!;
    expect(tenant).toMatchObject({ name: `Org ${slug}`, status: "active", hosts: [{ host: `${slug}.${APEX}`, primary: true }], registered_to: tenant.id });
    expect(before).toContain(tenant.schema);
    expect(await unclaimed()).toEqual(before.filter((s) => s !== tenant.schema));
    const users = await ownerSql().query(`SELECT email, full_name, role::text AS role FROM "${tenant.schema}".users`);
    expect(users).toEqual([{ email: `admin@${slug}.example`, full_name: "First Admin", role: "admin" }]);

    // The tenant host exchanges the link for its own session cookie, host-only.
    const welcome = await browser.fetch(location.toString());
    expect(welcome.status).toBe(303);
    expect(welcome.headers.get("Location")).toBe("/");
    const cookie = welcome.headers.getSetCookie().find((c) => c.startsWith("session="))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).not.toMatch(/Domain=/i);
    const home = await browser.fetch(`http://${slug}.${APEX}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain(`Signed in as admin@${slug}.example`);
    // The password works for signing in too.
    const token = await exports.default.fetch(
      new Request(`http://${slug}.${APEX}/auth/token`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "CF-Connecting-IP": newClientIp() },
        body: JSON.stringify({ email: `admin@${slug}.example`, password: PASSWORD }),
      }),
    );
    expect(token.status).toBe(200);
    first = { slug, link: location.toString(), browser };
  });

  it("a sign-in link works once, at its own tenant only, and not when tampered with", async () => {
    const replay = await new Browser().fetch(first.link, { json: true });
    expect(replay.status).toBe(401);
    expect(((await replay.json()) as { error: { code: string } }).error.code).toBe("sign_in_link_invalid");
    expect(replay.headers.getSetCookie().some((c) => c.startsWith("session="))).toBe(false);

    // A fresh link, used at another tenant's host (another sign-up's, and an existing tenant's).
    const other = unique();
    const res = await new Browser().signUp(form(other));
    expect(res.status).toBe(303);
    const link = new URL(res.headers.get("Location")!);
    for (const host of [`${first.slug}.${APEX}`, "acme.test"]) {
      const elsewhere = await new Browser().fetch(`http://${host}/welcome${link.search}`, { json: true });
      expect(elsewhere.status, host).toBe(401);
      expect(elsewhere.headers.getSetCookie().some((c) => c.startsWith("session="))).toBe(false);
    }
    // Tampered: another user id in the payload, same signature.
    const value = link.searchParams.get("link")!;
    const [payload, signature] = value.split(".");
    const claims = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")));
    const forged = btoa(JSON.stringify({ ...claims, u: claims.u + 1 })).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const tampered = await new Browser().fetch(`${link.origin}/welcome?link=${forged}.${signature}`, { json: true });
    expect(tampered.status).toBe(401);
    // Not having been used elsewhere, the link still works at its own host, once.
    expect((await new Browser().fetch(link.toString())).status).toBe(303);
    expect((await new Browser().fetch(link.toString(), { json: true })).status).toBe(401);
  });

  it("a slug with an underscore gets a hyphen in its host", async () => {
    const slug = `${unique()}_co`;
    const res = await new Browser().signUp({ ...form(slug), email: `admin@${slug.replace(/_/g, "-")}.example` });
    expect(res.status, await res.clone().text()).toBe(303);
    expect(new URL(res.headers.get("Location")!).host).toBe(`${slug.replace(/_/g, "-")}.${APEX}`);
    expect((await tenantRow(slug))!.hosts).toEqual([{ host: `${slug.replace(/_/g, "-")}.${APEX}`, primary: true }]);
  });

  it("a slug or host already taken answers 409 and claims nothing", async () => {
    const before = await unclaimed();
    const taken = await new Browser().signUp(form(first.slug), { json: true });
    expect(taken.status).toBe(409);
    expect(((await taken.json()) as { error: { code: string } }).error.code).toBe("slug_taken");
    // A host given to an existing tenant (as an operator would with `hosts add`).
    const slug = unique();
    await ownerSql().query("INSERT INTO shared.tenant_hosts (host, tenant_id) SELECT $1, id FROM shared.tenants WHERE slug = 'acme'", [`${slug}.${APEX}`]);
    const host = await new Browser().signUp(form(slug), { json: true });
    expect(host.status).toBe(409);
    expect(((await host.json()) as { error: { code: string } }).error.code).toBe("host_taken");
    // In a browser: the form again, with the message and what was typed (not the password).
    const page = await new Browser().signUp(form(first.slug));
    expect(page.status).toBe(409);
    const html = await page.text();
    expect(html).toContain(`The address ${first.slug}.${APEX} is taken`);
    expect(html).toContain(`value="Org ${first.slug}"`);
    expect(html).not.toContain(PASSWORD);
    expect(await unclaimed()).toEqual(before);
  });

  it("refuses bad input (400), a form without its token or from another site (403), too many sign-ups (429)", async () => {
    const before = await unclaimed();
    const bad = await new Browser().signUp({ ...form("Bad-Slug"), password: "short" }, { json: true });
    expect(bad.status).toBe(400);
    const message = ((await bad.json()) as { error: { code: string; message: string } }).error;
    expect(message.code).toBe("validation_error");
    expect(message.message).toContain("slug");
    expect(message.message).toContain("password");

    const browser = new Browser();
    await browser.signupToken();
    const noToken = await browser.fetch(`http://${APEX}/signup`, { method: "POST", form: form(unique()), json: true });
    expect(noToken.status).toBe(403);
    const csrf = await browser.signupToken();
    const crossSite = await browser.fetch(`http://${APEX}/signup`, { method: "POST", form: { csrf, ...form(unique()) }, origin: "https://evil.example", json: true });
    expect(crossSite.status).toBe(403);
    // Another browser's token does not fit this browser's cookie.
    const stolen = await new Browser().signupToken();
    const mismatched = await browser.fetch(`http://${APEX}/signup`, { method: "POST", form: { csrf: stolen, ...form(unique()) }, json: true });
    expect(mismatched.status).toBe(403);

    // SIGNUP_LIMITER: 5 a minute per address (wrangler.toml); the 6th is refused before anything else.
    const greedy = new Browser();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await greedy.signUp(form("Bad-Slug"), { json: true })).status);
    expect(statuses).toEqual([400, 400, 400, 400, 400, 429]);
    expect(await unclaimed()).toEqual(before);
  });

  it("a tenant row can be written by the app role only by claiming a free slot", async () => {
    const sql = workerSql();
    const state = async (statement: string) => {
      try {
        await sql.query(statement);
        return "ok";
      } catch (error) {
        return (error as { code?: string }).code;
      }
    };
    // A schema not in the pool (not registered): the registry foreign key refuses it.
    expect(await state("INSERT INTO shared.tenants (slug, name, schema_name) VALUES ('evil', 'Evil', 'tenant_evilevilevil')")).toBe("23503");
    // A live tenant's registry row cannot be given to another tenant.
    expect(await state("UPDATE shared.tenant_schemas SET tenant_id = tenant_id + 1000 WHERE tenant_id IS NOT NULL")).toBe("23514");
  });

  it("two sign-ups racing for the last slot: one wins, the other gets 503 try again shortly; then the empty pool answers 503", async () => {
    const slots = await unclaimed();
    expect(slots.length).toBeGreaterThan(0);
    await ownerSql().query(
      "UPDATE shared.tenant_pool SET claimed_at = now(), claim_token = $1 WHERE claimed_at IS NULL AND schema_name <> $2",
      [HOLD, slots[0]],
    );
    const [a, b] = [unique(), unique()];
    const [ba, bb] = [new Browser(), new Browser()];
    const [ta, tb] = [await ba.signupToken(), await bb.signupToken()];
    const post = (browser: Browser, csrf: string, slug: string) =>
      browser.fetch(`http://${APEX}/signup`, { method: "POST", form: { csrf, ...form(slug) }, json: true });
    const results = await Promise.all([post(ba, ta, a), post(bb, tb, b)]);
    expect(results.map((r) => r.status).sort()).toEqual([303, 503]);
    const loser = results.find((r) => r.status === 503)!;
    expect(loser.headers.get("Retry-After")).toBe("30");
    const error = ((await loser.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe("signup_unavailable");
    expect(error.message).toContain("try again shortly");
    // The winner is whole; the loser left nothing behind.
    const winner = results[0]!.status === 303 ? a : b;
    const lost = winner === a ? b : a;
    expect((await tenantRow(winner))!.schema).toBe(slots[0]);
    expect(await tenantRow(lost)).toBeUndefined();
    expect(await ownerSql().query(`SELECT email FROM "${slots[0]}".users`)).toEqual([{ email: `admin@${winner}.example` }]);

    const warned = vi.spyOn(console, "warn");
    const empty = await new Browser().signUp(form(unique()), { json: true });
    expect(empty.status).toBe(503);
    const requestId = ((await empty.json()) as { error: { code: string; requestId: string } }).error;
    expect(requestId.code).toBe("signup_unavailable");
    // Logged, so an operator sees the pool ran dry.
    const lines = warned.mock.calls.map((args) => JSON.parse(String(args[0])) as { event?: string; requestId?: string; reason?: string });
    expect(lines).toContainEqual({ event: "signup_unavailable", requestId: requestId.requestId, reason: "pool_empty" });
    warned.mockRestore();
  });
});
