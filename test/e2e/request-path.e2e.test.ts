// The request path under `wrangler dev`, where the runtime parses the Host header itself and each
// request is a real, separate request: concurrent first requests for a host (unknown hosts, new
// hosts of a real tenant, the first request aborted) and Host fuzzing with raw Host headers.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { freePort } from "../../scripts/local/postgres.ts";
import { writeWorkerEnvFile, type WorkerEnvFile } from "../../scripts/local/worker-env.ts";
import { startSqlEndpoint, type SqlEndpoint } from "../../scripts/sql-endpoint/server.ts";
import { signCredential } from "../../src/auth/credentials.ts";
import { normalizeHost } from "../../src/tenancy/naming.ts";
import { fixtureOwner, fuzzHosts } from "../fixtures/fuzz-hosts.ts";
import { processesMentioning } from "../support/dev-command.ts";

let wrangler: ChildProcess | undefined;
let port: number;
let scratch: string;
let output = "";
let envFile: WorkerEnvFile | undefined;
let owner: pg.Client;
let endpoint: SqlEndpoint | undefined;
let clients = 0;
/** The Worker's signing key here (a test value), and the burst tenant admin's bearer token. */
const SESSION_SECRET = "e2e-only-session-secret-0123456789abcdef";
let burstAuth: Record<string, string> = {};
const clientIp = () => `198.19.${(++clients >> 8) & 255}.${clients & 255}`;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** One request on its own connection, with exactly this Host header (bytes as given). */
function raw(hostValue: string, path = "/tenant", headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((done, fail) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.setTimeout(15_000, () => socket.destroy(new Error("no answer within 15 s")));
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", fail);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const split = text.indexOf("\r\n\r\n");
      if (split === -1) return done({ status: 0, headers: {}, body: text });
      const [statusLine, ...lines] = text.slice(0, split).split("\r\n");
      const head: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        head[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let body = text.slice(split + 4);
      if (head["transfer-encoding"] === "chunked") {
        let decoded = "";
        for (let rest = body; ; ) {
          const eol = rest.indexOf("\r\n");
          const size = parseInt(rest.slice(0, eol), 16);
          if (!size) break;
          decoded += rest.slice(eol + 2, eol + 2 + size);
          rest = rest.slice(eol + 2 + size + 2);
        }
        body = decoded;
      }
      done({ status: Number(statusLine!.split(" ")[1]), headers: head, body });
    });
    const extra = Object.entries({ "CF-Connecting-IP": clientIp(), ...headers })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    socket.end(Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${hostValue}\r\n${extra}Connection: close\r\n\r\n`, "utf8"));
  });
}

/** A normal HTTP request naming a host; `abortAfterMs` cuts it off from the client side. */
function get(host: string, path = "/tenant", abortAfterMs?: number, extra: Record<string, string> = {}): Promise<Answer> {
  return new Promise((done) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, headers: { Host: `${host}:${port}`, "CF-Connecting-IP": clientIp(), ...extra }, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body }));
        res.on("error", (e) => done({ status: -1, headers: {}, body: String(e) }));
      },
    );
    req.on("error", (e) => done({ status: -1, headers: {}, body: String(e) }));
    req.setTimeout(15_000, () => req.destroy(new Error("no answer within 15 s")));
    req.end();
    if (abortAfterMs !== undefined) setTimeout(() => req.destroy(), abortAfterMs);
  });
}

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), "edge-tenants-path-"));
  port = await freePort();
  const adminUrl = new URL(inject("databaseUrl"));
  adminUrl.pathname = new URL(inject("workerDatabaseUrl")).pathname;
  owner = new pg.Client({ connectionString: adminUrl.toString() });
  await owner.connect();
  // An endpoint of its own with 20 ms per database request, as from an edge location to a Neon
  // region: concurrent first requests then really overlap inside the isolate.
  endpoint = await startSqlEndpoint({ upstream: { host: adminUrl.hostname, port: Number(adminUrl.port) }, delayMs: 20 });
  envFile = writeWorkerEnvFile({ DATABASE_URL: inject("workerDatabaseUrl"), LOCAL_SQL_ENDPOINT: endpoint.url, SESSION_SECRET });
  wrangler = spawn(
    resolve("node_modules/.bin/wrangler"),
    [
      "dev", "--port", String(port), "--inspector-port", String(await freePort()), "--persist-to", join(scratch, "state"),
      "--show-interactive-dev-session=false", "--log-level", "error", "--env-file", envFile.path,
    ],
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  wrangler.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  wrangler.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (wrangler.exitCode !== null) throw new Error(`wrangler dev exited:\n${output}`);
    const res = await get("acme.test").catch(() => undefined);
    if (res?.status === 200) break;
    if (Date.now() > deadline) throw new Error(`wrangler dev did not serve acme.test in time:\n${output}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}, 120_000);

