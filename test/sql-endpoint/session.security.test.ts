// Nothing of a session survives a request: settings, temp tables, advisory locks and prepared
// statements are gone before the pooled connection serves the next request, even though it is the
// same PostgreSQL backend. Batch transaction options really apply.
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, useScratchSchema } from "./helpers.ts";

const SCHEMA = "session_test";
const sql = driver();
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TABLE ${SCHEMA}.marker (id int)`);
});

async function backendPid(): Promise<number> {
  const [row] = await sql`SELECT pg_backend_pid() AS pid`;
  return row!.pid as number;
}

/**
 * Runs `change` then `probe` as separate requests, serially, until the probe ran on the very
 * backend the change ran on (proving the pooled connection was reused); returns the probe's value.
 * The change happened on a backend if the requests right before and after it (and the change
 * itself, when it can tell) all ran there.
 */
async function probeOnSameBackend<T>(
  change: () => Promise<number | void>,
  probe: () => Promise<{ pid: number; value: T }>,
) {
  const values: T[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    const before = await backendPid();
    const changedOn = (await change()) ?? before;
    const after = await backendPid();
    const probed = await probe();
    if (new Set([before, changedOn, after, probed.pid]).size === 1) {
      values.push(probed.value);
      if (values.length >= 3) return values;
    }
  }
  throw new Error(`the pooled connection was never reused (only ${values.length} matching probes)`);
}

describe("no session state survives a request", () => {
  it("reuses pooled backends for serial requests", async () => {
    const pids = new Set<number>();
    for (let i = 0; i < 10; i++) pids.add(await backendPid());
    expect(pids.size).toBeLessThan(10);
  });

  it("forgets SET search_path from a previous request", async () => {
    const defaultPath = (await client.query("SELECT current_setting('search_path') AS p")).rows[0].p;
    const seen = await probeOnSameBackend(
      async () => {
        await sql.query(`SET search_path TO ${SCHEMA}, public`);
      },
      async () => {
        const [row] = await sql`SELECT pg_backend_pid() AS pid, current_setting('search_path') AS value, to_regclass('marker') AS t`;
        expect(row!.t).toBeNull(); // the unqualified name does not resolve into the schema
        return row as { pid: number; value: string };
      },
    );
    expect(seen).toEqual([defaultPath, defaultPath, defaultPath]);
  });

  it("forgets a SET made inside a committed batch", async () => {
    const seen = await probeOnSameBackend(
      async () => {
        const [, rows] = await sql.transaction((tx) => [
          tx`SELECT set_config('statement_timeout', '1ms', false)`,
          tx`SELECT pg_backend_pid() AS pid`,
        ]);
        return rows![0]!.pid as number;
      },
      async () => {
        const [row] = await sql`SELECT pg_backend_pid() AS pid, current_setting('statement_timeout') AS value, pg_sleep(0.02)`;
        return row as { pid: number; value: string };
      },
    );
    expect(seen).toEqual(["0", "0", "0"]);
  });

  it("forgets SET statement_timeout so a later slow query is not cancelled", async () => {
    await sql.query("SET statement_timeout = '5ms'");
    for (let i = 0; i < 5; i++) await expect(sql`SELECT pg_sleep(0.05) AS slept`).resolves.toEqual([{ slept: "" }]);
  });

  it("drops temp tables", async () => {
    const seen = await probeOnSameBackend(
      async () => {
        await sql.query("CREATE TEMP TABLE leaked_between_requests AS SELECT 42 AS secret");
      },
      async () => {
        const [row] = await sql`SELECT pg_backend_pid() AS pid,
          to_regclass('pg_temp.leaked_between_requests')::text AS value`;
        return row as { pid: number; value: string | null };
      },
    );
    expect(seen).toEqual([null, null, null]);
  });

  it("releases advisory locks taken by a request", async () => {
    const key = 7_654_321;
    for (let i = 0; i < 3; i++) {
      const [taken] = await sql`SELECT pg_advisory_lock(${key}), pg_backend_pid() AS pid`;
      // Another session can take the lock right after the response (within a moment).
      await expect
        .poll(
          async () => (await client.query("SELECT pg_try_advisory_lock($1) AS ok", [key])).rows[0].ok as boolean,
          { timeout: 2_000, interval: 20 },
        )
        .toBe(true);
      await client.query("SELECT pg_advisory_unlock($1)", [key]);
      expect(taken!.pid).toEqual(expect.any(Number));
    }
  });

  it("does not leak prepared statements or held cursors", async () => {
    const seen = await probeOnSameBackend(
      async () => {
        await sql.query("PREPARE leaked_stmt AS SELECT 1");
        await sql.query("DECLARE leaked_cursor CURSOR WITH HOLD FOR SELECT 1");
      },
      async () => {
        const [row] = await sql`SELECT pg_backend_pid() AS pid,
          (SELECT count(*)::int FROM pg_prepared_statements WHERE name = 'leaked_stmt') +
          (SELECT count(*)::int FROM pg_cursors WHERE name = 'leaked_cursor') AS value`;
        return row as { pid: number; value: number };
      },
    );
    expect(seen).toEqual([0, 0, 0]);
  });

  it("keeps concurrent requests apart, beyond the pool's size", async () => {
    const n = 80;
    const answers = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        sql.transaction((tx) => [
          tx`SELECT set_config('endpoint_test.who', ${String(i)}, false)`,
          tx`SELECT pg_sleep(0.02)`,
          tx`SELECT current_setting('endpoint_test.who') AS who`,
        ]),
      ),
    );
    expect(answers.map(([, , rows]) => rows![0]!.who)).toEqual(Array.from({ length: n }, (_, i) => String(i)));

    const after = await Promise.all(
      Array.from({ length: n }, () => sql`SELECT current_setting('endpoint_test.who', true) AS who`),
    );
    for (const [row] of after) expect([null, ""]).toContain(row!.who);
  });

  it("keeps an autocommitted write from one request for the next", async () => {
    await sql.query(`INSERT INTO ${SCHEMA}.marker VALUES (1)`);
    const [row] = await sql.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.marker`);
    expect(row).toEqual({ n: 1 });
  });
});

