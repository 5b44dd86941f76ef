// Tenant-scoped sign-in, tried the way an attacker would (tenants signin_a and signin_b play "acme"
// and "globex"; limited and limited_two take the rate-limit test): every request is a separate request
// through the runtime (exports.default, i.e. SELF), and the sign-in API is called with the typed
// client (hc<App>), so the client's types stay true to the routes.
import { env, exports } from "cloudflare:workers";
import { hc } from "hono/client";
import { describe, expect, it } from "vitest";
import { signCredential } from "../../src/auth/credentials.ts";
import type { App } from "../../src/index.ts";
import { hashPassword } from "../../src/security/password.ts";
import { ident, newClientIp, ownerSql, schemaOf } from "./helpers.ts";

type ErrorBody = { error: { code: string; message: string } };
const PASSWORD = "correct horse battery";
const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** The typed client for one tenant host, as one client address, through the runtime. */
function client(host: string, ip = newClientIp()) {
  return hc<App>(`http://${host}`, {
    fetch: (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      request.headers.set("CF-Connecting-IP", ip);
      return exports.default.fetch(request);
    },
  });
}

async function fetchAt(host: string, path: string, init: RequestInit = {}): Promise<Response> {
  const request = new Request(`http://${host}${path}`, init);
  if (!request.headers.has("CF-Connecting-IP")) request.headers.set("CF-Connecting-IP", newClientIp());
  return exports.default.fetch(request);
}

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function signUpAndIn(host: string, options: { admin?: boolean } = {}): Promise<{ id: number; email: string; token: string }> {
  const api = client(host);
  const email = `auth-${unique()}@example.com`;
  const created = await api.users.$post({ json: { email, password: PASSWORD } });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: number };
  if (options.admin) {
    await ownerSql().query(`UPDATE ${ident(await schemaOf(host.split(".")[0]!.replace("-", "_")))}.users SET role = 'admin' WHERE id = $1`, [id]);
  }
  const res = await api.auth.token.$post({ json: { email, password: PASSWORD } });
  expect(res.status).toBe(200);
  const body = await res.json();
  if (!("token" in body)) throw new Error("no token");
  expect(body).toMatchObject({ tokenType: "Bearer", user: { id, email, role: options.admin ? "admin" : "member" } });
  return { id, email, token: body.token };
}

async function code(res: Response): Promise<string> {
  return ((await res.json()) as ErrorBody).error.code;
}

describe("sign-in (POST /auth/token) with the typed client", () => {
  it("gives a token that GET /me accepts at the same tenant", async () => {
    const user = await signUpAndIn("signin-a.test");
    const me = await client("signin-a.test").me.$get({}, { headers: bearer(user.token) });
    expect(me.status).toBe(200);
    expect(await me.json()).toEqual({ id: user.id, email: user.email, fullName: null, role: "member" });
  });

  it("refuses a wrong password and an unknown email alike: 401 invalid_credentials, no token", async () => {
    const user = await signUpAndIn("signin-a.test");
    const api = client("signin-a.test");
    const wrong = await api.auth.token.$post({ json: { email: user.email, password: "not the password" } });
    const nobody = await api.auth.token.$post({ json: { email: `nobody-${unique()}@example.com`, password: PASSWORD } });
    for (const res of [wrong, nobody]) {
      expect(res.status).toBe(401);
      const body = (await res.json()) as unknown as ErrorBody;
      expect(body.error).toMatchObject({ code: "invalid_credentials", message: "Wrong email or password." });
      expect(JSON.stringify(body)).not.toContain("token\"");
    }
  });

  it("verifies a hash made with the old 50,000 iterations, and stores a 100,000-iteration one after", async () => {
    const schema = ident(await schemaOf("signin_a"));
    const email = `old-${unique()}@example.com`;
    await ownerSql().query(`INSERT INTO ${schema}.users (email, hashed_password) VALUES ($1, $2)`, [email, await hashPassword(PASSWORD, 50_000)]);
    const res = await client("signin-a.test").auth.token.$post({ json: { email, password: PASSWORD } });
    expect(res.status).toBe(200);
    const [row] = (await ownerSql().query(`SELECT hashed_password FROM ${schema}.users WHERE email = $1`, [email])) as Array<{ hashed_password: string }>;
    expect(row!.hashed_password).toMatch(/^pbkdf2_sha256\$100000\$[0-9a-f]{32}\$[0-9a-f]{64}$/);
    expect((await client("signin-a.test").auth.token.$post({ json: { email, password: PASSWORD } })).status).toBe(200);
  });

  it("stores new passwords with 100,000 iterations", async () => {
    const user = await signUpAndIn("signin-a.test");
    const [row] = (await ownerSql().query(`SELECT hashed_password FROM ${ident(await schemaOf("signin_a"))}.users WHERE id = $1`, [user.id])) as Array<{
      hashed_password: string;
    }>;
    expect(row!.hashed_password.split("$")[1]).toBe("100000");
  });
});

