// After `tenants adopt`, `npm run dev` against that database (DATABASE_URL, with APP_DATABASE_URL
// for the Worker's app role) serves the adopted rows at the tenant's host: reads through the
// tenancy middleware and Drizzle, and writes that continue the adopted sequences, all as the
// least-privilege app role.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { signCredential } from "../../src/auth/credentials.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { buildAppFixture } from "../fixtures/single-tenant-app.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { postJson as post } from "../support/dev-command.ts";

const key = randomBytes(4).toString("hex");
const HOST = `adopted${key}.localhost`;
const APP_ROLE = `adopt_app_${key}`;
const APP_PASSWORD = randomBytes(18).toString("base64url");
/** The Worker's signing key for this run (npm run dev takes SESSION_SECRET from the environment). */
const SESSION_SECRET = randomBytes(32).toString("hex");

describe("the Worker serves an adopted database", () => {
  let dev: ChildProcess | undefined;
  let output = "";
  let port: number;
  let client: pg.Client;
  let schema: string;
  /** An admin of the adopted tenant (user 1, made one with SQL as an operator would). */
  let admin: Record<string, string>;

  beforeAll(async () => {
    const databaseUrl = await freshDatabase("adopt_e2e");
    client = await connectTo(databaseUrl);
    await buildAppFixture(client, { users: 300, itemsPerUser: 3 });
    const adopted = await tenantsCli(
      { databaseUrl, env: { APP_DATABASE_PASSWORD: APP_PASSWORD } },
      "adopt", "acme", "--name", "Acme Corp", "--host", HOST, "--shared", "plans", "--app-role", APP_ROLE,
    );
    expect(adopted.code, show(adopted)).toBe(0);
    const tenant = (await client.query("SELECT id, schema_name FROM shared.tenants WHERE slug = 'acme'")).rows[0];
    schema = tenant.schema_name;
    await client.query(`UPDATE "${schema}".users SET role = 'admin' WHERE id = 1`);
    const now = Math.floor(Date.now() / 1000);
    const token = await signCredential(SESSION_SECRET, { k: "token", t: Number(tenant.id), s: schema, u: 1, iat: now, exp: now + 3600 });
    admin = { Authorization: `Bearer ${token}` };

    const appUrl = new URL(databaseUrl);
    appUrl.username = APP_ROLE;
    appUrl.password = APP_PASSWORD;
    port = await freePort();
    dev = spawn(resolve("node_modules/.bin/tsx"), ["scripts/dev.ts"], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        APP_DATABASE_URL: appUrl.toString(),
        LOCAL_SQL_PORT: String(await freePort()),
        WORKER_PORT: String(port),
        SESSION_SECRET,
      },
      cwd: resolve("."),
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    dev.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    dev.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 90_000;
    for (;;) {
      if (dev.exitCode !== null) throw new Error(`npm run dev exited early:\n${output}`);
      const res = await getByHost(port, HOST, "/tenant").catch(() => undefined);
      if (res?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`npm run dev did not serve ${HOST} in time (last: ${res?.status} ${res?.body}):\n${output}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 150_000);

  afterAll(async () => {
    if (dev && dev.exitCode === null) {
      const exited = new Promise((r) => dev!.once("exit", r));
      process.kill(-dev.pid!, "SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (dev.exitCode === null) process.kill(-dev.pid!, "SIGKILL");
    }
    await dropTestDatabases();
    const admin = await connectTo(inject("databaseUrl"));
    await admin.query(`DROP ROLE IF EXISTS ${APP_ROLE}`).catch(() => {});
    await admin.end();
  }, 60_000);

  it("answers at the adopted host with the tenant", async () => {
    const res = await getByHost(port, HOST, "/tenant");
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ slug: "acme", name: "Acme Corp", status: "active" });
    expect(output).toContain("DATABASE_URL is set: serving that database as it is");
  });

  it("serves the adopted users and their items", async () => {
    const res = await getByHost(port, HOST, "/users?limit=3", { headers: admin });
    expect(res.status, res.body).toBe(200);
    const users = JSON.parse(res.body) as Array<{ id: number; email: string; items: Array<{ id: number; title: string; status: string }> }>;
    expect(users.map((u) => [u.id, u.email])).toEqual([
      [1, "user1@app.test"],
      [2, "user2@app.test"],
      [3, "user3@app.test"],
    ]);
    const { rows } = await client.query(`SELECT id, title, status::text FROM "${schema}".items WHERE owner_id = 2 ORDER BY id`);
    expect(users[1]!.items.map((i) => ({ id: i.id, title: i.title, status: i.status }))).toEqual(rows);
    expect(rows.length).toBe(3);

    const one = await getByHost(port, HOST, "/users/300", { headers: admin });
    expect(one.status).toBe(200);
    expect(JSON.parse(one.body).email).toBe("user300@app.test");
  });

  it("writes through the Worker continue the adopted sequences", async () => {
    const user = await post(port, HOST, "/users", { email: "new@acme.test", password: "correct-horse" });
    expect(user.status, user.body).toBe(201);
    expect(JSON.parse(user.body).id).toBe(301);
    const item = await post(port, HOST, "/users/301/items", { title: "Written through the Worker", status: "published" }, admin);
    expect(item.status, item.body).toBe(201);
    expect(JSON.parse(item.body)).toMatchObject({ id: 901, title: "Written through the Worker", status: "published", ownerId: 301 })
    // The app's own view over items sees it (it moved with the table).
    expect((await client.query(`SELECT title FROM "${schema}".published_items WHERE id = 901`)).rows).toEqual([{ title: "Written through the Worker" }]);
  });
});
