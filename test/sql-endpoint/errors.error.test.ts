// PostgreSQL's errors reach the driver as NeonDbError with every field PostgreSQL set (the same as
// pg's DatabaseError for the same statement); batches fail as a whole.
import { NeonDbError } from "@neondatabase/serverless";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, post, useScratchSchema } from "./helpers.ts";

const SCHEMA = "errors_test";
const sql = driver();
let client: pg.Client;

const ERROR_FIELDS = [
  "message",
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

function fieldsOf(error: unknown): Record<string, unknown> {
  const e = error as Record<string, unknown>;
  return Object.fromEntries(ERROR_FIELDS.map((f) => [f, e[f] ?? undefined]));
}

/** The error the driver throws and the one pg throws for the same statement. */
async function bothErrors(query: string, params: unknown[] = []) {
  const viaDriver = await sql.query(query, params).then(
    () => expect.unreachable(`${query} should fail through the driver`),
    (error: unknown) => error,
  );
  const direct = await client.query({ text: query, values: params, queryMode: "extended" } as pg.QueryConfig).then(
    () => expect.unreachable(`${query} should fail on pg`),
    (error: unknown) => error,
  );
  expect(viaDriver).toBeInstanceOf(NeonDbError);
  expect(direct).toBeInstanceOf(pg.DatabaseError);
  return { viaDriver: viaDriver as NeonDbError, direct: direct as pg.DatabaseError };
}

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`
    CREATE TABLE ${SCHEMA}.accounts (
      id int PRIMARY KEY, email text NOT NULL CONSTRAINT accounts_email_unique UNIQUE,
      balance int CHECK (balance >= 0)
    )`);
  await client.query(`INSERT INTO ${SCHEMA}.accounts VALUES (1, 'a@example.com', 10)`);
});

describe("PostgreSQL errors through the driver", () => {
  it("reports a unique violation with code, detail, constraint, table and schema", async () => {
    const { viaDriver, direct } = await bothErrors(`INSERT INTO ${SCHEMA}.accounts VALUES ($1, $2, 0)`, [2, "a@example.com"]);
    expect(viaDriver).toMatchObject({
      name: "NeonDbError",
      message: 'duplicate key value violates unique constraint "accounts_email_unique"',
      code: "23505",
      detail: "Key (email)=(a@example.com) already exists.",
      constraint: "accounts_email_unique",
      table: "accounts",
      schema: SCHEMA,
      severity: "ERROR",
    });
    expect(fieldsOf(viaDriver)).toEqual(fieldsOf(direct));
  });

  it("reports a bad column with its code and position", async () => {
    const { viaDriver, direct } = await bothErrors(`SELECT id, no_such_column FROM ${SCHEMA}.accounts`);
    expect(viaDriver).toMatchObject({ code: "42703", position: "12", message: 'column "no_such_column" does not exist' });
    expect(fieldsOf(viaDriver)).toEqual(fieldsOf(direct));

    const insert = await bothErrors(`INSERT INTO ${SCHEMA}.accounts (id, nope) VALUES (5, 1)`);
    expect(insert.viaDriver.code).toBe("42703");
    expect(fieldsOf(insert.viaDriver)).toEqual(fieldsOf(insert.direct));
  });

  it("reports not-null and check violations with column and constraint", async () => {
    const notNull = await bothErrors(`INSERT INTO ${SCHEMA}.accounts (id, email) VALUES (3, NULL)`);
    expect(notNull.viaDriver).toMatchObject({ code: "23502", column: "email", table: "accounts", schema: SCHEMA });
    expect(fieldsOf(notNull.viaDriver)).toEqual(fieldsOf(notNull.direct));

    const check = await bothErrors(`UPDATE ${SCHEMA}.accounts SET balance = -1 WHERE id = 1`);
    expect(check.viaDriver).toMatchObject({ code: "23514", constraint: "accounts_balance_check" });
    expect(fieldsOf(check.viaDriver)).toEqual(fieldsOf(check.direct));
  });

  it("reports a syntax error with its position", async () => {
    const { viaDriver, direct } = await bothErrors("SELECT 1 FROM WHERE x = 1");
    expect(viaDriver).toMatchObject({ code: "42601", position: "15", message: 'syntax error at or near "WHERE"' });
    expect(fieldsOf(viaDriver)).toEqual(fieldsOf(direct));
  });

  it("reports hint, where, internalQuery and internalPosition from PL/pgSQL", async () => {
    const raise = await bothErrors(
      "DO $$ BEGIN RAISE EXCEPTION 'boom %', 42 USING ERRCODE = 'P0099', DETAIL = 'the detail', HINT = 'the hint'; END $$",
    );
    expect(raise.viaDriver).toMatchObject({ message: "boom 42", code: "P0099", detail: "the detail", hint: "the hint" });
    expect(raise.viaDriver.where).toContain("PL/pgSQL function inline_code_block");
    expect(fieldsOf(raise.viaDriver)).toEqual(fieldsOf(raise.direct));

    const internal = await bothErrors("DO $$ BEGIN PERFORM no_such_column FROM pg_class; END $$");
    expect(internal.viaDriver.internalQuery).toBe("SELECT no_such_column FROM pg_class");
    expect(internal.viaDriver.internalPosition).toBe("8");
    expect(fieldsOf(internal.viaDriver)).toEqual(fieldsOf(internal.direct));
  });

  it("refuses two statements in one query", async () => {
    const { viaDriver, direct } = await bothErrors("SELECT 1; SELECT 2");
    expect(viaDriver).toMatchObject({ code: "42601", message: "cannot insert multiple commands into a prepared statement" });
    expect(fieldsOf(viaDriver)).toEqual(fieldsOf(direct));

    // Nothing of a multi-statement string runs.
    await expect(sql.query(`INSERT INTO ${SCHEMA}.accounts VALUES (90, 'x@y', 1); SELECT 1`)).rejects.toThrow(
      "cannot insert multiple commands into a prepared statement",
    );
    expect((await client.query(`SELECT 1 FROM ${SCHEMA}.accounts WHERE id = 90`)).rowCount).toBe(0);
  });

  it("sends Neon's error body over HTTP: status 400, every field present, absent ones null", async () => {
    const res = await post({ query: `SELECT nope FROM ${SCHEMA}.accounts`, params: [] });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(Object.keys(res.json).sort()).toEqual([...ERROR_FIELDS].sort());
    expect(res.json).toMatchObject({ code: "42703", position: "8", severity: "ERROR", detail: null, hint: null });
    expect(typeof res.json.line).toBe("string");
  });

  it("keeps serving after errors (a failed session is not reused broken)", async () => {
    for (let i = 0; i < 5; i++) {
      await expect(sql`SELECT 1/0`).rejects.toMatchObject({ code: "22012" });
      await expect(sql`SELECT ${i}::int AS i`).resolves.toEqual([{ i }]);
    }
  });
});

