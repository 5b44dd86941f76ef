// JS values passed as parameters through the real driver reach PostgreSQL as the same values a
// direct `pg` query would bind: same stored text, same round trip.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, post, RAW_TYPES, rawDirect, useScratchSchema } from "./helpers.ts";

const SCHEMA = "params_test";
const sql = driver();
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TYPE ${SCHEMA}.color AS ENUM ('red', 'green', 'dark blue')`);
  await client.query(`
    CREATE TABLE ${SCHEMA}.kinds (
      via text, si smallint, i integer, bi bigint, num numeric, r real, d double precision, b boolean,
      t text, by bytea, j json, jb jsonb, ia int[], ta text[], m int[][], da date, ts timestamp,
      tstz timestamptz, iv interval, u uuid, c ${SCHEMA}.color
    )`);
});

const INSTANT = new Date("2024-02-29T18:29:59.123Z");

// [SQL type, JS value, PostgreSQL's text output of the bound value]
const CASES: Array<[string, unknown, string | null]> = [
  ["int2", -32768, "-32768"],
  ["int4", 2147483647, "2147483647"],
  ["int4", -0, "0"],
  ["int8", 9223372036854775807n, "9223372036854775807"],
  ["int8", -9223372036854775808n, "-9223372036854775808"],
  ["int8", "9007199254740993", "9007199254740993"],
  ["numeric", "12345678901234567890.000000000000000000001", "12345678901234567890.000000000000000000001"],
  ["numeric", 1.5, "1.5"],
  ["float8", 0.1, "0.1"],
  ["float8", Number.NaN, "NaN"],
  ["float8", -Infinity, "-Infinity"],
  ["float4", 3.25, "3.25"],
  ["bool", true, "t"],
  ["bool", false, "f"],
  ["text", "😀 漢字 e\u0301 ' \" \\ \\\\ \n\t%_$1", "😀 漢字 e\u0301 ' \" \\ \\\\ \n\t%_$1"],
  ["text", "", ""],
  ["text", null, null],
  ["bytea", Buffer.from([0, 255, 16, 92]), "\\x00ff105c"],
  ["bytea", new Uint8Array([1, 2, 3]), "\\x010203"],
  ["bytea", Buffer.alloc(0), "\\x"],
  ["json", { a: 1, b: ["x", null], c: "é\"\\" }, '{"a":1,"b":["x",null],"c":"é\\"\\\\"}'],
  ["jsonb", { z: [true, { n: null }], a: 2.5 }, '{"a": 2.5, "z": [true, {"n": null}]}'],
  ["int4[]", [1, 2, 3], "{1,2,3}"],
  ["int4[]", [1, null, 3], "{1,NULL,3}"],
  ["int4[]", [], "{}"],
  ["int4[][]", [[1, 2], [3, null]], "{{1,2},{3,NULL}}"],
  ["text[]", ["a,b", 'c"d', null, "e\\f", "", "NULL", "{x}", "😀"], '{"a,b","c\\"d",NULL,"e\\\\f","","NULL","{x}",😀}'],
  ["text[][]", [["a", "b c"], ["d", null]], '{{a,"b c"},{d,NULL}}'],
  ["date", "2024-02-29", "2024-02-29"],
  ["timestamptz", INSTANT, "2024-02-29 18:29:59.123+00"],
  ["timestamp", "2024-02-29 23:59:59.123456", "2024-02-29 23:59:59.123456"],
  ["interval", "1 year 2 mons 3 days 04:05:06.789", "1 year 2 mons 3 days 04:05:06.789"],
  ["uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
  [`${SCHEMA}.color`, "dark blue", "dark blue"],
];

describe("parameters of each kind", () => {
  it.each(CASES)("binds %s %o like pg does", async (type, value, text) => {
    const query = `SELECT $1::${type} AS v, pg_typeof($1::${type})::text AS type`;
    const expected = await rawDirect(client, query, [value]);
    const got = await sql.query(query, [value], { arrayMode: true, fullResults: true, types: RAW_TYPES });
    expect(got.rows).toEqual(expected.rows);
    expect(got.rows[0]![0]).toBe(text);
  });

  it("infers untyped parameters as PostgreSQL does for unknown text", async () => {
    const query = "SELECT $1 AS a, $2::int + 1 AS b, $3 = 'x' AS c";
    const values = ["hello", 41, "x"];
    const expected = await client.query({ text: query, values, rowMode: "array", types: RAW_TYPES });
    const got = await sql.query(query, values, { arrayMode: true, fullResults: true, types: RAW_TYPES });
    expect(got.rows).toEqual([["hello", "42", "t"]]);
    expect(got.rows).toEqual(expected.rows);
    expect(got.fields.map((f) => f.dataTypeID)).toEqual(expected.fields.map((f) => f.dataTypeID));
  });

  it("stores a row inserted through the driver exactly like the same row inserted with pg", async () => {
    const values = [
      -5,
      123456,
      -9223372036854775807n,
      "98765432109876543210.0123456789",
      1.25,
      Math.PI,
      true,
      "naïve 😀 'quoted' \\slash",
      Buffer.from("héllo\0world"),
      { nested: { list: [1, "two", null] } },
      { "key with space": "v", emoji: "😀" },
      [7, null, 9],
      ["x,y", null, '"q"'],
      [
        [1, 2],
        [3, 4],
      ],
      "1999-12-31",
      "2000-01-01 00:00:00",
      INSTANT,
      "36 hours",
      "00000000-0000-0000-0000-000000000001",
      "green",
    ];
    const columns = "si, i, bi, num, r, d, b, t, by, j, jb, ia, ta, m, da, ts, tstz, iv, u, c";
    const placeholders = values.map((_, i) => `$${i + 2}`).join(", ");
    const insert = `INSERT INTO ${SCHEMA}.kinds (via, ${columns}) VALUES ($1, ${placeholders})`;

    const viaDriver = await sql.query(insert, ["driver", ...values], { fullResults: true });
    expect(viaDriver.command).toBe("INSERT");
    expect(viaDriver.rowCount).toBe(1);
    await client.query(insert, ["pg", ...values]);

    const stored = await rawDirect(client, `SELECT via, ${columns} FROM ${SCHEMA}.kinds ORDER BY via`);
    const [fromDriver, fromPg] = stored.rows as unknown[][];
    expect(fromDriver![0]).toBe("driver");
    expect(fromDriver!.slice(1)).toEqual(fromPg!.slice(1));
    expect(fromDriver!.slice(1, 4)).toEqual(["-5", "123456", "-9223372036854775807"]);
    expect(fromDriver![9]).toBe("\\x68c3a96c6c6f00776f726c64");
    expect(fromDriver![13]).toBe('{"x,y",NULL,"\\"q\\""}');

    // And reading it back through the driver gives the JS values that went in.
    const [row] = (await sql.query(`SELECT ${columns} FROM ${SCHEMA}.kinds WHERE via = $1`, ["driver"])) as Record<
      string,
      unknown
    >[];
    expect(row).toMatchObject({
      si: -5,
      bi: "-9223372036854775807",
      num: "98765432109876543210.0123456789",
      d: Math.PI,
      t: "naïve 😀 'quoted' \\slash",
      j: { nested: { list: [1, "two", null] } },
      jb: { "key with space": "v", emoji: "😀" },
      ia: [7, null, 9],
      ta: ["x,y", null, '"q"'],
      m: [
        [1, 2],
        [3, 4],
      ],
      c: "green",
    });
    expect(Buffer.from(row!.by as Uint8Array).toString()).toBe("héllo\0world");
    expect((row!.tstz as Date).getTime()).toBe(INSTANT.getTime());
  });

  it("accepts non-string JSON params over HTTP: arrays as PG array literals, others as JSON text", async () => {
    const res = await post({
      query: "SELECT $1::int, $2::bool, $3::numeric, $4::int[], $5::text[], $6::int[][], $7::jsonb, $8::text",
      params: [42, true, 1.5, [1, 2, null], ['a"b', "c,d", null, "\\"], [[1, 2], [3, 4]], { a: [1, "x"] }, null],
    });
    expect(res.status).toBe(200);
    expect(res.json.rows).toEqual([
      ["42", "t", "1.5", "{1,2,NULL}", '{"a\\"b","c,d",NULL,"\\\\"}', "{{1,2},{3,4}}", '{"a": [1, "x"]}', null],
    ]);
  });

  it("binds parameters of a tagged template, including null and many of them", async () => {
    const name = "o'brien";
    const rows = await sql`SELECT ${name}::text AS name, ${null}::int AS nothing, ${[1, 2]}::int[] AS list`;
    expect(rows).toEqual([{ name, nothing: null, list: [1, 2] }]);

    const many = Array.from({ length: 500 }, (_, i) => i);
    const query = `SELECT ${many.map((_, i) => `$${i + 1}::int`).join(" + ")} AS total`;
    const [sum] = await sql.query(query, many);
    expect(sum).toEqual({ total: (499 * 500) / 2 });
  });
});
