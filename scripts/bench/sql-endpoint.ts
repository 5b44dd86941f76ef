// Benchmark (not a test): simple parameterized queries through the local SQL endpoint with the
// real driver, against the same queries over `pg` directly, side by side in one run.
//   npm run bench:sql-endpoint -- [--concurrency 32] [--seconds 10] [--rounds 3]
// The endpoint runs in its own process (as under `npm run dev`); the load comes from this one.
import { neon, neonConfig } from "@neondatabase/serverless";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort, startEmbeddedPostgres } from "../local/postgres.ts";
import { tempFolder } from "../local/temp-folder.ts";
import { flag } from "./args.ts";

const concurrency = flag("concurrency", 32);
const seconds = flag("seconds", 10);
const rounds = flag("rounds", 3);

const QUERY = "SELECT id, name, score FROM bench.items WHERE id = $1";
const ROWS = 10_000;

interface Sample {
  count: number;
  latencies: number[];
  elapsedMs: number;
  /** CPU seconds used during the sample: this process, the endpoint's, PostgreSQL's. */
  cpu: { client: number; endpoint: number; postgres: number };
}

const TICKS_PER_SECOND = 100;

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime + cutime + cstime: the process and its reaped children, in seconds. */
  cpu: number;
}

function readProcs(): ProcStat[] {
  const procs: ProcStat[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cpu = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICKS_PER_SECOND;
      procs.push({ pid: Number(entry), ppid: Number(f[1]), comm, cpu });
    } catch {
      // The process ended while we looked.
    }
  }
  return procs;
}

/** CPU seconds of the process trees rooted where `isRoot` says. */
function treeCpu(procs: ProcStat[], isRoot: (p: ProcStat, byPid: Map<number, ProcStat>) => boolean): number {
  const byPid = new Map(procs.map((p) => [p.pid, p]));
  const inTree = (p: ProcStat): boolean => {
    for (let cur: ProcStat | undefined = p; cur; cur = byPid.get(cur.ppid)) if (isRoot(cur, byPid)) return true;
    return false;
  };
  return procs.filter(inTree).reduce((n, p) => n + p.cpu, 0);
}

function cpuNow(endpointPid: number) {
  const own = process.cpuUsage();
  const procs = readProcs();
  return {
    client: (own.user + own.system) / 1e6,
    endpoint: treeCpu(procs, (p) => p.pid === endpointPid),
    postgres: treeCpu(procs, (p, byPid) => p.comm === "postgres" && byPid.get(p.ppid)?.comm !== "postgres"),
  };
}

async function load(run: (id: number) => Promise<unknown>, durationMs: number): Promise<Sample> {
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + durationMs;
  async function worker() {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await run(1 + Math.floor(Math.random() * ROWS));
      latencies.push(performance.now() - t0);
    }
  }
  const before = cpuNow(endpointProcess.pid!);
  await Promise.all(Array.from({ length: concurrency }, worker));
  const after = cpuNow(endpointProcess.pid!);
  const cpu = {
    client: after.client - before.client,
    endpoint: after.endpoint - before.endpoint,
    postgres: after.postgres - before.postgres,
  };
  return { count: latencies.length, latencies, elapsedMs: performance.now() - start, cpu };
}

function summary(samples: Sample[]) {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const count = samples.reduce((n, s) => n + s.count, 0);
  const ms = samples.reduce((n, s) => n + s.elapsedMs, 0);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!;
  const perQuery = (key: keyof Sample["cpu"]) => (samples.reduce((n, s) => n + s.cpu[key], 0) / count) * 1e6;
  return {
    qps: (count / ms) * 1000,
    p50: at(0.5),
    p99: at(0.99),
    count,
    cpuUs: { client: perQuery("client"), endpoint: perQuery("endpoint"), postgres: perQuery("postgres") },
  };
}

/** A minimal fetch over node:http keep-alive, with just what the driver reads from a Response. */
function httpFetch(agent: Agent) {
  return (url: string, init: { method: string; body: string; headers: Record<string, string> }) =>
    new Promise((resolve, reject) => {
      const req = request(url, { method: init.method, headers: init.headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const status = res.statusCode ?? 0;
          resolve({ ok: status >= 200 && status < 300, status, json: async () => JSON.parse(text), text: async () => text });
        });
      });
      req.on("error", reject);
      req.end(init.body);
    });
}