describe("batch transaction options", () => {
  it.each([
    [{}, { iso: "read committed", ro: "off", def: "off" }],
    [{ isolationLevel: "Serializable" }, { iso: "serializable", ro: "off", def: "off" }],
    [{ isolationLevel: "RepeatableRead" }, { iso: "repeatable read", ro: "off", def: "off" }],
    [{ isolationLevel: "ReadUncommitted" }, { iso: "read uncommitted", ro: "off", def: "off" }],
    [{ readOnly: true }, { iso: "read committed", ro: "on", def: "off" }],
    [{ deferrable: true }, { iso: "read committed", ro: "off", def: "on" }],
    [{ isolationLevel: "Serializable", readOnly: true, deferrable: true }, { iso: "serializable", ro: "on", def: "on" }],
  ] as const)("runs a batch with %o at that level", async (options, expected) => {
    const [rows] = await sql.transaction(
      (tx) => [
        tx`SELECT current_setting('transaction_isolation') AS iso,
          current_setting('transaction_read_only') AS ro, current_setting('transaction_deferrable') AS def`,
      ],
      options,
    );
    expect(rows).toEqual([expected]);
  });

  it("really runs in one transaction at Serializable (SHOW inside the batch)", async () => {
    const [iso, first, second] = await sql.transaction(
      (tx) => [tx`SHOW transaction_isolation`, tx`SELECT txid_current() AS x`, tx`SELECT txid_current() AS x`],
      { isolationLevel: "Serializable" },
    );
    expect(iso).toEqual([{ transaction_isolation: "serializable" }]);
    expect(first).toEqual(second);
  });

  it("leaves single queries in autocommit at the default level", async () => {
    const [row] = await sql`SHOW transaction_isolation`;
    expect(row).toEqual({ transaction_isolation: "read committed" });
    const [a] = await sql`SELECT txid_current() AS x`;
    const [b] = await sql`SELECT txid_current() AS x`;
    expect(a).not.toEqual(b);
  });
});
