// Requests the endpoint refuses before reaching PostgreSQL: wrong path or method, bad JSON, bad
// connection strings, a bad isolation level. Each is a 400 with a JSON error body the driver can
// read. (Requests from web pages are refused: web-pages.security.test.ts.)
import { describe, expect, it } from "vitest";
import { connectionStringWith, databaseUrl, driver, endpointUrl, post, protocolHeaders } from "./helpers.ts";

const sql = driver();

function expectEndpointError(res: { status: number; json: any }, message: string | RegExp) {
  expect(res.status).toBe(400);
  expect(res.json).toBeTypeOf("object");
  if (typeof message === "string") expect(res.json.message).toBe(message);
  else expect(res.json.message).toMatch(message);
  expect(res.json.code).toBe("");
  expect(res.json.severity).toBe("");
}

describe("HTTP surface", () => {
  it.each(["/", "/sql/", "/sqlx", "/v1/sql", "/api/sql"])("refuses POST %s with 400", async (path) => {
    const res = await fetch(new URL(path, endpointUrl()), {
      method: "POST",
      headers: protocolHeaders(),
      body: JSON.stringify({ query: "SELECT 1", params: [] }),
    });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.rows).toBeUndefined();
    expect(body.message).toEqual(expect.any(String));
  });

  it("accepts a query string on /sql", async () => {
    const res = await fetch(`${endpointUrl()}?x=1`, {
      method: "POST",
      headers: protocolHeaders(),
      body: JSON.stringify({ query: "SELECT 1 AS one", params: [] }),
    });
    expect(res.status).toBe(200);
    expect((await res.json()).rows).toEqual([["1"]]);
  });

  it("treats the body as JSON whatever the Content-Type", async () => {
    for (const type of ["text/plain;charset=UTF-8", "application/json", "application/octet-stream"]) {
      const res = await fetch(endpointUrl(), {
        method: "POST",
        headers: { ...protocolHeaders(), "Content-Type": type },
        body: JSON.stringify({ query: "SELECT 'ok' AS s", params: [] }),
      });
      expect(res.status).toBe(200);
      expect((await res.json()).rows).toEqual([["ok"]]);
    }
  });
});

describe("bad requests", () => {
  it.each(["{not json", "", "[1,", '{"query": "SELECT 1"'])("answers unparseable JSON %j with 400 and a JSON error body", async (body) => {
    const res = await post(body);
    expectEndpointError(res, /^could not parse the HTTP request body/);
  });

  it.each([
    ["a number", "42"],
    ["a query that is not a string", '{"query": 1}'],
    ["params that are not an array", '{"query": "SELECT 1", "params": "x"}'],
    ["a batch item without query", '{"queries": [{"params": []}]}'],
  ])("answers a body with %s with 400", async (_, body) => {
    expectEndpointError(await post(body), /^could not parse the HTTP request body/);
  });

  it("answers a connection string without a user or a database with 400", async () => {
    const url = new URL(databaseUrl());
    const noUser = `postgresql://${url.host}/${url.pathname.slice(1)}`;
    expectEndpointError(await post({ query: "SELECT 1" }, { "Neon-Connection-String": noUser }), "missing username");

    const noDatabase = connectionStringWith({ database: "" });
    expectEndpointError(await post({ query: "SELECT 1" }, { "Neon-Connection-String": noDatabase }), "missing database name");

    const res = await post({ query: "SELECT 1" }, { "Neon-Connection-String": "not a url" });
    expectEndpointError(res, /^invalid connection string/);
    expectEndpointError(await post({ query: "SELECT 1" }, { "Neon-Connection-String": "mysql://u:p@h/db" }), /^invalid connection string/);
  });

  it("answers a missing connection string with 400", async () => {
    const res = await fetch(endpointUrl(), { method: "POST", body: JSON.stringify({ query: "SELECT 1" }) });
    expect(res.status).toBe(400);
    expect((await res.json()).message).toMatch(/connection string/);
  });

  it("answers an invalid isolation level with 400 and runs nothing", async () => {
    const res = await post(
      { queries: [{ query: "SELECT pg_advisory_xact_lock(1)", params: [] }] },
      { "Neon-Batch-Isolation-Level": "Bogus" },
    );
    expectEndpointError(res, "invalid isolation level");

    for (const level of ["serializable", "SERIALIZABLE", "Read Committed", ""]) {
      const other = await post({ queries: [{ query: "SELECT 1", params: [] }] }, { "Neon-Batch-Isolation-Level": level });
      expect(other.status, level).toBe(400);
    }
    await expect(
      sql.transaction([sql`SELECT 1`], { isolationLevel: "Bogus" as "Serializable" }),
    ).rejects.toMatchObject({ name: "NeonDbError", message: "invalid isolation level" });
  });

  it("treats batch flags as true only when exactly 'true'", async () => {
    const query = "SELECT current_setting('transaction_read_only') AS ro";
    for (const [value, expected] of [["true", "on"], ["TRUE", "off"], ["1", "off"], ["false", "off"]]) {
      const res = await post({ queries: [{ query, params: [] }] }, { "Neon-Batch-Read-Only": value! });
      expect(res.status).toBe(200);
      expect(res.json.results[0].rows, value).toEqual([[expected]]);
    }
  });
});

describe("COPY over HTTP", () => {
  it("refuses COPY FROM STDIN with a clear error and keeps serving", async () => {
    const { driver } = await import("./helpers.ts");
    const sql = driver();
    await expect(sql.query("COPY (SELECT 1) TO STDOUT")).resolves.toBeDefined();
    await sql.query("CREATE SCHEMA IF NOT EXISTS copy_test");
    await sql.query("CREATE TABLE IF NOT EXISTS copy_test.target (n int)");
    await expect(sql.query("COPY copy_test.target FROM STDIN")).rejects.toThrow(/COPY FROM STDIN is not supported/);
    expect(await sql.query("SELECT 41 + 1 AS answer")).toEqual([{ answer: 42 }]);
  });
});