describe("batches (sql.transaction)", () => {
  it("leaves nothing of the first queries when the third fails", async () => {
    const attempt = sql.transaction([
      sql`INSERT INTO ${sql.unsafe(SCHEMA)}.accounts VALUES (10, 'ten@example.com', 1)`,
      sql`UPDATE ${sql.unsafe(SCHEMA)}.accounts SET balance = 999 WHERE id = 1`,
      sql`INSERT INTO ${sql.unsafe(SCHEMA)}.accounts VALUES (11, 'a@example.com', 1)`,
      sql`INSERT INTO ${sql.unsafe(SCHEMA)}.accounts VALUES (12, 'twelve@example.com', 1)`,
    ]);
    await expect(attempt).rejects.toMatchObject({ name: "NeonDbError", code: "23505", constraint: "accounts_email_unique" });
    const rows = await client.query(`SELECT id, balance FROM ${SCHEMA}.accounts ORDER BY id`);
    expect(rows.rows).toEqual([{ id: 1, balance: 10 }]);
  });

  it("commits every query of a batch that succeeds", async () => {
    const [, , read] = await sql.transaction((tx) => [
      tx`INSERT INTO ${tx.unsafe(SCHEMA)}.accounts VALUES (20, 'twenty@example.com', 1)`,
      tx`UPDATE ${tx.unsafe(SCHEMA)}.accounts SET balance = balance + 5 WHERE id = 20`,
      tx`SELECT balance FROM ${tx.unsafe(SCHEMA)}.accounts WHERE id = 20`,
    ]);
    expect(read).toEqual([{ balance: 6 }]);
    const stored = await client.query(`SELECT balance FROM ${SCHEMA}.accounts WHERE id = 20`);
    expect(stored.rows).toEqual([{ balance: 6 }]);
    await client.query(`DELETE FROM ${SCHEMA}.accounts WHERE id = 20`);
  });

  it("refuses writes in a read-only batch (25006) and allows reads", async () => {
    await expect(
      sql.transaction([sql`INSERT INTO ${sql.unsafe(SCHEMA)}.accounts VALUES (30, 'ro@example.com', 1)`], { readOnly: true }),
    ).rejects.toMatchObject({
      name: "NeonDbError",
      code: "25006",
      message: "cannot execute INSERT in a read-only transaction",
    });
    expect((await client.query(`SELECT 1 FROM ${SCHEMA}.accounts WHERE id = 30`)).rowCount).toBe(0);

    const [rows] = await sql.transaction([sql`SELECT count(*)::int AS n FROM ${sql.unsafe(SCHEMA)}.accounts`], {
      readOnly: true,
    });
    expect(rows).toEqual([{ n: 1 }]);
  });

  it("echoes the batch headers that were set", async () => {
    const res = await post(
      { queries: [{ query: "SELECT 1", params: [] }] },
      { "Neon-Batch-Isolation-Level": "RepeatableRead", "Neon-Batch-Read-Only": "true" },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("neon-batch-isolation-level")).toBe("RepeatableRead");
    expect(res.headers.get("neon-batch-read-only")).toBe("true");
    expect(res.json.results).toHaveLength(1);
  });
});
