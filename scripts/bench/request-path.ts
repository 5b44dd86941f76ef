// Benchmark (not a test): GET /users/{id} through wrangler's dev server on the local stack, side by side:
//   (a) the tenancy middleware with warm caches, over several tenants' hosts;
//   (b) the same handler with a fixed schema and no tenant resolution;
//   (c) the naive approach: a catalog query on every request;
//   (d) (a) without the per-request log line, metrics data point and per-tenant rate limit.
// Run twice: the endpoint's round trip as it is locally, then with 20 ms added to every database
// request. Also counts catalog queries per 1,000 warm requests of (a), at the SQL endpoint.
// Then the flood: --flood (10,000) requests for distinct random unknown hosts from one client,
// interleaved with (a)'s known-tenant traffic; prints the share of them that reached the catalog,
// the KV entries written for them, the known tenants' throughput beside the flood, beside a control
// stream of ordinary requests and alone, and the CPU time of a flood request against an ordinary
// one (see the comment at the flood below).
// --path /tenant measures the same with a route that makes one query and needs no sign-in (GET
// /users/{id} also verifies the bearer token's user: one more query on every variant).
// Each variant's Worker runs in a process group of its own; beside throughput and latency the table
// prints that group's CPU time per request (workerd: the Worker and the local simulators of KV, Rate
// Limiting and Analytics Engine; node: wrangler's own process, which also receives the log lines).
// The Worker is served without the DevTools inspector that `wrangler dev` attaches (see
// scripts/bench/serve-worker.ts); --inspector measures with it.
// --client hyperdrive adds (e) and (f): (a) and (b) with the Worker's Hyperdrive client (a HYPERDRIVE
// binding, miniflare's local Hyperdrive straight to the database over TCP; docs/hyperdrive.md), in
// the same run and rounds as the neon-http rows; they are measured in the 0 ms round only (the added
// delay is the HTTP endpoint's, which they do not use). --citus runs everything on a local Citus
// cluster (coordinator + two workers; scripts/local/citus.ts) instead of one embedded PostgreSQL.
//   npm run bench:request-path -- [--seconds 8] [--rounds 2] [--concurrency 4] [--tenants 5] [--flood 10000] [--path /users/1] [--inspector]
//     [--client neon-http|hyperdrive] [--citus]
import { spawnSync } from "node:child_process";
import { Agent } from "node:http";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { signCredential } from "../../src/auth/credentials.ts";
import { connect } from "../db/connect.ts";
import { prepareAppLogin } from "../db/roles.ts";
import { getByHost } from "../local/http.ts";
import { freePort, startEmbeddedPostgres, type LocalDatabase } from "../local/postgres.ts";
import { freeCitusPorts, startCitusCluster } from "../local/citus.ts";
import { PGBOUNCER, startPgBouncer, type PgBouncer } from "../local/pgbouncer.ts";
import { loadMigrations } from "../migrations/files.ts";
import { startSqlEndpoint } from "../sql-endpoint/server.ts";
import { createTenant, initDatabase } from "../tenants/operations.ts";
import { tempFolder } from "../local/temp-folder.ts";
import { flag } from "./args.ts";
import { servedBy, startBenchWorker, waitUntilServing, type BenchWorker } from "./worker.ts";

const seconds = flag("seconds", 8);
const rounds = flag("rounds", 2);
// 4 by default: at 16 the three workerd instances, the endpoint and PostgreSQL saturate 2 cores, and
// the comparison measures CPU contention instead of round trips.
const concurrency = flag("concurrency", 4);
const tenantCount = flag("tenants", 5);
const floodCount = flag("flood", 10_000);
const FLOOD_CLIENT = "203.0.113.7";
const FLOOD_PREFIX = "flood-";
const slugs = Array.from({ length: tenantCount }, (_, i) => `bench${i + 1}`);
const clientFlag = process.argv.indexOf("--client");
const CLIENT = clientFlag === -1 ? "neon-http" : process.argv[clientFlag + 1];
if (CLIENT !== "neon-http" && CLIENT !== "hyperdrive") {
  console.error(`error: --client is neon-http (the default) or hyperdrive (adds the Hyperdrive client's rows), not "${CLIENT ?? ""}"`);
  process.exit(2);
}
const onCitus = process.argv.includes("--citus");

interface Variant {
  name: string;
  resolution: string;
  /** "off": no per-request log line, data point or per-tenant limit (REQUEST_TELEMETRY, local only). */
  telemetry?: "off";
  /** Served with a HYPERDRIVE binding: the Worker's Hyperdrive client instead of neon-http. */
  hyperdrive?: boolean;
  port: number;
  worker?: BenchWorker;
  persist: string;
}