describe("a credential is valid at its own tenant only", () => {
  /** A globex user with the same id as the acme user exists (ids are serial: fill globex up to it). */
  async function globexHasUser(id: number): Promise<void> {
    for (let i = 0; i < 500; i++) {
      const rows = (await ownerSql().query(`SELECT max(id) AS max FROM ${ident(await schemaOf("signin_b"))}.users`)) as Array<{ max: number | null }>;
      if ((rows[0]!.max ?? 0) >= id) return;
      const res = await fetchAt("signin-b.test", "/users", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ email: `filler-${unique()}@example.com`, password: PASSWORD }),
      });
      expect(res.status).toBe(201);
    }
  }

  it("refuses an acme token at globex with 401, though globex has a user with that id", async () => {
    const acme = await signUpAndIn("signin-a.test", { admin: true });
    await globexHasUser(acme.id);
    expect((await fetchAt("signin-a.test", `/users/${acme.id}`, { headers: bearer(acme.token) })).status).toBe(200);
    for (const path of ["/me", `/users/${acme.id}`, "/users", "/items"]) {
      const res = await fetchAt("signin-b.test", path, { headers: bearer(acme.token) });
      expect(res.status, path).toBe(401);
      expect(await code(res)).toBe("unauthenticated");
      expect(res.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
    }
    const write = await fetchAt("signin-b.test", `/users/${acme.id}/items`, {
      method: "POST",
      headers: { ...bearer(acme.token), "Content-Type": "application/json" },
      body: JSON.stringify({ title: "planted by acme" }),
    });
    expect(write.status).toBe(401);
    const planted = await ownerSql().query(`SELECT 1 FROM ${ident(await schemaOf("signin_b"))}.items WHERE title = 'planted by acme'`);
    expect(planted).toEqual([]);
  });

  it("refuses an acme credential at globex even when re-signed for globex's host but naming acme's identity", async () => {
    // What an attacker cannot do without the secret, the test does with it: the tenant identity
    // inside the credential is what counts, so acme's id and schema are refused at globex.
    const acme = await signUpAndIn("signin-a.test");
    await globexHasUser(acme.id);
    const [acmeRow] = (await ownerSql().query("SELECT id, schema_name FROM shared.tenants WHERE slug = 'signin_a'")) as Array<{ id: number; schema_name: string }>;
    const now = Math.floor(Date.now() / 1000);
    const forged = await signCredential(env.SESSION_SECRET!, { k: "token", t: Number(acmeRow!.id), s: acmeRow!.schema_name, u: acme.id, iat: now, exp: now + 600 });
    expect((await fetchAt("signin-a.test", "/me", { headers: bearer(forged) })).status).toBe(200);
    expect((await fetchAt("signin-b.test", "/me", { headers: bearer(forged) })).status).toBe(401);
  });

  it("refuses a token whose payload was edited, one signed with another key, and an expired one", async () => {
    const member = await signUpAndIn("signin-a.test");
    const [payload, signature] = member.token.split(".");
    const claims = JSON.parse(atob(payload!.replace(/-/g, "+").replace(/_/g, "/")));
    const edited = btoa(JSON.stringify({ ...claims, u: 1 })).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const [acmeRow] = (await ownerSql().query("SELECT id, schema_name FROM shared.tenants WHERE slug = 'signin_a'")) as Array<{ id: number; schema_name: string }>;
    const now = Math.floor(Date.now() / 1000);
    const base = { k: "token" as const, t: Number(acmeRow!.id), s: acmeRow!.schema_name, u: member.id };
    const otherKey = await signCredential("some-other-secret-that-is-long-enough-000", { ...base, iat: now, exp: now + 600 });
    const expired = await signCredential(env.SESSION_SECRET!, { ...base, iat: now - 7200, exp: now - 1 });
    for (const [what, token] of [
      ["edited payload", `${edited}.${signature}`],
      ["another key", otherKey],
      ["expired", expired],
      ["garbage", "not-a-token"],
    ]) {
      const res = await fetchAt("signin-a.test", "/me", { headers: bearer(token!) });
      expect(res.status, what).toBe(401);
      expect(await code(res)).toBe("unauthenticated");
    }
  });

  it("refuses a bearer token sent as the session cookie (each credential has one use)", async () => {
    const member = await signUpAndIn("signin-a.test");
    const res = await fetchAt("signin-a.test", "/me", { headers: { Cookie: `session=${member.token}` } });
    expect(res.status).toBe(401);
  });
});

