// `npm run tenants -- move` while the Worker serves the tenant (TEST_CITUS=1 only: it needs the
// local Citus cluster). The Worker runs in workerd under wrangler's dev server, connected to the
// coordinator as the app role with each of its database clients in turn: neon-http through the
// local SQL endpoint, and Hyperdrive (wrangler's local Hyperdrive binding, through a transaction-mode
// PgBouncer standing in for Hyperdrive's pool, as the Worker suite's TEST_DB_CLIENT=hyperdrive does).
// Writer and reader loops send it separate
// HTTP requests for the tenant's host before, during and after the move (inserts, updates, reads).
// Every request must succeed, every acknowledged write must be in the table exactly once, and
// nothing else; the latency of the requests during the move (p50/p99/max) is printed.
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { prepareAppLogin } from "../../scripts/db/roles.ts";
import { freePort } from "../../scripts/local/postgres.ts";
import { startBenchWorker, type BenchWorker } from "../../scripts/bench/worker.ts";
import { startSqlEndpoint, type SqlEndpoint } from "../../scripts/sql-endpoint/server.ts";
import { signCredential } from "../../src/auth/credentials.ts";
import { connectTo, dropTestDatabases, freshDatabase, onCitus, show, spawnScript, TENANTS_CLI, tenantsCli } from "../support/database.ts";
import { processesMentioning } from "../support/dev-command.ts";
import { PGBOUNCER, startPgBouncer, type PgBouncer } from "../support/pgbouncer.ts";

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const SESSION_SECRET = "move-test-only-session-secret-0123456789abcdef";
const HOST = "moving.example.com";
/** Seeded items, so the move copies a few MB while the load runs (about 2 MB). */
const SEEDED_ITEMS = 20_000;
const WRITERS = 4;
const READERS = 4;

let databaseUrl: string;
let owner: pg.Client;
let endpoint: SqlEndpoint | undefined;
let worker: BenchWorker | undefined;
let bouncer: PgBouncer | undefined;
let workerOutput = "";
let appUrl: string;
let scratch: string;
let port: number;
let schema: string;
let adminId: number;
let auth: string;
const agent = new Agent({ keepAlive: true, maxSockets: WRITERS + READERS + 2 });

interface Answer {
  status: number;
  body: string;
  /** When it was sent and answered (ms since the epoch, sub-millisecond). */
  start: number;
  end: number;
}

/** Milliseconds since the epoch, from the monotonic clock. */
const now = () => performance.timeOrigin + performance.now();

function send(method: string, path: string, body?: unknown): Promise<Answer> {
  const start = now();
  return new Promise((done) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      {
        host: "127.0.0.1",
        port,
        method,
        path,
        agent,
        headers: {
          Host: HOST,
          Authorization: `Bearer ${auth}`,
          "CF-Connecting-IP": "198.18.0.7",
          ...(payload ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => done({ status: res.statusCode ?? 0, body: text, start, end: now() }));
        res.on("error", (e) => done({ status: -1, body: String(e), start, end: now() }));
      },
    );
    req.on("error", (e) => done({ status: -1, body: String(e), start, end: now() }));
    req.setTimeout(30_000, () => req.destroy(new Error("no answer within 30 s")));
    req.end(payload);
  });
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function stopWorker(): Promise<void> {
  await worker?.stop();
  worker = undefined;
  await bouncer?.stop();
  bouncer = undefined;
}

