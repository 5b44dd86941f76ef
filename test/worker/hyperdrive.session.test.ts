// Hyperdrive pools server connections in transaction mode: a session setting one client leaves on a
// server connection stays there for whoever gets that connection next. The Worker must not care
// (ARCHITECTURE.md invariant 3: every tenant table is schema-qualified in the SQL itself; nothing
// relies on search_path or SET). Under TEST_DB_CLIENT=hyperdrive the HYPERDRIVE binding goes through
// a real PgBouncer in transaction mode with 5 server connections (test/global-setup.ts): this file
// leaves `search_path` pointing at another tenant's schema on every one of them, then sends the
// Worker separate requests (exports.default.fetch, each its own request) and checks they read and
// write their own tenant only, and that the setting really was still there.
import { env, exports } from "cloudflare:workers";
import type pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { newClient } from "../../src/db/client.ts";
import { adminToken, ident, newClientIp, ownerSql, schemaOf } from "./helpers.ts";

/** Hyperdrive's (and the test pool's) number of server connections. */
const POOL_SIZE = 5;

async function connected(): Promise<pg.Client> {
  const client = newClient(env.HYPERDRIVE!, () => {});
  await client.connect();
  return client;
}

/**
 * Runs `statement` as a session setting on every server connection of the pool: POOL_SIZE clients
 * each hold a transaction open at once (so each has a server connection of its own), set it (plain
 * SET, not SET LOCAL: it outlives the transaction) and commit. The pool keeps the connections.
 */
async function setOnEveryPooledConnection(statement: string): Promise<void> {
  const clients = await Promise.all(Array.from({ length: POOL_SIZE }, connected));
  try {
    await Promise.all(
      clients.map(async (client) => {
        await client.query("BEGIN");
        await client.query(statement);
        await client.query("SELECT pg_sleep(0.5)");
        await client.query("COMMIT");
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

async function send(host: string, path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`http://${host}${path}`, { ...init, headers: { "CF-Connecting-IP": newClientIp(), ...init.headers } }));
}

describe.runIf(env.HYPERDRIVE)("session state through Hyperdrive's transaction-mode pool", () => {
  afterAll(async () => {
    await setOnEveryPooledConnection("RESET search_path");
  });

  it("a search_path left on the pooled connections is invisible to the Worker's next requests", async () => {
    const mine = await schemaOf("poola");
    const other = await schemaOf("poolb");
    const token = await adminToken("poola.test");
    const sql = ownerSql();
    // A user of the other tenant: were the Worker to follow search_path, it would list this one.
    const theirs = `theirs-${Date.now().toString(36)}@poolb.test`;
    await sql.query(`INSERT INTO ${ident(other)}.users (email, hashed_password) VALUES ($1, 'x')`, [theirs]);
    await setOnEveryPooledConnection(`SET search_path TO ${ident(other)}, shared`);

    // A write and reads, each its own request: all land in poola's schema.
    const email = `pooled-${Date.now().toString(36)}@poola.test`;
    const created = await send("poola.test", "/users", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password: "long enough password" }),
    });
    expect(created.status).toBe(201);
    const listed = await send("poola.test", "/users", { headers: { Authorization: `Bearer ${token}` } });
    expect(listed.status).toBe(200);
    const emails = ((await listed.json()) as Array<{ email: string }>).map((u) => u.email);
    expect(emails).toContain(email);
    expect(emails).not.toContain(theirs);

    const inMine = (await sql.query(`SELECT count(*)::int AS n FROM ${ident(mine)}.users WHERE email = $1`, [email])) as Array<{ n: number }>;
    const inOther = (await sql.query(`SELECT count(*)::int AS n FROM ${ident(other)}.users WHERE email = $1`, [email])) as Array<{ n: number }>;
    expect(inMine[0]!.n).toBe(1);
    expect(inOther[0]!.n).toBe(0);

    // The setting was really there: a plain client of the same pool still finds it.
    const probe = await connected();
    try {
      const shown = await probe.query<{ search_path: string }>("SHOW search_path");
      expect(shown.rows[0]!.search_path).toContain(other);
    } finally {
      await probe.end();
    }
  });
});
