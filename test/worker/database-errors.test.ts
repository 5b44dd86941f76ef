// Database errors are classified by SQLSTATE (and the driver's network and HTTP errors), never by
// message text; logs carry the SQLSTATE, the statement's first words and the request id, never the
// query's parameters. Real errors: raised by PostgreSQL (a trigger with the SQLSTATE a shutting-down
// or overloaded server sends, a CHECK constraint), through the real endpoint and driver.
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { adminToken, errorCode, ident, ownerSql, request, schemaOf } from "./helpers.ts";

afterEach(() => vi.restoreAllMocks());

let userId: number;

// On a Citus cluster (npm run test:citus) tenant tables are distributed, and Citus refuses the
// trigger these tests raise their SQLSTATEs with ("triggers are not supported on distributed
// tables"); the classification they check does not depend on the server, so they run on plain
// PostgreSQL only.
const onCitus =
  ((await ownerSql().query("SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'citus'")) as Array<{ n: number }>)[0]!.n > 0;

beforeAll(async () => {
  if (onCitus) return;
  const schema = ident(await schemaOf("faulty"));
  const sql = ownerSql();
  await sql.query(`
    CREATE OR REPLACE FUNCTION ${schema}.raise_title_state() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.title ~ '^[0-9A-Z]{5}$' THEN
        RAISE EXCEPTION 'simulated failure %', NEW.title USING ERRCODE = NEW.title;
      END IF;
      RETURN NEW;
    END $$`);
  await sql.query(`DROP TRIGGER IF EXISTS raise_title_state ON ${schema}.items`);
  await sql.query(`CREATE TRIGGER raise_title_state BEFORE INSERT ON ${schema}.items FOR EACH ROW EXECUTE FUNCTION ${schema}.raise_title_state()`);
  await sql.query(`ALTER TABLE ${schema}.users DROP CONSTRAINT IF EXISTS users_not_blocked`);
  await sql.query(`ALTER TABLE ${schema}.users ADD CONSTRAINT users_not_blocked CHECK (email NOT LIKE '%@blocked.test')`);
  const res = await request("faulty.test", { token: await adminToken("faulty.test"), path: "/users", method: "POST", body: { email: `f${Date.now()}@faulty.test`, password: "long enough" } });
  expect(res.status).toBe(201);
  userId = (await res.json<{ id: number }>()).id;
});

describe.skipIf(onCitus)("SQLSTATEs of a database that cannot serve us", () => {
  for (const state of ["57P01", "57P02", "57P03", "53300", "08006", "08001"]) {
    it(`${state} is 503 database_unavailable with Retry-After`, async () => {
      vi.spyOn(console, "error").mockImplementation(() => {});
      const res = await request("faulty.test", { token: await adminToken("faulty.test"), path: `/users/${userId}/items`, method: "POST", body: { title: state } });
      expect(res.status).toBe(503);
      expect(Number(res.headers.get("Retry-After"))).toBeGreaterThan(0);
      expect(await errorCode(res)).toBe("database_unavailable");
    });
  }

  it("57014 (a statement stopped by the app role's statement_timeout) is 503 statement_timeout", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await request("faulty.test", { token: await adminToken("faulty.test"), path: `/users/${userId}/items`, method: "POST", body: { title: "57014" } });
    expect(res.status).toBe(503);
    expect(await errorCode(res)).toBe("statement_timeout");
  });

  it("a query error (22012) stays 500 internal_error, without Retry-After", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await request("faulty.test", { token: await adminToken("faulty.test"), path: `/users/${userId}/items`, method: "POST", body: { title: "22012" } });
    expect(res.status).toBe(500);
    expect(res.headers.get("Retry-After")).toBeNull();
    expect(await errorCode(res)).toBe("internal_error");
  });
});

describe.skipIf(onCitus)("logs of a failing query", () => {
  it("carry the SQLSTATE, the statement's first words and the request id, never the parameters", async () => {
    const lines: string[] = [];
    for (const level of ["error", "warn", "log", "info", "debug"] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(args.map((a) => (a instanceof Error ? `${a.message}\n${a.stack}\n${String((a as { cause?: unknown }).cause)}` : typeof a === "string" ? a : JSON.stringify(a))).join(" "));
      });
    }
    const email = `secret.person.${Date.now()}@blocked.test`;
    const res = await request("faulty.test", { token: await adminToken("faulty.test"), path: "/users", method: "POST", body: { email, password: "correct horse battery", fullName: "Secret Person" } });
    expect(res.status).toBe(500);
    expect(await errorCode(res)).toBe("internal_error");
    const requestId = res.headers.get("X-Request-Id")!;
    const output = lines.join("\n");
    expect(output).toContain(requestId);
    expect(output).toContain("23514");
    expect(output).toMatch(/insert into/i);
    expect(output).not.toContain("secret.person");
    expect(output).not.toContain("Secret Person");
    expect(output).not.toContain("pbkdf2");
    expect(output).not.toMatch(/Failing row|params:/);
  });
});

// The 10 MB response limit is the HTTP endpoint's (Neon's, and the local endpoint's); the Hyperdrive
// client (TEST_DB_CLIENT=hyperdrive) reads rows over TCP, where no such limit exists.
describe.skipIf(env.HYPERDRIVE)("a response over the database's size limit", () => {
  it("is 500 response_too_large, without Retry-After (retrying cannot help)", async () => {
    const schema = ident(await schemaOf("bulky"));
    const rows = (await ownerSql().query(
      `WITH u AS (INSERT INTO ${schema}.users (email, hashed_password) VALUES ('big${Date.now()}@bulky.test', 'x') RETURNING id)
       INSERT INTO ${schema}.items (title, description, owner_id) SELECT 'huge', repeat('x', 11 * 1024 * 1024), id FROM u RETURNING owner_id`,
    )) as Array<{ owner_id: number }>;
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await request("bulky.test", { token: await adminToken("bulky.test"), path: `/users/${rows[0]!.owner_id}` });
    expect(res.status).toBe(500);
    expect(await errorCode(res)).toBe("response_too_large");
    expect(res.headers.get("Retry-After")).toBeNull();
  });
});
