// drizzle-orm/neon-http over the local endpoint: a schema-qualified table definition round-trips
// inserts, selects, updates, deletes and batches, and what it stores is what `pg` reads back.
import { and, eq, sql as dsql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/neon-http";
import {
  bigint,
  boolean,
  date,
  integer,
  interval,
  jsonb,
  numeric,
  pgSchema,
  serial,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, rawDirect, useScratchSchema } from "./helpers.ts";

const SCHEMA = "drizzle_test";
const schema = pgSchema(SCHEMA);
const status = schema.enum("widget_status", ["draft", "live", "retired"]);
const widgets = schema.table("widgets", {
  id: serial("id").primaryKey(),
  name: text("name").notNull().unique(),
  count: integer("count").notNull().default(0),
  big: bigint("big", { mode: "bigint" }),
  price: numeric("price", { precision: 12, scale: 2 }),
  active: boolean("active").notNull().default(true),
  tags: text("tags").array(),
  meta: jsonb("meta").$type<{ color?: string; sizes?: number[]; note?: string | null }>(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }),
  day: date("day"),
  wait: interval("wait"),
  ref: uuid("ref"),
  status: status("status"),
});

const db = drizzle({ client: driver() });
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TYPE ${SCHEMA}.widget_status AS ENUM ('draft', 'live', 'retired')`);
  await client.query(`
    CREATE TABLE ${SCHEMA}.widgets (
      id serial PRIMARY KEY, name text NOT NULL UNIQUE, count integer NOT NULL DEFAULT 0, big bigint,
      price numeric(12,2), active boolean NOT NULL DEFAULT true, tags text[], meta jsonb,
      created_at timestamptz, day date, wait interval, ref uuid, status ${SCHEMA}.widget_status
    )`);
});

const CREATED = new Date("2024-05-06T07:08:09.123Z");

describe("drizzle neon-http round trip", () => {
  it("inserts with returning, then selects the same values back", async () => {
    const inserted = await db
      .insert(widgets)
      .values({
        name: "gadget 😀 'q'",
        count: 3,
        big: 9007199254740993n,
        price: "1234567890.12",
        tags: ["a,b", 'c"d', "NULL"],
        meta: { color: "red", sizes: [1, 2], note: null },
        createdAt: CREATED,
        day: "2024-02-29",
        wait: "1 day 02:03:04",
        ref: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        status: "live",
      })
      .returning();
    expect(inserted).toHaveLength(1);
    const row = inserted[0]!;
    expect(row).toMatchObject({
      name: "gadget 😀 'q'",
      count: 3,
      big: 9007199254740993n,
      price: "1234567890.12",
      active: true,
      tags: ["a,b", 'c"d', "NULL"],
      meta: { color: "red", sizes: [1, 2], note: null },
      day: "2024-02-29",
      wait: "1 day 02:03:04",
      ref: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
      status: "live",
    });
    expect(row.createdAt).toEqual(CREATED);

    const selected = await db.select().from(widgets).where(eq(widgets.id, row.id));
    expect(selected).toEqual([row]);

    // What PostgreSQL stored, read directly.
    const stored = await rawDirect(
      client,
      `SELECT name, big, price, tags, meta, created_at, day, wait, status FROM ${SCHEMA}.widgets WHERE id = $1`,
      [row.id],
    );
    expect(stored.rows[0]).toEqual([
      "gadget 😀 'q'",
      "9007199254740993",
      "1234567890.12",
      '{"a,b","c\\"d","NULL"}',
      '{"note": null, "color": "red", "sizes": [1, 2]}',
      "2024-05-06 07:08:09.123+00",
      "2024-02-29",
      "1 day 02:03:04",
      "live",
    ]);
  });

  it("updates, filters, counts and deletes", async () => {
    await db.insert(widgets).values([{ name: "w1", count: 1 }, { name: "w2", count: 2 }, { name: "w3", count: 3, active: false }]);

    const updated = await db
      .update(widgets)
      .set({ count: dsql`${widgets.count} + 10` })
      .where(and(eq(widgets.active, true), dsql`${widgets.name} LIKE 'w%'`))
      .returning({ name: widgets.name, count: widgets.count });
    expect(updated.sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { name: "w1", count: 11 },
      { name: "w2", count: 12 },
    ]);

    expect(await db.$count(widgets, dsql`${widgets.name} LIKE 'w%'`)).toBe(3);

    const deleted = await db.delete(widgets).where(eq(widgets.name, "w3")).returning({ id: widgets.id });
    expect(deleted).toHaveLength(1);
    const left = await db.select({ name: widgets.name }).from(widgets).where(dsql`${widgets.name} LIKE 'w%'`).orderBy(widgets.name);
    expect(left).toEqual([{ name: "w1" }, { name: "w2" }]);
  });

  it("runs db.batch as one transaction: all or nothing", async () => {
    const [first, second, count] = await db.batch([
      db.insert(widgets).values({ name: "b1" }).returning({ name: widgets.name }),
      db.insert(widgets).values({ name: "b2" }).returning({ name: widgets.name }),
      db.execute(dsql`SELECT count(*)::int AS n FROM ${widgets} WHERE ${widgets.name} LIKE 'b%'`),
    ]);
    expect(first).toEqual([{ name: "b1" }]);
    expect(second).toEqual([{ name: "b2" }]);
    expect(count.rows).toEqual([{ n: 2 }]);

    await expect(
      db.batch([db.insert(widgets).values({ name: "b3" }), db.insert(widgets).values({ name: "b1" })]),
    ).rejects.toMatchObject({ name: "NeonDbError", code: "23505", constraint: "widgets_name_key" });
    const b3 = await client.query(`SELECT 1 FROM ${SCHEMA}.widgets WHERE name = 'b3'`);
    expect(b3.rowCount).toBe(0);
  });

  it("returns raw db.execute rows as objects with the driver's parsed values", async () => {
    const result = await db.execute(dsql`SELECT 1::int AS one, 'x'::text AS x, ${"2024-01-01"}::date AS d`);
    expect(result.rows).toEqual([{ one: 1, x: "x", d: "2024-01-01" }]);
    expect(result.command).toBe("SELECT");
  });
});
