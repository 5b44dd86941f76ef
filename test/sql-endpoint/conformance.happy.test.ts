// Values of every common type read through the real driver come back exactly as PostgreSQL wrote
// them (same text, same field metadata as a direct `pg` query), and the driver's default parsers
// turn them into the JS values a user expects.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, post, RAW_TYPES, rawDirect, useScratchSchema } from "./helpers.ts";

const SCHEMA = "conformance_test";
const TEXT =
  "emoji 😀👍🏽 👨‍👩‍👧 | CJK 漢字かなカナ한국어 | combining e\u0301 vs \u00e9 | " +
  `quotes ' " and backslashes \\ \\\\ \\n | tab\tnewline\nend`;
const TEXT_ARRAY = ["a,b", 'c"d', null, "e\\f", "", "NULL", " sp ", "{}", "😀"];

let client: pg.Client;
const sql = driver();

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TYPE ${SCHEMA}.mood AS ENUM ('sad', 'ok', 'happy', 'with space', 'q''uote')`);
  await client.query(`
    CREATE TABLE ${SCHEMA}.samples (
      id int PRIMARY KEY, si smallint, i integer, bi bigint, num numeric, r real, d double precision,
      b boolean, t text, by bytea, j json, jb jsonb, ia int[], ta text[], m int[][], da date,
      ts timestamp, tstz timestamptz, iv interval, u uuid, e ${SCHEMA}.mood, ea ${SCHEMA}.mood[]
    )`);
  await client.query(
    `INSERT INTO ${SCHEMA}.samples VALUES
      (1, -32768, -2147483648, -9223372036854775808,
       -123456789012345678901234567890.123456789012345678901234567890, 'NaN', '-Infinity',
       false, $1, '\\x00ff10'::bytea, '{"a": [1, 2.50, "x"],  "b": null}', '{"b": null, "a": [1, 2.50, "x"]}',
       '{1,NULL,3}', $2, '{{1,2},{3,4}}', '2024-02-29', '2024-02-29 23:59:59.123456',
       '2024-02-29 23:59:59.123456+05:30', '1 year 2 mons 3 days 04:05:06.789',
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '{sad,"with space","q''uote"}'),
      (2, 32767, 2147483647, 9223372036854775807, 0.000000000000000000000000000000000000001,
       'Infinity', 1.7976931348623157e308, true, '', '\\x'::bytea, '[]', '{"z": 1, "a": {"b": [true, false, null]}}',
       '{}', '{}', '{{NULL,2},{3,NULL}}', '0001-01-01 BC', 'infinity', '-infinity',
       '-1 days +00:00:00.000001', '00000000-0000-0000-0000-000000000000', 'with space', '{}'),
      (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL)`,
    [TEXT, TEXT_ARRAY],
  );
});

const SELECT_ALL = `SELECT * FROM ${SCHEMA}.samples ORDER BY id`;

describe("raw text conformance with a direct pg query", () => {
  it("returns every column's text and field metadata exactly as PostgreSQL does", async () => {
    const expected = await rawDirect(client, SELECT_ALL);
    const got = await sql.query(SELECT_ALL, [], { arrayMode: true, fullResults: true, types: RAW_TYPES });
    expect(got.rows).toEqual(expected.rows);
    expect(got.fields).toEqual(expected.fields.map((f) => ({ ...f })));
    expect(got.command).toBe("SELECT");
    expect(got.rowCount).toBe(3);

    const [min, max, nulls] = got.rows as string[][];
    expect(min!.slice(1, 7)).toEqual([
      "-32768",
      "-2147483648",
      "-9223372036854775808",
      "-123456789012345678901234567890.123456789012345678901234567890",
      "NaN",
      "-Infinity",
    ]);
    expect(max!.slice(1, 7)).toEqual([
      "32767",
      "2147483647",
      "9223372036854775807",
      "0.000000000000000000000000000000000000001",
      "Infinity",
      "1.7976931348623157e+308",
    ]);
    expect(min![8]).toBe(TEXT);
    expect(min![9]).toBe("\\x00ff10");
    expect(min![10]).toBe('{"a": [1, 2.50, "x"],  "b": null}'); // json keeps the input verbatim
    expect(min![11]).toBe('{"a": [1, 2.50, "x"], "b": null}'); // jsonb normalises it
    expect(min![13]).toBe('{"a,b","c\\"d",NULL,"e\\\\f","","NULL"," sp ","{}",😀}');
    expect(max![14]).toBe("{{NULL,2},{3,NULL}}");
    expect(min![17]).toBe("2024-02-29 18:29:59.123456+00");
    expect(min![21]).toBe('{sad,"with space",q\'uote}');
    expect(nulls!.slice(1)).toEqual(new Array(21).fill(null));
  });

  it("carries the same text on the wire as plain JSON strings (HTTP level)", async () => {
    const expected = await rawDirect(client, SELECT_ALL);
    const res = await post({ query: SELECT_ALL, params: [] });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.json.rows).toEqual(expected.rows);
    expect(res.json.rowAsArray).toBe(true);
    for (const row of res.json.rows as unknown[][]) {
      for (const value of row) expect(value === null || typeof value === "string").toBe(true);
    }
  });

  it("matches pg for computed expressions of each type", async () => {
    const query = `SELECT 0.1::float8 + 0.2::float8, 3.14159::real, 'NaN'::numeric, 1e-7::float8,
      (-1)::smallint, 2^62::bigint, 12345678901234567890123456789012345678901234567890::numeric * 10,
      'x'::"char", E'\\\\'::text, '{"k": "\\u00e9\\n"}'::jsonb, ARRAY[ARRAY['a','b'],ARRAY['c',NULL]],
      ARRAY[1.5, NULL]::numeric[], '{}'::int[], ARRAY[true,false], ARRAY['2024-01-01'::date],
      now() - now(), '2000-01-01'::timestamptz, gen_random_uuid() IS NOT NULL, ROW(1, 'a b', NULL)`;
    const expected = await rawDirect(client, query);
    const got = await sql.query(query, [], { arrayMode: true, fullResults: true, types: RAW_TYPES });
    expect(got.rows).toEqual(expected.rows);
    expect(got.fields.map((f) => f.dataTypeID)).toEqual(expected.fields.map((f) => f.dataTypeID));
    expect((got.rows[0] as string[]).slice(0, 3)).toEqual(["0.30000000000000004", "3.14159", "NaN"]);
    expect((got.rows[0] as string[])[10]).toBe("{{a,b},{c,NULL}}");
  });

  it("returns a large result (many rows, wide text) unchanged", async () => {
    const query = "SELECT g, repeat(chr(9731 + g % 50), g % 300) FROM generate_series(1, 5000) g";
    const expected = await rawDirect(client, query);
    const got = await sql.query(query, [], { arrayMode: true, fullResults: true, types: RAW_TYPES });
    expect(got.rowCount).toBe(5000);
    expect(got.rows).toEqual(expected.rows);
  });
});

describe("the driver's default parsing of what the endpoint returns", () => {
  it("gives the JS values a user expects for each type", async () => {
    const [min, max, nulls] = (await sql.query(SELECT_ALL)) as Record<string, unknown>[];
    expect(min).toMatchObject({
      si: -32768,
      i: -2147483648,
      bi: "-9223372036854775808",
      num: "-123456789012345678901234567890.123456789012345678901234567890",
      b: false,
      t: TEXT,
      j: { a: [1, 2.5, "x"], b: null },
      jb: { a: [1, 2.5, "x"], b: null },
      ia: [1, null, 3],
      ta: TEXT_ARRAY,
      m: [
        [1, 2],
        [3, 4],
      ],
      u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
      e: "happy",
    });
    expect(min!.r).toBeNaN();
    expect(min!.d).toBe(-Infinity);
    expect(Buffer.from(min!.by as Uint8Array)).toEqual(Buffer.from([0x00, 0xff, 0x10]));
    expect((min!.tstz as Date).toISOString()).toBe("2024-02-29T18:29:59.123Z");
    expect(min!.ts).toBeInstanceOf(Date);
    const date = min!.da as Date;
    expect([date.getFullYear(), date.getMonth(), date.getDate()]).toEqual([2024, 1, 29]);
    expect(min!.iv).toMatchObject({ years: 1, months: 2, days: 3, hours: 4, minutes: 5, seconds: 6, milliseconds: 789 });

    expect(max).toMatchObject({ si: 32767, i: 2147483647, bi: "9223372036854775807", b: true, t: "", jb: { z: 1 } });
    expect(max!.r).toBe(Infinity);
    expect(max!.d).toBe(1.7976931348623157e308);
    expect(Buffer.from(max!.by as Uint8Array).length).toBe(0);
    expect(max!.m).toEqual([
      [null, 2],
      [3, null],
    ]);
    expect(max!.ia).toEqual([]);
    expect(max!.j).toEqual([]);

    expect(Object.keys(nulls!)).toHaveLength(22);
    for (const [column, value] of Object.entries(nulls!)) {
      if (column !== "id") expect(value, column).toBeNull();
    }
  });

  it("returns rows as arrays in arrayMode and as objects otherwise", async () => {
    const asArrays = await sql.query("SELECT 1 AS a, 'x' AS b", [], { arrayMode: true });
    expect(asArrays).toEqual([[1, "x"]]);
    const asObjects = await sql`SELECT 1 AS a, 'x' AS b`;
    expect(asObjects).toEqual([{ a: 1, b: "x" }]);
  });
});