// PostgreSQL's data and the Workers' state; removed at exit also after Ctrl-C.
const scratchFolder = tempFolder("edge-tenants-bench-path-");
const scratch = scratchFolder.path;
const database: LocalDatabase = onCitus
  ? await startCitusCluster({ dataDir: join(scratch, "citus"), port: await freeCitusPorts(), ephemeral: true, database: "edge_tenants_bench" })
  : await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true });
let catalogQueries = 0;
let floodCatalogQueries = 0;
const endpoint = await startSqlEndpoint({
  upstream: { host: database.host, port: database.port },
  onQuery: (queries) => {
    for (const q of queries) {
      if (!q.query.includes('"tenant_hosts"')) continue;
      catalogQueries++;
      if (String(q.params[0] ?? "").startsWith(FLOOD_PREFIX)) floodCatalogQueries++;
    }
  },
});
const variants: Variant[] = [
  { name: "(a) tenancy, warm caches", resolution: "cache", port: await freePort(), persist: join(scratch, "kv-a") },
  { name: "(b) fixed schema", resolution: "fixed:", port: await freePort(), persist: join(scratch, "kv-b") },
  { name: "(c) catalog every request", resolution: "catalog", port: await freePort(), persist: join(scratch, "kv-c") },
  { name: "(d) (a) without logs/metrics/limits", resolution: "cache", telemetry: "off", port: await freePort(), persist: join(scratch, "kv-d") },
];
if (CLIENT === "hyperdrive") {
  variants.push(
    { name: "(e) (a) through Hyperdrive", resolution: "cache", hyperdrive: true, port: await freePort(), persist: join(scratch, "kv-e") },
    { name: "(f) (b) through Hyperdrive", resolution: "fixed:", hyperdrive: true, port: await freePort(), persist: join(scratch, "kv-f") },
  );
}
/** The Worker's connection string: the app role, as in production (set once the database is initialized). */
let appUrl = "";
/**
 * The Hyperdrive variants' connection string, as the app role. Hyperdrive keeps server connections
 * open in a transaction-mode pool; miniflare's local Hyperdrive does not pool, so the bench puts a
 * real PgBouncer in transaction mode with 5 server connections (Hyperdrive's minimum) in front of
 * the database, as the Worker suite does (test/global-setup.ts). Without pgbouncer installed, the
 * database itself: a new server session per request, and the header says so.
 */
let pool: PgBouncer | undefined;
const hyperdriveUrl = () => {
  const url = new URL(pool ? pool.url(appUrl) : appUrl);
  url.searchParams.set("sslmode", "disable");
  return url.toString();
};

const agent = new Agent({ keepAlive: true, maxSockets: concurrency * 2 });

// GET /users/{id} needs a signed-in user: each tenant's owner (user 1), with a bearer token signed
// with this run's key, per variant and host (the fixed variant's tenant has id 0). GET /tenant needs
// none, and gets none: a credential costs a query even where no sign-in is needed.
const pathFlag = process.argv.indexOf("--path");
const PATH: string = pathFlag === -1 ? "/users/1" : (process.argv[pathFlag + 1] ?? "");
if (!PATH.startsWith("/")) throw new Error("--path needs a path such as /users/1 or /tenant");
const SIGNED_IN = PATH !== "/tenant";
const sessionSecret = randomBytes(32).toString("hex");
const tokens = new Map<string, string>();
const tokenFor = async (port: number, host: string, tenantId: number, schema: string) => {
  const now = Math.floor(Date.now() / 1000);
  tokens.set(`${port} ${host}`, await signCredential(sessionSecret, { k: "token", t: tenantId, s: schema, u: 1, iat: now, exp: now + 24 * 3600 }));
};

// Known-tenant traffic comes from clients other than the flooding one.
const get = (port: number, host: string, path: string, client = "198.51.100.1") => {
  const token = SIGNED_IN ? tokens.get(`${port} ${host}`) : undefined;
  return getByHost(port, host, path, { agent, headers: { "CF-Connecting-IP": client, ...(token ? { Authorization: `Bearer ${token}` } : {}) } });
};

/** CPU milliseconds of each variant's process group, by process name, while it was under load. */
const cpuUnderLoad = new Map<string, Record<string, number>>();

async function load(variant: Variant, durationMs: number) {
  const before = variant.worker!.cpu();
  try {
    return await loadUnmetered(variant, durationMs);
  } finally {
    const after = variant.worker!.cpu();
    const spent = cpuUnderLoad.get(variant.name) ?? {};
    for (const [name, ms] of Object.entries(after)) spent[name] = (spent[name] ?? 0) + ms - (before[name] ?? 0);
    cpuUnderLoad.set(variant.name, spent);
  }
}

