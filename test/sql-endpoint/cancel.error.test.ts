// When the HTTP client goes away (an aborted fetch), the query it started is cancelled on the
// server instead of running on to completion and holding its connection.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, useScratchSchema } from "./helpers.ts";

const SCHEMA = "cancel_test";
const sql = driver();
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TABLE ${SCHEMA}.writes (note text)`);
});

/** Backends (other than ours) currently running a query that contains `marker`. */
async function running(marker: string): Promise<number> {
  const { rows } = await client.query(
    "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND strpos(query, $1) > 0",
    [marker],
  );
  return rows[0].n as number;
}

describe("client disconnect", () => {
  it("cancels a long pg_sleep whose request was aborted", async () => {
    const marker = `cancel_probe_${process.pid}_${Date.now()}`;
    const controller = new AbortController();
    const pending = sql
      .query(`SELECT pg_sleep(30) /* ${marker} */`, [], { fetchOptions: { signal: controller.signal } })
      .then(
        () => "finished",
        (error: Error) => error.message,
      );

    // The query really is running on the server before the abort.
    await expect.poll(() => running(marker), { timeout: 5_000, interval: 25 }).toBe(1);
    controller.abort();
    expect(await pending).toMatch(/Error connecting to database: .*abort/i);

    // A moment later nothing runs it any more (not 30 s later).
    await expect.poll(() => running(marker), { timeout: 3_000, interval: 50 }).toBe(0);
  });

  it("cancels a batch whose request was aborted and commits none of it", async () => {
    const marker = `cancel_batch_${process.pid}_${Date.now()}`;
    const controller = new AbortController();
    const pending = sql
      .transaction((tx) => [tx`INSERT INTO ${tx.unsafe(SCHEMA)}.writes VALUES ('aborted')`, tx.query(`SELECT pg_sleep(30) /* ${marker} */`)], {
        fetchOptions: { signal: controller.signal },
      })
      .catch((error: Error) => error);
    await expect.poll(() => running(marker), { timeout: 5_000, interval: 25 }).toBe(1);
    controller.abort();
    expect(await pending).toBeInstanceOf(Error);
    await expect.poll(() => running(marker), { timeout: 3_000, interval: 50 }).toBe(0);
    // No transaction is left open on the server either.
    const { rows } = await client.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND strpos(query, $1) > 0 AND xact_start IS NOT NULL",
      [marker],
    );
    expect(rows[0].n).toBe(0);
    expect((await client.query(`SELECT note FROM ${SCHEMA}.writes`)).rows).toEqual([]);
  });

  it("keeps serving other requests afterwards", async () => {
    await expect(sql`SELECT 'still here' AS s`).resolves.toEqual([{ s: "still here" }]);
  });
});