afterAll(async () => {
  if (wrangler?.pid && wrangler.exitCode === null) {
    try {
      process.kill(-wrangler.pid, "SIGTERM");
    } catch {}
  }
  await owner?.end();
  await endpoint?.close();
  await rm(scratch, { recursive: true, force: true });
  envFile?.remove();
});

const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
const show = (answers: Answer[]) => answers.map((a) => `${a.status} ${a.body.slice(0, 120)}`);

/** The burst tenant's users, as GET /users lists them: exactly its one seeded user. */
function isBurstUsers(body: string): boolean {
  try {
    return JSON.stringify((JSON.parse(body) as Array<{ email: string }>).map((u) => u.email)) === '["owner@burst.test"]';
  } catch {
    return false;
  }
}

async function addHost(slug: string, host: string) {
  await owner.query("INSERT INTO shared.tenant_hosts (host, tenant_id) SELECT $1, id FROM shared.tenants WHERE slug = $2", [host, slug]);
}

describe("the Worker's bindings under wrangler dev", () => {
  it("come from a private file: the app role's password and the session secret are on no command line", () => {
    expect(wrangler?.exitCode).toBeNull();
    expect(processesMentioning(new URL(inject("workerDatabaseUrl")).password)).toEqual([]);
    expect(processesMentioning(SESSION_SECRET)).toEqual([]);
  });
});

describe("concurrent first requests under wrangler dev", () => {
  beforeAll(async () => {
    const { rows } = await owner.query<{ id: string; schema_name: string }>("SELECT id, schema_name FROM shared.tenants WHERE slug = 'burst'");
    const schema = rows[0]!.schema_name;
    await owner.query(
      `INSERT INTO "${schema}".users (email, hashed_password, role) VALUES ('owner@burst.test', 'x', 'admin') ON CONFLICT DO NOTHING`,
    );
    // GET /users is for admins: a token for the seeded admin, signed with the key this Worker has.
    const user = await owner.query<{ id: number }>(`SELECT id FROM "${schema}".users WHERE email = 'owner@burst.test'`);
    const now = Math.floor(Date.now() / 1000);
    const token = await signCredential(SESSION_SECRET, { k: "token", t: Number(rows[0]!.id), s: schema, u: user.rows[0]!.id, iat: now, exp: now + 3600 });
    burstAuth = { Authorization: `Bearer ${token}` };
  });

  it("answers 20 bursts of 12 requests for unknown hosts all 403 tenant_not_found in the JSON shape", async () => {
    const wrong: Answer[] = [];
    for (let burst = 0; burst < 20; burst++) {
      const host = `nobody-${unique()}.test`;
      for (const a of await Promise.all(Array.from({ length: 12 }, () => get(host, "/users", undefined, burstAuth)))) {
        if (!(a.status === 403 && /application\/json/.test(a.headers["content-type"] ?? "") && JSON.parse(a.body).error.code === "tenant_not_found")) wrong.push(a);
      }
    }
    expect(show(wrong)).toEqual([]);
  }, 120_000);

  it("answers 10 bursts of 12 requests for new hosts of a real tenant all with that tenant", async () => {
    const wrong: Answer[] = [];
    for (let burst = 0; burst < 10; burst++) {
      const host = `e${burst}-${unique()}.burst.test`;
      await addHost("burst", host);
      for (const a of await Promise.all(Array.from({ length: 12 }, () => get(host, "/users", undefined, burstAuth)))) {
        if (!(a.status === 200 && isBurstUsers(a.body))) wrong.push(a);
      }
    }
    expect(show(wrong)).toEqual([]);
  }, 120_000);

  it("answers the waiting requests right when the first one is aborted", async () => {
    const wrong: Answer[] = [];
    for (let round = 0; round < 5; round++) {
      const host = `x${round}-${unique()}.burst.test`;
      await addHost("burst", host);
      const first = get(host, "/users", 2, burstAuth);
      const others = Array.from({ length: 8 }, () => get(host, "/users", undefined, burstAuth));
      await first;
      for (const a of await Promise.all(others)) if (!(a.status === 200 && isBurstUsers(a.body))) wrong.push(a);
    }
    expect(show(wrong)).toEqual([]);
  }, 120_000);
});