describe("who may read and write what", () => {
  it("requires a credential for GET /users, GET /items, GET /users/{id} and creating items: 401", async () => {
    for (const [method, path] of [
      ["GET", "/users"],
      ["GET", "/items"],
      ["GET", "/users/1"],
      ["POST", "/users/1/items"],
      ["PATCH", "/items/1"],
      ["DELETE", "/items/1"],
    ] as const) {
      const res = await fetchAt("signin-a.test", path, {
        method,
        ...(method === "GET" || method === "DELETE" ? {} : { headers: { "Content-Type": "application/json" }, body: JSON.stringify({ title: "x", status: "draft" }) }),
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(await code(res)).toBe("unauthenticated");
    }
  });

  it("lets only an admin list every user: a member gets 403 forbidden", async () => {
    const member = await signUpAndIn("signin-a.test");
    const admin = await signUpAndIn("signin-a.test", { admin: true });
    const denied = await fetchAt("signin-a.test", "/users", { headers: bearer(member.token) });
    expect(denied.status).toBe(403);
    expect(await code(denied)).toBe("forbidden");
    const listed = await fetchAt("signin-a.test", "/users?limit=100&skip=0", { headers: bearer(admin.token) });
    expect(listed.status).toBe(200);
    expect(Array.isArray(await listed.json())).toBe(true);
  });

  it("keeps a member to their own user and items", async () => {
    const alice = await signUpAndIn("signin-a.test");
    const bob = await signUpAndIn("signin-a.test");
    const json = (token: string) => ({ ...bearer(token), "Content-Type": "application/json" });
    const own = await fetchAt("signin-a.test", `/users/${alice.id}/items`, { method: "POST", headers: json(alice.token), body: JSON.stringify({ title: "alice's" }) });
    expect(own.status).toBe(201);
    const item = (await own.json()) as { id: number };

    expect((await fetchAt("signin-a.test", `/users/${alice.id}`, { headers: bearer(bob.token) })).status).toBe(403);
    expect(
      (await fetchAt("signin-a.test", `/users/${alice.id}/items`, { method: "POST", headers: json(bob.token), body: JSON.stringify({ title: "bob's plant" }) })).status,
    ).toBe(403);
    const bobsView = (await (await fetchAt("signin-a.test", "/items", { headers: bearer(bob.token) })).json()) as Array<{ id: number }>;
    expect(bobsView.map((i) => i.id)).not.toContain(item.id);
    const patch = await fetchAt("signin-a.test", `/items/${item.id}`, { method: "PATCH", headers: json(bob.token), body: JSON.stringify({ status: "archived" }) });
    expect(patch.status).toBe(404);
    expect((await fetchAt("signin-a.test", `/items/${item.id}`, { method: "DELETE", headers: bearer(bob.token) })).status).toBe(404);

    const mine = (await (await fetchAt("signin-a.test", "/items", { headers: bearer(alice.token) })).json()) as Array<{ id: number; status: string }>;
    expect(mine).toEqual([expect.objectContaining({ id: item.id, status: "draft" })]);
    const changed = await fetchAt("signin-a.test", `/items/${item.id}`, { method: "PATCH", headers: json(alice.token), body: JSON.stringify({ status: "published" }) });
    expect(changed.status).toBe(200);
    expect(((await changed.json()) as { status: string }).status).toBe("published");
    expect((await fetchAt("signin-a.test", `/items/${item.id}`, { method: "DELETE", headers: bearer(alice.token) })).status).toBe(204);
    expect(await (await fetchAt("signin-a.test", "/items", { headers: bearer(alice.token) })).json()).toEqual([]);
  });
});

describe("the sign-in rate limit (per tenant and client)", () => {
  it("answers 429 rate_limited with Retry-After once a client has made 10 attempts at a tenant in a minute", async () => {
    const user = await signUpAndIn("limited.test");
    const ip = newClientIp();
    const api = client("limited.test", ip);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await api.auth.token.$post({ json: { email: user.email, password: `guess-${i}` } })).status);
    expect(statuses).toEqual(Array(10).fill(401));
    // Even the right password waits now: the limit is checked before any password.
    const limited = await api.auth.token.$post({ json: { email: user.email, password: PASSWORD } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).toBe("60");
    expect(((await limited.json()) as unknown as ErrorBody).error.code).toBe("rate_limited");
    // Another client at the same tenant, and the same client at another tenant, are not limited.
    expect((await client("limited.test").auth.token.$post({ json: { email: user.email, password: PASSWORD } })).status).toBe(200);
    const other = await signUpAndIn("limited-two.test");
    expect((await client("limited-two.test", ip).auth.token.$post({ json: { email: other.email, password: PASSWORD } })).status).toBe(200);
  });
});

describe("cross-site requests riding on the session cookie", () => {
  it("refuses a text/plain POST with a session cookie from another origin: 403 csrf_failed", async () => {
    const res = await fetchAt("signin-a.test", "/users", {
      method: "POST",
      headers: { Cookie: "session=anything", "Content-Type": "text/plain", Origin: "https://evil.example" },
      body: JSON.stringify({ email: `csrf-${unique()}@example.com`, password: PASSWORD }),
    });
    expect(res.status).toBe(403);
    expect(await code(res)).toBe("csrf_failed");
  });
});
