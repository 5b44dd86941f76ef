// The example API (the FastAPI SQL tutorial's) as a client sees it, at two tenants one migration
// apart, as during a rollout: `api` (api.test) at the checkout's head, and `api_ahead`
// (api-ahead.test), which test/global-setup.ts migrated one (expand-only) tenant migration further
// with `migrate --only`. The deployed code must serve both the same (docs/migrations.md).
// Users and items persist across tests: every test makes its own users and reads ids from responses.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { adminToken, ownerSql, schemaOf } from "./helpers.ts";

type Item = { id: number; title: string; description: string | null; status: string; ownerId: number; createdAt: string };
type User = { id: number; email: string; fullName: string | null; isActive: boolean; createdAt: string; items: Item[] };
type ErrorBody = { error: { code: string; message: string; requestId: string; details?: unknown } };

const FLEET = [
  { host: "api.test", slug: "api", name: "API Tests", at: "head" },
  { host: "api-ahead.test", slug: "api_ahead", name: "API Ahead", at: "one migration ahead" },
];

describe.each(FLEET)("tenant $slug ($at)", ({ host, slug, name }) => {
  /** As an admin of the tenant (who may read and write every user's data), unless headers say otherwise. */
  async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const ctx = createExecutionContext();
    const init: RequestInit = { method, headers: { Authorization: `Bearer ${await adminToken(host, slug)}`, ...headers } };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    }
    const res = await app.fetch(new Request(`http://${host}${path}`, init), env, ctx);
    await waitOnExecutionContext(ctx);
    return res;
  }

  const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

  async function createUser(overrides: Record<string, unknown> = {}): Promise<User> {
    const res = await call("POST", "/users", { email: `u-${unique()}@example.com`, password: "correct horse", ...overrides });
    expect(res.status).toBe(201);
    return res.json<User>();
  }

  async function createItem(userId: number, input: Record<string, unknown>): Promise<Item> {
    const res = await call("POST", `/users/${userId}/items`, input);
    expect(res.status).toBe(201);
    return res.json<Item>();
  }

  describe("POST /users", () => {
    it("creates a user: 201 with the user's public fields and no items", async () => {
      const email = `ada-${unique()}@example.com`;
      const before = Date.now();
      const res = await call("POST", "/users", { email, password: "s3cret-passw0rd", fullName: "Ada Lovelace" });
      expect(res.status).toBe(201);
      expect(res.headers.get("Content-Type")).toMatch(/application\/json/);
      const user = await res.json<User>();
      expect(user).toEqual({
        id: expect.any(Number),
        email,
        fullName: "Ada Lovelace",
        isActive: true,
        createdAt: expect.any(String),
        items: [],
      });
      expect(user.id).toBeGreaterThan(0);
      expect(Date.parse(user.createdAt)).toBeGreaterThan(before - 60_000);
    });

    it("never echoes the password, nor its hash", async () => {
      const password = `pw-${unique()}`;
      const res = await call("POST", "/users", { email: `p-${unique()}@example.com`, password });
      expect(res.status).toBe(201);
      const text = await res.text();
      expect(text).not.toContain(password);
      const user = JSON.parse(text) as Record<string, unknown>;
      expect(Object.keys(user).sort()).toEqual(["createdAt", "email", "fullName", "id", "isActive", "items"]);
      expect(text).not.toMatch(/pbkdf2|hashed|password/i);
    });

    it("stores the email lowercased, and fullName is null when not given", async () => {
      const local = `MiXeD-${unique()}`;
      const user = await createUser({ email: `${local}@Example.COM` });
      expect(user.email).toBe(`${local.toLowerCase()}@example.com`);
      expect(user.fullName).toBeNull();

      const fetched = await call("GET", `/users/${user.id}`);
      expect((await fetched.json<User>()).email).toBe(user.email);
    });
  });

  describe("GET /users/{userId}", () => {
    it("returns the user with their items, in creation order", async () => {
      const user = await createUser({ fullName: "Grace Hopper" });
      const first = await createItem(user.id, { title: "First" });
      const second = await createItem(user.id, { title: "Second", description: "two", status: "published" });
      const third = await createItem(user.id, { title: "Third", status: "archived" });

      const res = await call("GET", `/users/${user.id}`);
      expect(res.status).toBe(200);
      const got = await res.json<User>();
      expect(got).toEqual({ ...user, items: [first, second, third] });
      expect(got.items.map((i) => i.title)).toEqual(["First", "Second", "Third"]);
    });

    it("returns a user without items with an empty list", async () => {
      const user = await createUser();
      const res = await call("GET", `/users/${user.id}`);
      expect(res.status).toBe(200);
      expect(await res.json<User>()).toEqual(user);
    });
  });

  describe("POST /users/{userId}/items", () => {
    it("creates a draft item by default, owned by the user", async () => {
      const user = await createUser();
      const res = await call("POST", `/users/${user.id}/items`, { title: "Buy milk" });
      expect(res.status).toBe(201);
      const item = await res.json<Item>();
      expect(item).toEqual({
        id: expect.any(Number),
        title: "Buy milk",
        description: null,
        status: "draft",
        ownerId: user.id,
        createdAt: expect.any(String),
      });
      expect(Date.parse(item.createdAt)).not.toBeNaN();
    });

    it("keeps an explicit status and description, and trims the title", async () => {
      const user = await createUser();
      const item = await createItem(user.id, { title: "  Ship it  ", description: "today", status: "published" });
      expect(item).toMatchObject({ title: "Ship it", description: "today", status: "published", ownerId: user.id });
      const archived = await createItem(user.id, { title: "Old", status: "archived", description: null });
      expect(archived).toMatchObject({ status: "archived", description: null });
    });
  });

  /** Every row of a list endpoint, paging with the API's maximum page size. */
  async function listAll<T>(path: "/users" | "/items"): Promise<T[]> {
    const rows: T[] = [];
    for (;;) {
      const res = await call("GET", `${path}?skip=${rows.length}&limit=100`);
      expect(res.status).toBe(200);
      const page = await res.json<T[]>();
      rows.push(...page);
      if (page.length < 100) return rows;
    }
  }

  const byId = (a: { id: number }, b: { id: number }) => a.id - b.id;

  describe("GET /users and GET /items paging", () => {
    it("lists users in id order with their items; skip and limit page through them", async () => {
      const created = [await createUser(), await createUser(), await createUser()];
      const b1 = await createItem(created[1]!.id, { title: "b1" });
      const b2 = await createItem(created[1]!.id, { title: "b2" });

      const everyone = await listAll<User>("/users");
      expect(everyone).toEqual([...everyone].sort(byId));
      const offset = everyone.findIndex((u) => u.id === created[0]!.id);
      expect(offset).toBeGreaterThanOrEqual(0);
      // Other test files may add users of their own meanwhile, but only after ours.
      expect(everyone.slice(offset, offset + 3)).toEqual([created[0], { ...created[1], items: [b1, b2] }, created[2]]);

      const page = await call("GET", `/users?skip=${offset}&limit=2`);
      expect(page.status).toBe(200);
      const users = await page.json<User[]>();
      expect(users).toEqual(everyone.slice(offset, offset + 2));
      expect(users[1]!.items.map((i) => i.title)).toEqual(["b1", "b2"]);

      const next = await call("GET", `/users?skip=${offset + 2}&limit=1`);
      expect(await next.json<User[]>()).toEqual([created[2]]);
    });

    it("defaults to skip=0 and at most 100 users", async () => {
      await createUser();
      const res = await call("GET", "/users");
      expect(res.status).toBe(200);
      const users = await res.json<User[]>();
      expect(users.length).toBeGreaterThan(0);
      expect(users.length).toBeLessThanOrEqual(100);
      const first = await call("GET", "/users?skip=0&limit=1");
      expect(await first.json<User[]>()).toEqual([users[0]]);
    });

    it("lists items of every user in id order; skip and limit page through them", async () => {
      const alice = await createUser();
      const bob = await createUser();
      const mine = [
        await createItem(alice.id, { title: "a1" }),
        await createItem(bob.id, { title: "b1", status: "published" }),
        await createItem(alice.id, { title: "a2" }),
      ];

      const everything = await listAll<Item>("/items");
      expect(everything).toEqual([...everything].sort(byId));
      const offset = everything.findIndex((i) => i.id === mine[0]!.id);
      expect(offset).toBeGreaterThanOrEqual(0);
      expect(everything.slice(offset, offset + 3)).toEqual(mine);

      const page = await call("GET", `/items?skip=${offset}&limit=2`);
      expect(page.status).toBe(200);
      expect(await page.json<Item[]>()).toEqual([mine[0], mine[1]]);
      const next = await call("GET", `/items?skip=${offset + 2}&limit=1`);
      expect(await next.json<Item[]>()).toEqual([mine[2]]);
      const beyond = await call("GET", `/items?skip=${everything.length + 1000}`);
      expect(beyond.status).toBe(200);
      expect(await beyond.json()).toEqual([]);
    });
  });

  describe("GET /tenant", () => {
    it("names the tenant the host belongs to", async () => {
      const res = await call("GET", "/tenant");
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ slug, name, status: "active" });
    });
  });

  describe("request ids", () => {
    it("the X-Request-Id header equals the error body's requestId", async () => {
      const res = await call("GET", "/users/2147483647");
      expect(res.status).toBe(404);
      const header = res.headers.get("X-Request-Id");
      expect(header).toBeTruthy();
      expect((await res.json<ErrorBody>()).error.requestId).toBe(header);
    });

    it("every response carries an id, different for each request", async () => {
      const a = await call("GET", "/tenant");
      const b = await call("GET", "/tenant");
      expect(a.headers.get("X-Request-Id")).toBeTruthy();
      expect(a.headers.get("X-Request-Id")).not.toBe(b.headers.get("X-Request-Id"));
    });

    it("a client's own X-Request-Id is echoed back in the header and the error", async () => {
      const res = await call("GET", "/users/2147483647", undefined, { "X-Request-Id": "client-trace-123" });
      expect(res.headers.get("X-Request-Id")).toBe("client-trace-123");
      expect((await res.json<ErrorBody>()).error.requestId).toBe("client-trace-123");
    });
  });
});

describe("the fleet these tests run at", () => {
  it("is one migration apart: api_ahead has the next tenant migration (recorded in the ledger), api does not", async () => {
    const applied = async (slug: string) =>
      (await ownerSql().query("SELECT migration FROM public.schema_migrations WHERE schema_name = $1 ORDER BY migration", [await schemaOf(slug)])).map(
        (r) => (r as { migration: string }).migration,
      );
    const head = await applied("api");
    const ahead = await applied("api_ahead");
    expect(ahead.slice(0, -1)).toEqual(head);
    expect(ahead.at(-1)).toMatch(/^\d{4}_rollout_in_progress$/);
    const columns = await ownerSql().query(
      "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'items' AND column_name = 'priority'",
      [await schemaOf("api_ahead")],
    );
    expect(columns).toEqual([{ n: 1 }]);
  });
});
