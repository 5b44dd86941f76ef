// The Worker's database client is a choice of configuration: neon-http (DATABASE_URL, over the SQL
// endpoint) by default, Hyperdrive with a TCP driver when a HYPERDRIVE binding exists (src/db/client.ts).
// Each side is shown by cutting off the other: with a HYPERDRIVE binding the Worker keeps answering
// while the HTTP endpoint is unreachable, and fails when only the binding is. In the default run the
// binding here is a stand-in (an object with the app role's connection string, reached straight over
// TCP); under TEST_DB_CLIENT=hyperdrive it is miniflare's real local Hyperdrive binding.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { adminToken, errorCode, ident, newClientIp, ownerSql, schemaOf, unreachableDatabase } from "./helpers.ts";

const DEAD_ENDPOINT = "http://127.0.0.1:9/sql";
/** A Hyperdrive binding to the Worker's database: the real one, or a stand-in with the same fields it reads. */
const hyperdrive = env.HYPERDRIVE ?? { connectionString: env.DATABASE_URL! };

async function call(host: string, path: string, bindings: object, init: RequestInit = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const request = new Request(`http://${host}${path}`, { ...init, headers: { "CF-Connecting-IP": newClientIp(), ...init.headers } });
  const res = await app.fetch(request, bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

describe("the database client as configuration", () => {
  it("with a HYPERDRIVE binding, queries go through it: the HTTP endpoint being down changes nothing", async () => {
    const bindings = { ...env, HYPERDRIVE: hyperdrive, LOCAL_SQL_ENDPOINT: DEAD_ENDPOINT };
    const health = await call("localhost", "/health", bindings);
    expect(health.status).toBe(200);
    expect(((await health.json()) as { database: { name: string } }).database.name).toBe(new URL(env.DATABASE_URL!).pathname.slice(1));

    // A tenant route: resolution (catalog), a write and a read of the tenant's own tables.
    const token = await adminToken("clientpick.test");
    const email = `tcp-${Date.now().toString(36)}@clientpick.test`;
    const created = await call("clientpick.test", "/users", bindings, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password: "long enough password" }),
    });
    expect(created.status).toBe(201);
    const listed = await call("clientpick.test", "/users", bindings, { headers: { Authorization: `Bearer ${token}` } });
    expect(listed.status).toBe(200);
    expect(((await listed.json()) as Array<{ email: string }>).map((u) => u.email)).toContain(email);
    const rows = (await ownerSql().query(`SELECT count(*)::int AS n FROM ${ident(await schemaOf("clientpick"))}.users WHERE email = $1`, [email])) as Array<{ n: number }>;
    expect(rows[0]!.n).toBe(1);
  });

  it("with a HYPERDRIVE binding that cannot be reached, the Worker answers 503 database_unavailable (it does not fall back)", async () => {
    const bindings = unreachableDatabase({ ...env, HYPERDRIVE: { connectionString: "postgresql://nobody:nothing@127.0.0.1:9/nowhere?sslmode=disable" } });
    const res = await call("clientpick.test", "/tenant", { ...bindings, LOCAL_SQL_ENDPOINT: env.LOCAL_SQL_ENDPOINT });
    expect(res.status).toBe(503);
    expect(await errorCode(res)).toBe("database_unavailable");
  });

  it("without a HYPERDRIVE binding, DATABASE_URL over HTTP is the client: the endpoint being down is 503", async () => {
    const bindings = { ...env, HYPERDRIVE: undefined, LOCAL_SQL_ENDPOINT: DEAD_ENDPOINT };
    const res = await call("clientpick.test", "/tenant", bindings);
    expect(res.status).toBe(503);
    expect(await errorCode(res)).toBe("database_unavailable");
    const up = await call("clientpick.test", "/tenant", { ...env, HYPERDRIVE: undefined });
    expect(up.status).toBe(200);
  });

  it("a HYPERDRIVE binding alone is enough configuration (no DATABASE_URL)", async () => {
    const res = await call("localhost", "/health", { ...env, HYPERDRIVE: hyperdrive, DATABASE_URL: undefined });
    expect(res.status).toBe(200);
  });
});