// PostgreSQL's data; removed at exit also after Ctrl-C.
const scratchFolder = tempFolder("edge-tenants-bench-");
const scratch = scratchFolder.path;
const database = await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true });
const endpointPort = await freePort();
const endpointProcess = spawn(join("node_modules", ".bin", "tsx"), ["scripts/local/db.ts"], {
  env: { ...process.env, DATABASE_URL: database.url, LOCAL_SQL_PORT: String(endpointPort), LOCAL_SQL_DELAY_MS: "0" },
  stdio: ["ignore", "ignore", "inherit"],
});
const endpointUrl = `http://127.0.0.1:${endpointPort}/sql`;

try {
  const direct = new pg.Pool({
    connectionString: database.url,
    max: concurrency,
    options: "-c TimeZone=UTC -c DateStyle=ISO,MDY",
  });
  await direct.query("CREATE SCHEMA IF NOT EXISTS bench");
  await direct.query("CREATE TABLE IF NOT EXISTS bench.items (id int PRIMARY KEY, name text NOT NULL, score numeric)");
  await direct.query(
    "INSERT INTO bench.items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, $1) g ON CONFLICT DO NOTHING",
    [ROWS],
  );
  for (let i = 0; ; i++) {
    try {
      await fetch(endpointUrl, { method: "OPTIONS" });
      break;
    } catch {
      if (i > 100) throw new Error("the SQL endpoint did not start");
      await sleep(100);
    }
  }
  neonConfig.fetchEndpoint = () => endpointUrl;
  const sql = neon(database.url);
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });

  const variants: Array<{ name: string; run: (id: number) => Promise<unknown>; fetchFunction?: unknown }> = [
    { name: "pg direct", run: (id) => direct.query(QUERY, [id]) },
    { name: "neon() via endpoint", run: (id) => sql.query(QUERY, [id]) },
    // The same driver with a lighter HTTP client (its documented fetchFunction option): in a real
    // run the driver's fetch is workerd's, so this isolates what the endpoint itself costs.
    { name: "neon() via endpoint, http", run: (id) => sql.query(QUERY, [id]), fetchFunction: httpFetch(agent) },
  ];
  // Check every way returns the same row before timing anything.
  const expected = JSON.stringify((await direct.query(QUERY, [7])).rows[0]);
  for (const variant of variants.slice(1)) {
    neonConfig.fetchFunction = variant.fetchFunction;
    const got = JSON.stringify(((await variant.run(7)) as unknown[])[0]);
    if (got !== expected) throw new Error(`${variant.name} returned ${got}, pg returned ${expected}`);
  }

  console.log(`concurrency ${concurrency}, ${rounds} rounds of ${seconds} s each, alternating; query: ${QUERY}`);
  const samples = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
  for (let r = -1; r < rounds; r++) {
    for (const variant of variants) {
      neonConfig.fetchFunction = variant.fetchFunction;
      const sample = await load(variant.run, r < 0 ? 1000 : seconds * 1000);
      if (r >= 0) samples.get(variant.name)!.push(sample);
    }
  }
  const results = variants.map((v) => ({ name: v.name, ...summary(samples.get(v.name)!) }));
  console.log(
    `${"".padEnd(27)} ${"q/s".padStart(7)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)}   CPU µs per query: client endpoint postgres`,
  );
  for (const r of results) {
    console.log(
      `${r.name.padEnd(27)} ${r.qps.toFixed(0).padStart(7)} ${r.p50.toFixed(2).padStart(8)} ${r.p99.toFixed(2).padStart(8)}` +
        `   ${r.cpuUs.client.toFixed(0).padStart(6)} ${r.cpuUs.endpoint.toFixed(0).padStart(8)} ${r.cpuUs.postgres.toFixed(0).padStart(8)}`,
    );
  }
  const [p, ...viaEndpoint] = results;
  for (const e of viaEndpoint) {
    console.log(`throughput ratio ${e.name} / pg direct: ${(e.qps / p!.qps).toFixed(2)}x (target >= 0.70x)`);
  }
  await direct.end();
} finally {
  endpointProcess.kill("SIGINT");
  await new Promise((done) => endpointProcess.once("exit", done));
  await database.stop();
  scratchFolder.remove();
}