describe("Host fuzzing under wrangler dev (raw Host headers)", () => {
  it("never answers 5xx; a tenant answers only for the host it owns; otherwise 400/403 in the error shape", async () => {
    const values = fuzzHosts();
    expect(values.length).toBeGreaterThanOrEqual(500);
    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    const wrong: string[] = [];
    const differs: string[] = [];
    for (let i = 0; i < values.length; i += 16) {
      await Promise.all(
        values.slice(i, i + 16).map(async ({ what, value }) => {
          const a = await raw(value);
          const fromWorker = a.headers["x-request-id"] !== undefined;
          if (!fromWorker) {
            // wrangler's proxy or workerd answered before the Worker ran.
            count(`runtime ${a.status} (before the Worker): ${a.body.split("\n")[0]!.replace(/http:\/\/\S*/, "<url>").slice(0, 70) || "(empty body)"}`);
            if (a.status === 200) wrong.push(`${what}: ${JSON.stringify(value)}: a 200 without the Worker`);
            return;
          }
          let body: { slug?: string; error?: { code: string; message: string; requestId: string } } = {};
          try {
            body = JSON.parse(a.body);
          } catch {}
          count(`worker ${a.status} ${body.error?.code ?? body.slug ?? ""}`);
          // What the Worker should have received: the header's value as HTTP frames it (up to the
          // line end, optional whitespace trimmed), read as the WHATWG URL parser reads a host.
          const headerValue = value.split(/[\r\n]/)[0]!.replace(/^[ \t]+|[ \t]+$/g, "");
          let model: string | undefined;
          let extraPath = false;
          try {
            const url = new URL(`http://${headerValue}/`);
            model = normalizeHost(url.host);
            extraPath = url.pathname !== "/" || url.search !== "" || url.hash !== "";
          } catch {}
          const owner = model ? fixtureOwner(model) : undefined;
          if (a.status === 404 && extraPath && owner && !owner.suspended && body.error?.code === "not_found") {
            // "/", "?", "#" or "\\" ended the host; the rest became part of the path: the right
            // tenant answered that it has no such route.
          } else if (a.status === 200 && extraPath && owner && !owner.suspended && a.body.includes(`<h1>${owner.name}</h1>`)) {
            // ... or the rest left the path "/": the right tenant's home page.
          } else if (a.status >= 500) wrong.push(`${what}: ${JSON.stringify(value)}: ${a.status} ${a.body.slice(0, 100)}`);
          else if (a.status === 200) {
            if (!owner || owner.suspended || owner.slug !== body.slug) wrong.push(`${what}: ${JSON.stringify(value)}: 200 for ${body.slug}, but the host is ${model}`);
          } else if (![400, 403].includes(a.status) || !body.error?.code || body.error.requestId !== a.headers["x-request-id"]) {
            wrong.push(`${what}: ${JSON.stringify(value)}: ${a.status} ${a.body.slice(0, 100)}`);
          } else if (owner && !owner.suspended) {
            differs.push(`${what}: ${JSON.stringify(value)}: ${a.status} ${body.error.code} (URL parser: ${model})`);
          }
        }),
      );
    }
    console.log(
      `Host fuzzing under wrangler dev, ${values.length} raw Host headers:\n` +
        [...counts].sort().map(([k, n]) => `  ${String(n).padStart(4)}  ${k}`).join("\n") +
        (differs.length ? `\nrefused although the WHATWG URL parser reads a tenant's host (${differs.length}):\n  ${differs.join("\n  ")}` : ""),
    );
    expect(wrong).toEqual([]);
  }, 300_000);
});