/** Serves the Worker as the benchmarks do (scripts/bench/worker.ts: wrangler's dev server, bindings in a private file) until it answers for HOST. */
async function startWorker(vars: Record<string, string>, hyperdrive?: string): Promise<void> {
  port = await freePort();
  workerOutput = "";
  worker = await startBenchWorker({
    port,
    persist: join(scratch, `state-${port}`),
    vars: { ...vars, SESSION_SECRET },
    ...(hyperdrive ? { hyperdrive } : {}),
    output: "pipe",
  });
  const { process: child } = worker;
  child.stdout!.on("data", (d: Buffer) => (workerOutput += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (workerOutput += d.toString()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the Worker exited:\n${workerOutput}`);
    const a = await send("GET", "/items?limit=1");
    if (a.status === 200) break;
    if (Date.now() > deadline) throw new Error(`the Worker did not serve ${HOST} in time: ${a.status} ${a.body}\n${workerOutput}`);
    await sleep(500);
  }
}

afterAll(async () => {
  await stopWorker();
  agent.destroy();
  await endpoint?.close();
  await dropTestDatabases();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe.skipIf(!onCitus)("moving a tenant while the Worker serves it", () => {
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), "edge-tenants-move-"));
    databaseUrl = await freshDatabase("place_load");
    owner = await connectTo(databaseUrl);
    const cli = (...args: string[]) => tenantsCli({ databaseUrl }, ...args);
    for (const args of [["init"], ["create", "moving", "--name", "Moving Co", "--host", HOST, "--no-pool"], ["tier", "moving", "high"]]) {
      const r = await cli(...args);
      expect(r.code, show(r)).toBe(0);
    }
    const tenant = await owner.query<{ id: number; schema: string }>("SELECT id, schema_name AS schema FROM shared.tenants WHERE slug = 'moving'");
    schema = tenant.rows[0]!.schema;
    const admin = await owner.query<{ id: number }>(
      `INSERT INTO "${schema}".users (email, hashed_password, role) VALUES ('admin@moving.test', 'x', 'admin') RETURNING id`,
    );
    adminId = admin.rows[0]!.id;
    await owner.query(
      `INSERT INTO "${schema}".items (title, description, owner_id) SELECT 'seed ' || g, repeat('x', 60), $1 FROM generate_series(1, ${SEEDED_ITEMS}) g`,
      [adminId],
    );
    const now = Math.floor(Date.now() / 1000);
    auth = await signCredential(SESSION_SECRET, { k: "token", t: Number(tenant.rows[0]!.id), s: schema, u: adminId, iat: now, exp: now + 3600 });

    // The Worker connects as the app role.
    appUrl = await prepareAppLogin(owner, databaseUrl);
  });

  describe.each([
    { client: "neon-http", skip: false },
    { client: "hyperdrive", skip: !PGBOUNCER },
  ])("with the Worker's $client client", ({ client, skip }) => {
    beforeAll(async () => {
      if (skip) return;
      if (client === "neon-http") {
        const coordinator = new URL(databaseUrl);
        endpoint ??= await startSqlEndpoint({ upstream: { host: coordinator.hostname, port: Number(coordinator.port) } });
        await startWorker({ DATABASE_URL: appUrl, LOCAL_SQL_ENDPOINT: endpoint.url });
      } else {
        // No DATABASE_URL: the Worker can only reach the database through its Hyperdrive binding.
        bouncer = await startPgBouncer(appUrl, 5);
        await startWorker({}, `${bouncer.url(appUrl)}?sslmode=disable`);
      }
    });
    afterAll(stopWorker);

    it.skipIf(skip)("serves every read and write during citus_schema_move: 0 failed requests, 0 lost or duplicated rows", async () => {
      // The Worker got the app role's password and the session secret from a private file: no
      // process shows them on its command line.
      expect(processesMentioning(new URL(appUrl).password)).toEqual([]);
      expect(processesMentioning(SESSION_SECRET)).toEqual([]);
      const before = await tenantsCli({ databaseUrl }, "placement", "--json");
      expect(before.code, show(before)).toBe(0);
      const from = (JSON.parse(before.stdout) as { tenants: Array<{ slug: string; node: string }> }).tenants.find((t) => t.slug === "moving")!.node;
      const to = from === "worker1" ? "worker2" : "worker1";

      const answers: Array<Answer & { kind: "write" | "update" | "read"; title?: string }> = [];
      let stop = false;
      /** Items whose status a PATCH changed to published (each writer publishes every other item it made). */
      const published = new Set<number>();
      const writer = async (w: number) => {
        for (let seq = 0; !stop; seq++) {
          const title = `load ${client} w${w} #${seq}`;
          const created = await send("POST", `/users/${adminId}/items`, { title });
          answers.push({ ...created, kind: "write", title });
          if (seq % 2 === 1 && created.status === 201) {
            const id = (JSON.parse(created.body) as { id: number }).id;
            const updated = await send("PATCH", `/items/${id}`, { status: "published" });
            answers.push({ ...updated, kind: "update" });
            if (updated.status === 200) published.add(id);
          }
        }
      };
      const reader = async () => {
        while (!stop) answers.push({ ...(await send("GET", "/items?limit=20")), kind: "read" });
      };
      const loops = [...Array.from({ length: WRITERS }, (_, w) => writer(w)), ...Array.from({ length: READERS }, () => reader())];

      await sleep(2_000); // load before the move
      const moved = await spawnScript(TENANTS_CLI, ["move", "moving", "--to", to, "--json"], { databaseUrl }).done;
      await sleep(2_000); // and after it
      stop = true;
      await Promise.all(loops);
      expect(moved.code, show(moved)).toBe(0);
      const result = JSON.parse(moved.stdout) as { seconds: number; startedAt: string; finishedAt: string };
      expect(result).toMatchObject({ slug: "moving", schema, from: { node: from }, to: { node: to }, mode: "auto" });
      // The move itself: from the call of citus_schema_move to its return, as the CLI reports them.
      const moveStart = Date.parse(result.startedAt);
      const moveEnd = Date.parse(result.finishedAt);

      // Every request answered as it should have been.
      const failed = answers.filter((a) => a.status !== (a.kind === "write" ? 201 : 200));
      const during = answers.filter((a) => a.end >= moveStart && a.start <= moveEnd);
      const latencies = during.map((a) => a.end - a.start).sort((x, y) => x - y);
      const all = answers.map((a) => a.end - a.start).sort((x, y) => x - y);
      const writes = answers.filter((a) => a.kind === "write");
      console.log(
        [
          `${client}: move of tenant moving (${SEEDED_ITEMS} seeded items) ${from} -> ${to}: citus_schema_move took ${result.seconds.toFixed(2)} s`,
          `requests: ${answers.length} (${writes.length} inserts, ${published.size} updates, ${answers.filter((a) => a.kind === "read").length} reads; ` +
            `${WRITERS} writer and ${READERS} reader loops), failed: ${failed.length}`,
          `during the move (requests in flight while citus_schema_move ran): ${during.length} requests, latency p50 ${percentile(latencies, 50).toFixed(0)} ms, ` +
            `p99 ${percentile(latencies, 99).toFixed(0)} ms, max ${percentile(latencies, 100).toFixed(0)} ms`,
          `whole run: p50 ${percentile(all, 50).toFixed(0)} ms, p99 ${percentile(all, 99).toFixed(0)} ms, max ${percentile(all, 100).toFixed(0)} ms`,
        ].join("\n"),
      );
      expect(failed.map((a) => `${a.kind} ${a.status} ${a.body.slice(0, 200)}`)).toEqual([]);
      // The load really overlapped the move, writes included.
      expect(during.filter((a) => a.kind === "write").length).toBeGreaterThanOrEqual(10);
      expect(during.filter((a) => a.kind === "update").length).toBeGreaterThanOrEqual(3);
      expect(during.filter((a) => a.kind === "read").length).toBeGreaterThanOrEqual(10);

      // Exactly the acknowledged writes are in the table, once each, with the ids the Worker returned.
      const acknowledged = new Map(writes.map((a) => [a.title!, (JSON.parse(a.body) as { id: number }).id]));
      const { rows } = await owner.query<{ id: number; title: string; status: string }>(
        `SELECT id, title, status::text FROM "${schema}".items WHERE title LIKE $1 ORDER BY id`,
        [`load ${client} %`],
      );
      expect(rows.length).toBe(acknowledged.size);
      expect(new Set(rows.map((r) => r.title)).size).toBe(rows.length);
      expect(Object.fromEntries(rows.map((r) => [r.title, r.id]))).toEqual(Object.fromEntries(acknowledged));
      // Every acknowledged update is there too, and nothing else changed.
      expect(rows.filter((r) => r.status === "published").map((r) => r.id)).toEqual([...published].sort((a, b) => a - b));
      expect(rows.filter((r) => r.status !== "published").every((r) => r.status === "draft")).toBe(true);
      const seeded = await owner.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".items WHERE title LIKE 'seed %'`);
      expect(seeded.rows[0]!.n).toBe(SEEDED_ITEMS);

      // And the tenant is on the other worker now; the Worker still serves it.
      const after = await tenantsCli({ databaseUrl }, "placement", "--json");
      expect((JSON.parse(after.stdout) as { tenants: Array<{ slug: string; node: string }> }).tenants.find((t) => t.slug === "moving")!.node).toBe(to);
      const read = await send("GET", "/items?limit=1");
      expect(read.status, read.body).toBe(200);
    });
  });
});