async function loadUnmetered(variant: Variant, durationMs: number) {
  const latencies: number[] = [];
  let failures = 0;
  const deadline = performance.now() + durationMs;
  const start = performance.now();
  let n = 0;
  async function worker() {
    while (performance.now() < deadline) {
      const host = `${slugs[n++ % slugs.length]}.localhost`;
      const t0 = performance.now();
      const res = await get(variant.port, host, PATH);
      latencies.push(performance.now() - t0);
      if (res.status !== 200) failures++;
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { latencies, failures, ms: performance.now() - start };
}

function summarize(samples: Array<Awaited<ReturnType<typeof load>>>) {
  const all = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const ms = samples.reduce((n, s) => n + s.ms, 0);
  const at = (q: number) => all[Math.min(all.length - 1, Math.floor(q * all.length))]!;
  return { rps: (all.length / ms) * 1000, p50: at(0.5), p99: at(0.99), count: all.length, failures: samples.reduce((n, s) => n + s.failures, 0) };
}

try {
  const client = await connect(database.url);
  const migrations = loadMigrations();
  await initDatabase(client, migrations);
  for (const slug of slugs) {
    const tenant = await createTenant(client, migrations, { slug, name: slug, hosts: [`${slug}.localhost`] });
    await client.query(
      `INSERT INTO "${tenant.schema}".users (email, hashed_password) VALUES ('owner@${slug}.test', 'x');
       INSERT INTO "${tenant.schema}".items (title, owner_id) SELECT 'item ' || g, 1 FROM generate_series(1, 3) g;`,
    );
    if (slug === slugs[0]) for (const v of variants) if (v.resolution.startsWith("fixed:")) v.resolution = `fixed:${tenant.schema}`;
    for (const v of variants) if (!v.resolution.startsWith("fixed:")) await tokenFor(v.port, `${slug}.localhost`, Number(tenant.id), tenant.schema);
  }
  const fixedSchema = variants[1]!.resolution.slice("fixed:".length);
  for (const v of variants) if (v.resolution.startsWith("fixed:")) for (const slug of slugs) await tokenFor(v.port, `${slug}.localhost`, 0, fixedSchema);
  // The Worker connects as the app role with a fresh password, never as the owner (docs/roles.md).
  appUrl = await prepareAppLogin(client, database.url);
  await client.end();
  if (CLIENT === "hyperdrive" && PGBOUNCER) pool = await startPgBouncer(appUrl, 5);

  for (const variant of variants) {
    variant.worker = await startBenchWorker({
      port: variant.port,
      persist: variant.persist,
      vars: {
        DATABASE_URL: appUrl,
        LOCAL_SQL_ENDPOINT: endpoint.url,
        TENANT_RESOLUTION: variant.resolution,
        SESSION_SECRET: sessionSecret,
        ...(variant.telemetry ? { REQUEST_TELEMETRY: variant.telemetry } : {}),
      },
      ...(variant.hyperdrive ? { hyperdrive: hyperdriveUrl() } : {}),
    });
  }
  for (const variant of variants) await waitUntilServing(variant.name, () => get(variant.port, `${slugs[0]}.localhost`, PATH), variant.worker);

  console.log(
    `GET ${PATH} via ${servedBy}, ${tenantCount} tenants' hosts in turn, concurrency ${concurrency}, ` +
      `${rounds} alternating rounds of ${seconds} s per variant; ${onCitus ? "a local Citus cluster (coordinator + 2 workers)" : "one embedded PostgreSQL"}` +
      (CLIENT === "hyperdrive"
        ? `; (e) and (f): the Hyperdrive client (TCP, a connection per request) ${
            pool ? "through PgBouncer (transaction mode, 5 server connections), as Hyperdrive pools" : "straight to the database (pgbouncer not installed: a new server session per request)"
          }, 0 ms round only`
        : ""),
  );
  for (const delay of [0, 20]) {
    endpoint.setDelayMs(delay);
    // The added delay is the HTTP endpoint's: the Hyperdrive variants run in the 0 ms round only.
    const active = variants.filter((v) => delay === 0 || !v.hyperdrive);
    for (const variant of active) for (const slug of slugs) await get(variant.port, `${slug}.localhost`, PATH);
    await Promise.all(active.map((v) => load(v, 1000)));
    cpuUnderLoad.clear();
    const samples = new Map(active.map((v) => [v.name, [] as Array<Awaited<ReturnType<typeof load>>>]));
    let warmRequests = 0;
    let warmCatalog = 0;
    for (let r = 0; r < rounds; r++) {
      for (const variant of active) {
        const before = catalogQueries;
        const sample = await load(variant, seconds * 1000);
        samples.get(variant.name)!.push(sample);
        if (variant.resolution === "cache" && !variant.telemetry && !variant.hyperdrive) {
          warmRequests += sample.latencies.length;
          warmCatalog += catalogQueries - before;
        }
      }
    }
    const summaries = active.map((v) => summarize(samples.get(v.name)!));
    const [a, b, c, d, e, f] = summaries;
    console.log(`\nendpoint delay ${delay} ms per database request`);
    console.log(
      `${"".padEnd(38)} ${"req/s".padStart(6)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"requests".padStart(8)} failures  CPU ms per request`,
    );
    active.forEach((v, i) => {
      const s = summaries[i]!;
      const cpu = Object.entries(cpuUnderLoad.get(v.name) ?? {})
        .filter(([, ms]) => ms > 0)
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([name, ms]) => `${name} ${(ms / s.count).toFixed(2)}`)
        .join(", ");
      console.log(
        `${v.name.padEnd(38)} ${s.rps.toFixed(0).padStart(6)} ${s.p50.toFixed(2).padStart(7)} ${s.p99.toFixed(2).padStart(7)} ${String(s.count).padStart(8)} ${String(s.failures).padStart(8)}  ${cpu}`,
      );
    });
    const perThousand = (warmCatalog / warmRequests) * 1000;
    console.log(`a/b throughput ${(a!.rps / b!.rps).toFixed(3)} (target >= 0.97)`);
    if (e && f) console.log(`e/f throughput ${(e.rps / f.rps).toFixed(3)} (the Hyperdrive client: warm tenancy / fixed schema; target >= 0.97)`);
    console.log(`a/c throughput ${(a!.rps / c!.rps).toFixed(3)} (target >= ${delay ? "1.8" : "1.2"})`);
    console.log(`a/d throughput ${(a!.rps / d!.rps).toFixed(3)} (the cost of the log line, data point and per-tenant limit; target >= 0.95)`);
    console.log(`catalog queries per 1,000 warm requests of (a): ${perThousand.toFixed(2)} (target 0)`);
  }

  // The flood, against (a) with the endpoint as it is locally (the worst case: no round trip
  // hides the flood's CPU cost). Three phases of equal length, known-tenant traffic in each:
  //   beside the flood (its --flood requests, as fast as its connections go); beside a control
  //   stream (ordinary requests for known tenants, from another client, on as many connections as
  //   the flood, for as long as the flood took); alone (as long again).
  // Locally one workerd isolate thread serves every request, so any second stream takes its share
  // of that thread: known/alone measures that share (a property of one local isolate; in production
  // the flood's requests run on the edge's CPUs, not the known tenants'). What the design decides
  // is whether a request for an unknown host costs more than an ordinary one (catalog queries, KV
  // writes, known tenants pushed out of memory would all show there). The two streams do not go at
  // the same rate (a cheap answer comes back sooner, so its stream sends more), so their
  // throughputs do not compare directly; their CPU time per request does. The control phase has
  // only ordinary requests: its CPU time per request is an ordinary request's cost, under the same
  // sharing of the thread as the flood phase. The flood phase's CPU time less its known requests
  // at that cost, over the flood's requests, is a flood request's cost.
  endpoint.setDelayMs(0);
  const a = variants[0]!;
  const floodConcurrency = 2;
  const groupCpu = () => Object.values(a.worker!.cpu()).reduce((x, y) => x + y, 0);
  /** A stream of requests on floodConcurrency connections: `count` of them, or for `ms`. */
  async function stream(bound: { count: number } | { ms: number }, next: () => [string, string], statuses: Map<number, number>) {
    let sent = 0;
    const started = performance.now();
    const more = () => ("count" in bound ? sent < bound.count : performance.now() - started < bound.ms);
    await Promise.all(
      Array.from({ length: floodConcurrency }, async () => {
        while (more()) {
          sent++;
          const [host, client] = next();
          const res = await get(a.port, host, PATH, client);
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        }
      }),
    );
    return { ms: performance.now() - started, sent };
  }
  /** Known traffic in 1-second slices until `until` settles (or for `ms` when given), and the group's CPU ms meanwhile. */
  async function knownDuring(until: Promise<unknown> | undefined, ms = 0) {
    const cpuBefore = groupCpu();
    const slices: Array<Awaited<ReturnType<typeof load>>> = [];
    let over = false;
    void until?.then(() => (over = true));
    if (until) while (!over) slices.push(await load(a, 1000));
    else for (let spent = 0; spent < ms; spent += 1000) slices.push(await load(a, 1000));
    await until;
    return { ...summarize(slices), cpu: groupCpu() - cpuBefore };
  }
  const floodStatuses = new Map<number, number>();
  const controlStatuses = new Map<number, number>();
  const catalogBeforeFlood = floodCatalogQueries;
  const flood = stream(
    { count: floodCount },
    () => [`${FLOOD_PREFIX}${Math.random().toString(36).slice(2, 12)}.localhost`, FLOOD_CLIENT],
    floodStatuses,
  );
  const flooded = await knownDuring(flood);
  const { ms: floodMs } = await flood;
  const floodLookups = floodCatalogQueries - catalogBeforeFlood;
  let c = 0;
  const control = stream({ ms: floodMs }, () => [`${slugs[c++ % slugs.length]}.localhost`, "198.51.100.2"], controlStatuses);
  const controlled = await knownDuring(control);
  const { ms: controlMs, sent: controlSent } = await control;
  const alone = await knownDuring(undefined, floodMs);
  // The control phase serves only ordinary requests (known traffic and the control stream alike),
  // so its CPU time per request is an ordinary request's cost under the same sharing; the flood
  // phase's CPU time, less its known requests at that cost, is the flood's.
  const ordinaryCpu = controlled.cpu / (controlled.count + controlSent);
  const floodCpu = (flooded.cpu - flooded.count * ordinaryCpu) / floodCount;
  const listed = spawnSync(
    resolve("node_modules/.bin/wrangler"),
    ["kv", "key", "list", "--binding", "TENANT_CACHE", "--local", "--persist-to", a.persist, "--prefix", `tenant-host:v1:${FLOOD_PREFIX}`],
    { encoding: "utf8" },
  );
  const kvEntries = listed.status === 0 ? (JSON.parse(listed.stdout) as unknown[]).length : NaN;
  const codes = (m: Map<number, number>) => [...m].sort().map(([st, n]) => `${n} x ${st}`).join(", ");
  console.log(
    `\nflood: ${floodCount} requests for distinct random unknown hosts from one client (${floodConcurrency} connections, ` +
      `${(floodMs / 1000).toFixed(1)} s, ${((floodCount / floodMs) * 1000).toFixed(0)} req/s), interleaved with (a)'s ` +
      `known-tenant traffic (${concurrency} connections); endpoint delay 0 ms`,
  );
  console.log(`  flood answers: ${codes(floodStatuses)}`);
  console.log(`  reached the catalog: ${floodLookups} of ${floodCount} (${((floodLookups / floodCount) * 100).toFixed(2)}%, target <= 1%)`);
  console.log(`  KV entries written for them: ${kvEntries} (target 0)`);
  console.log(
    `  control: ordinary requests for known tenants from another client, same connections, as long as the flood ` +
      `(${controlSent} in ${(controlMs / 1000).toFixed(1)} s, ${((controlSent / controlMs) * 1000).toFixed(0)} req/s): ${codes(controlStatuses)}`,
  );
  console.log(`  known tenants' throughput (req/s, p50 ms): alone ${alone.rps.toFixed(0)} (${alone.p50.toFixed(2)}), ` +
    `beside the control ${controlled.rps.toFixed(0)} (${controlled.p50.toFixed(2)}), beside the flood ${flooded.rps.toFixed(0)} (${flooded.p50.toFixed(2)}); ` +
    `failures ${alone.failures + controlled.failures + flooded.failures}`);
  console.log(
    `  with the flood / alone: ${(flooded.rps / alone.rps).toFixed(3)} (target >= 0.9; locally bounded by the isolate thread the two streams share)`,
  );
  console.log(
    `  CPU ms per request of the Worker's processes: an ordinary request ${ordinaryCpu.toFixed(2)} (the control phase), ` +
      `a flood request ${floodCpu.toFixed(2)} (the flood phase, less its known requests); flood / ordinary ${(floodCpu / ordinaryCpu).toFixed(3)} ` +
      `(<= 1: an unknown host costs no more than an ordinary request; alone, known requests took ${(alone.cpu / alone.count).toFixed(2)})`,
  );
} finally {
  await Promise.all(variants.map((v) => v.worker?.stop()));
  await endpoint.close();
  await pool?.stop();
  await database.stop();
  scratchFolder.remove();
  agent.destroy();
}
