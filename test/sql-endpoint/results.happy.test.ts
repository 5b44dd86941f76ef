// The `fullResults` shape through the real driver: fields as PostgreSQL described them, and the
// command and rowCount of each kind of statement, the same as a direct `pg` query reports.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, post, useScratchSchema } from "./helpers.ts";

const SCHEMA = "results_test";
const sql = driver();
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c));

const full = (query: string, params: unknown[] = []) => sql.query(query, params, { fullResults: true });

describe("fullResults", () => {
  it("reports command and rowCount for CREATE, INSERT, UPDATE, DELETE and SELECT", async () => {
    const create = await full(`CREATE TABLE ${SCHEMA}.items (id serial PRIMARY KEY, name varchar(20), price numeric(10,2))`);
    expect(create).toMatchObject({ command: "CREATE", rowCount: null, fields: [], rows: [] });

    const insert = await full(`INSERT INTO ${SCHEMA}.items (name, price) VALUES ('a', 1), ('b', 2), ('c', 3)`);
    expect(insert).toMatchObject({ command: "INSERT", rowCount: 3, fields: [], rows: [] });

    const update = await full(`UPDATE ${SCHEMA}.items SET price = price * 10 WHERE name <> $1`, ["a"]);
    expect(update).toMatchObject({ command: "UPDATE", rowCount: 2, rows: [] });

    const noop = await full(`UPDATE ${SCHEMA}.items SET price = 0 WHERE false`);
    expect(noop).toMatchObject({ command: "UPDATE", rowCount: 0 });

    const remove = await full(`DELETE FROM ${SCHEMA}.items WHERE name = $1`, ["b"]);
    expect(remove).toMatchObject({ command: "DELETE", rowCount: 1 });

    const select = await full(`SELECT name, price FROM ${SCHEMA}.items ORDER BY id`);
    expect(select).toMatchObject({ command: "SELECT", rowCount: 2, rows: [{ name: "a", price: "1.00" }, { name: "c", price: "30.00" }] });

    const empty = await full(`SELECT name FROM ${SCHEMA}.items WHERE false`);
    expect(empty).toMatchObject({ command: "SELECT", rowCount: 0, rows: [] });
    expect(empty.fields.map((f) => f.name)).toEqual(["name"]);

    const returning = await full(`INSERT INTO ${SCHEMA}.items (name, price) VALUES ('d', 4.5) RETURNING id, name`);
    expect(returning).toMatchObject({ command: "INSERT", rowCount: 1, rows: [{ id: 4, name: "d" }] });

    // The same statements straight to PostgreSQL agree on every command tag.
    for (const [query, result] of [
      [`UPDATE ${SCHEMA}.items SET price = 0 WHERE false`, noop],
      [`SELECT name FROM ${SCHEMA}.items WHERE false`, empty],
    ] as const) {
      const direct = await client.query(query);
      expect([result.command, result.rowCount]).toEqual([direct.command, direct.rowCount]);
    }

    const drop = await full(`DROP TABLE ${SCHEMA}.items`);
    expect(drop).toMatchObject({ command: "DROP", rowCount: null, fields: [] });
  });

  it("describes fields exactly as PostgreSQL does (table, column, type, size, modifier, format)", async () => {
    await client.query(
      `CREATE TABLE ${SCHEMA}.described (id bigint, label varchar(42), amount numeric(12,3), at timestamptz(3), flags bool[])`,
    );
    const query = `SELECT id, label, amount, at, flags, label AS again, 1 AS literal, NULL::text AS missing FROM ${SCHEMA}.described`;
    const got = await full(query);
    const direct = await client.query(query);
    expect(got.fields).toEqual(direct.fields.map((f) => ({ ...f })));

    const [{ oid }] = (await client.query(`SELECT '${SCHEMA}.described'::regclass::oid AS oid`)).rows;
    const byName = Object.fromEntries(got.fields.map((f) => [f.name, f]));
    expect(byName.id).toEqual({
      name: "id",
      tableID: Number(oid),
      columnID: 1,
      dataTypeID: 20,
      dataTypeSize: 8,
      dataTypeModifier: -1,
      format: "text",
    });
    expect(byName.label).toMatchObject({ tableID: Number(oid), columnID: 2, dataTypeID: 1043, dataTypeSize: -1, dataTypeModifier: 46 });
    expect(byName.amount).toMatchObject({ columnID: 3, dataTypeID: 1700, dataTypeModifier: ((12 << 16) | 3) + 4 });
    expect(byName.at).toMatchObject({ columnID: 4, dataTypeID: 1184, dataTypeModifier: 3 });
    expect(byName.flags).toMatchObject({ columnID: 5, dataTypeID: 1000 });
    expect(byName.literal).toMatchObject({ tableID: 0, columnID: 0, dataTypeID: 23, dataTypeSize: 4 });
    expect(byName.missing).toMatchObject({ tableID: 0, dataTypeID: 25 });
    expect(got.rowAsArray).toBe(false);
  });

  it("keeps duplicate column names in arrayMode and in the wire format", async () => {
    const got = await sql.query("SELECT 1 AS x, 2 AS x", [], { fullResults: true, arrayMode: true });
    expect(got.rows).toEqual([[1, 2]]);
    expect(got.fields.map((f) => f.name)).toEqual(["x", "x"]);
    expect(got.rowAsArray).toBe(true);
  });

  it("gives each query of a batch its own full result", async () => {
    const [first, second] = await sql.transaction(
      (tx) => [tx`SELECT 1 AS one`, tx`SELECT generate_series(1, 3) AS n`],
      { fullResults: true },
    );
    expect(first).toMatchObject({ command: "SELECT", rowCount: 1, rows: [{ one: 1 }] });
    expect(second).toMatchObject({ command: "SELECT", rowCount: 3, rows: [{ n: 1 }, { n: 2 }, { n: 3 }] });
  });

  it("answers a single query with the documented JSON shape", async () => {
    const res = await post({ query: "SELECT $1::int AS n, NULL AS z", params: ["7"] });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.json).toEqual({
      fields: [
        { name: "n", dataTypeID: 23, tableID: 0, columnID: 0, dataTypeSize: 4, dataTypeModifier: -1, format: "text" },
        { name: "z", dataTypeID: 25, tableID: 0, columnID: 0, dataTypeSize: -1, dataTypeModifier: -1, format: "text" },
      ],
      command: "SELECT",
      rowCount: 1,
      rows: [["7", null]],
      rowAsArray: true,
    });
  });

  it("honours a per-query arrayMode and missing params in the body", async () => {
    const res = await post({ query: "SELECT 1 AS a", arrayMode: false });
    expect(res.status).toBe(200);
    expect(res.json.rows).toEqual([{ a: "1" }]);
    expect(res.json.rowAsArray).toBe(false);
  });
});
