// With the Hyperdrive client, a transaction (`batch`, sign-up's claim) is BEGIN ... COMMIT on the
// request's one TCP connection. When that connection is lost between two of its statements (a
// pooler restart, an idle-in-transaction timeout), the rest of the transaction must fail: before,
// the next statement quietly opened a new connection and ran in autocommit, so the statements after
// the loss were committed and the caller saw success with half a transaction kept.
//
// One request through a small Hono app with the Worker's own connection middleware (a single
// app.fetch: no concurrency is tested here). The connection is cut at an exact point: batch awaits
// its queries in order, and the middle "query" is a thenable that terminates the request's server
// connection (as the database's superuser, over the SQL endpoint) while it is idle in transaction.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { contextStorage } from "hono/context-storage";
import { describe, expect, it } from "vitest";
import { bindTenant, requestConnections } from "../../src/db/client.ts";
import { WorkerConfigSchema, type AppEnv } from "../../src/env.ts";
import type { ResolvedTenant } from "../../src/tenancy/resolve.ts";
import { ident, ownerSql, schemaOf } from "./helpers.ts";

describe.skipIf(!env.HYPERDRIVE)("Hyperdrive: a connection lost inside a transaction", () => {
  it("fails the rest of the transaction; nothing of it is kept, nothing runs in autocommit", async () => {
    const schema = await schemaOf("api");
    const config = WorkerConfigSchema.parse(env);
    const row = (await ownerSql().query("SELECT id FROM shared.tenants WHERE slug = 'api'")) as Array<{ id: number }>;
    // Tests only: the tenancy module makes ResolvedTenants; here the record comes from the catalog.
    const tenant = { id: row[0]!.id, slug: "api", name: "API Tests", schema, status: "active" } as unknown as ResolvedTenant;
    const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const before = `before-${stamp}@lost.test`;
    const after = `after-${stamp}@lost.test`;

    let terminated = 0;
    const cutConnection = {
      then(resolve: (value: unknown) => void, reject: (error: unknown) => void) {
        (async () => {
          const rows = (await ownerSql().query(
            "SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' AND query ILIKE '%' || $1 || '%') t",
            [ident(schema)],
          )) as Array<{ n: number }>;
          terminated = rows[0]!.n;
          // Until the Worker's side has seen its connection go (PgBouncer closes it in turn).
          await new Promise((r) => setTimeout(r, 500));
          return null;
        })().then(resolve, reject);
      },
    };

    const app = new Hono<AppEnv>();
    app.use(contextStorage());
    app.use(requestConnections());
    app.post("/t", async (c) => {
      const { db, tables } = bindTenant(config, tenant);
      try {
        await db.batch([
          db.insert(tables.users).values({ email: before, hashedPassword: "x" }),
          cutConnection as never,
          db.insert(tables.users).values({ email: after, hashedPassword: "x" }),
        ]);
        return c.text("committed");
      } catch (error) {
        return c.text(`failed: ${(error as Error).name}`, 503);
      }
    });
    const ctx = createExecutionContext();
    const res = await app.fetch(new Request("http://api.test/t", { method: "POST" }), env, ctx);
    await waitOnExecutionContext(ctx);

    expect(terminated).toBe(1);
    expect(await res.text()).toBe("failed: DatabaseConnectionError");
    expect(res.status).toBe(503);
    const kept = (await ownerSql().query(`SELECT email FROM ${ident(schema)}.users WHERE email IN ($1, $2)`, [before, after])) as Array<{ email: string }>;
    expect(kept).toEqual([]);
  }, 30_000);
});
