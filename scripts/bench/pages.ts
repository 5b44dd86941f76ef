// Benchmark (not a test): a signed-in user's first page load at a warm tenant under wrangler's dev
// server (without the DevTools inspector `wrangler dev` attaches; --inspector: with it),
// beside the JSON API for the same data. One tenant with one user and --items items; requests go
// one at a time, the two kinds alternating, after a warm-up (tenant resolved, driver warm):
//   page: GET /my/items with the session cookie (HTML), then GET /styles.css (a static asset), as a
//         browser loads them; timed from the first byte sent to the last byte of the stylesheet;
//   API:  GET /items with a bearer token (JSON, the same items).
//   npm run bench:pages -- [--requests 300] [--items 20] [--inspector]
import { randomBytes } from "node:crypto";
import { Agent } from "node:http";
import { join } from "node:path";
import { signCredential } from "../../src/auth/credentials.ts";
import { hashPassword } from "../../src/security/password.ts";
import { connect } from "../db/connect.ts";
import { prepareAppLogin } from "../db/roles.ts";
import { getByHost } from "../local/http.ts";
import { freePort, startEmbeddedPostgres } from "../local/postgres.ts";
import { loadMigrations } from "../migrations/files.ts";
import { startSqlEndpoint } from "../sql-endpoint/server.ts";
import { createTenant, initDatabase } from "../tenants/operations.ts";
import { tempFolder } from "../local/temp-folder.ts";
import { flag } from "./args.ts";
import { servedBy, startBenchWorker, waitUntilServing, type BenchWorker } from "./worker.ts";

const requests = flag("requests", 300);
const itemCount = flag("items", 20);
const HOST = "bench.localhost";

// PostgreSQL's data and the Worker's state; removed at exit also after Ctrl-C.
const scratchFolder = tempFolder("edge-tenants-bench-pages-");
const scratch = scratchFolder.path;
const database = await startEmbeddedPostgres({ dataDir: join(scratch, "pgdata"), ephemeral: true });
const endpoint = await startSqlEndpoint({ upstream: { host: database.host, port: database.port } });
const agent = new Agent({ keepAlive: true, maxSockets: 2 });
const port = await freePort();
const sessionSecret = randomBytes(32).toString("hex");
let worker: BenchWorker | undefined;

const get = (path: string, headers: Record<string, string>) =>
  getByHost(port, HOST, path, { agent, headers: { "CF-Connecting-IP": "198.51.100.9", ...headers } });

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

try {
  const client = await connect(database.url);
  const migrations = loadMigrations();
  await initDatabase(client, migrations);
  const tenant = await createTenant(client, migrations, { slug: "bench", name: "Bench", hosts: [HOST] });
  await client.query(`INSERT INTO "${tenant.schema}".users (email, hashed_password) VALUES ('owner@bench.test', $1)`, [
    await hashPassword("bench password"),
  ]);
  await client.query(
    `INSERT INTO "${tenant.schema}".items (title, description, owner_id) SELECT 'item ' || g, 'description ' || g, 1 FROM generate_series(1, $1::int) g`,
    [itemCount],
  );
  // The Worker connects as the app role with a fresh password, never as the owner (docs/roles.md).
  const appUrl = await prepareAppLogin(client, database.url);
  await client.end();

  const now = Math.floor(Date.now() / 1000);
  const claims = { t: Number(tenant.id), s: tenant.schema, u: 1, iat: now, exp: now + 3600 };
  const cookie = { Cookie: `session=${await signCredential(sessionSecret, { k: "session", ...claims })}`, Accept: "text/html" };
  const bearer = { Authorization: `Bearer ${await signCredential(sessionSecret, { k: "token", ...claims })}` };

  worker = await startBenchWorker({
    port,
    persist: join(scratch, "state"),
    vars: { DATABASE_URL: appUrl, LOCAL_SQL_ENDPOINT: endpoint.url, SESSION_SECRET: sessionSecret },
  });
  await waitUntilServing("the pages benchmark", () => get("/items", bearer), worker);

  async function page(): Promise<number> {
    const t0 = performance.now();
    const html = await get("/my/items", cookie);
    const css = await get("/styles.css", {});
    const ms = performance.now() - t0;
    if (html.status !== 200 || !html.body.includes("item 1") || css.status !== 200) throw new Error(`page load failed: ${html.status} / ${css.status}`);
    return ms;
  }
  async function api(): Promise<number> {
    const t0 = performance.now();
    const res = await get("/items", bearer);
    const ms = performance.now() - t0;
    if (res.status !== 200 || (JSON.parse(res.body) as unknown[]).length !== itemCount) throw new Error(`API call failed: ${res.status}`);
    return ms;
  }

  for (let i = 0; i < 30; i++) await Promise.all([page(), api()]);
  const pages: number[] = [];
  const apis: number[] = [];
  for (let i = 0; i < requests; i++) {
    pages.push(await page());
    apis.push(await api());
  }
  pages.sort((a, b) => a - b);
  apis.sort((a, b) => a - b);
  const row = (name: string, xs: number[]) =>
    `${name.padEnd(44)} p50 ${percentile(xs, 0.5).toFixed(1).padStart(6)} ms   p95 ${percentile(xs, 0.95).toFixed(1).padStart(6)} ms   p99 ${percentile(xs, 0.99).toFixed(1).padStart(6)} ms`;
  console.log(`Signed-in user, warm tenant, ${servedBy}, ${itemCount} items, ${requests} of each, one at a time:`);
  console.log(row("page: GET /my/items (HTML) + /styles.css", pages));
  console.log(row("API:  GET /items (JSON, bearer token)", apis));
} finally {
  await worker?.stop();
  await endpoint.close();
  await database.stop();
  scratchFolder.remove();
  agent.destroy();
}
