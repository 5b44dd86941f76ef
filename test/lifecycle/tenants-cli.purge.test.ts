// A remote database is never left with stale caches silently (issue 7, item 4): against a
// database on another machine a changing command refuses unless --remote or --no-purge is given;
// --remote purges every changed host in ONE call to Cloudflare's KV API (no wrangler process);
// --no-purge says how long Workers may serve the old answer.
//
// Cloudflare's API cannot be reached from the test machine, so --remote is tested against a FAKE:
// a local HTTP server standing in for api.cloudflare.com (CLOUDFLARE_API_BASE_URL points the CLI
// at it). It records the requests and answers as the real "Delete multiple key-value pairs"
// endpoint documents (POST /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk/delete).
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { STALENESS_BOUND_SECONDS } from "../../scripts/tenants/staleness.ts";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";

// Each test starts CLI processes; on a loaded machine they take seconds each.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const BOUND = `${STALENESS_BOUND_SECONDS / 60} minutes (${STALENESS_BOUND_SECONDS} s)`;
const ACCOUNT = "0123456789abcdef0123456789abcdef";
const NAMESPACE = "fedcba9876543210fedcba9876543210";
const TOKEN = "test-token-not-a-secret";

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}
const seen: Seen[] = [];
let answer: { status: number; body: unknown } = { status: 200, body: {} };
let fake: Server;
let apiBase: string;

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}

let databaseUrl: string;
let client: pg.Client;

beforeAll(async () => {
  fake = createServer(async (req, res) => {
    const text = await readBody(req);
    seen.push({ method: req.method!, path: req.url!, authorization: req.headers.authorization, body: text ? JSON.parse(text) : undefined });
    res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
  });
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
  apiBase = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/client/v4`;
  databaseUrl = await freshDatabase("purge_remote");
  client = await connectTo(databaseUrl);
  await initWithTenants(client, ["acme"]);
  await tenantsCli({ databaseUrl }, "hosts", "add", "acme", "www.acme.test");
});
afterAll(async () => {
  await new Promise((r) => fake.close(r));
  await dropTestDatabases();
});

const remoteEnv = (extra: Record<string, string> = {}) => ({ CLOUDFLARE_API_TOKEN: TOKEN, CLOUDFLARE_API_BASE_URL: apiBase, ...extra });
const remoteFlags = ["--remote", "--account-id", ACCOUNT, "--namespace-id", NAMESPACE];
const success = (n: number) => ({ status: 200, body: { success: true, errors: [], messages: [], result: { successful_key_count: n, unsuccessful_keys: [] } } });

describe("a database on another machine", () => {
  // Nothing listens there (and the name does not resolve): a refusal must come before connecting.
  const elsewhere = "postgresql://owner:secret@db.example.invalid:5432/app";
  const changing = [
    ["create", "newco", "--name", "NewCo", "--host", "newco.example.com"],
    ["rename", "acme", "acme2"],
    ["hosts", "add", "acme", "shop.acme.test"],
    ["hosts", "remove", "acme", "www.acme.test"],
    ["suspend", "acme"],
    ["resume", "acme"],
    ["delete", "acme", "--yes"],
  ];
  it.each(changing)("%s ... refuses without --remote or --no-purge, naming the staleness bound", async (...args) => {
    const r = await tenantsCli({ databaseUrl: elsewhere }, ...args);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toBe(
      "error: DATABASE_URL is a database on another machine (db.example.invalid), whose Workers cache tenants in the deployed KV: " +
        `pass --remote to purge the changed hosts there (see --help), or --no-purge to skip it (then Workers may serve the old answer for up to ${BOUND})\n`,
    );
  });

  it("read-only commands are not refused (they try to connect)", async () => {
    const r = await tenantsCli({ databaseUrl: elsewhere }, "list");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot connect to PostgreSQL at db\.example\.invalid:5432/);
  });

  it("--remote without credentials says what is missing, before connecting", async () => {
    const noToken = await tenantsCli({ databaseUrl: elsewhere, env: { CLOUDFLARE_API_TOKEN: "" } }, "suspend", "acme", ...remoteFlags);
    expect(noToken.code, show(noToken)).toBe(2);
    expect(noToken.stderr).toContain("set CLOUDFLARE_API_TOKEN");
    const noAccount = await tenantsCli(
      { databaseUrl: elsewhere, env: remoteEnv({ CLOUDFLARE_ACCOUNT_ID: "" }) },
      "suspend", "acme", "--remote", "--namespace-id", NAMESPACE,
    );
    expect(noAccount.code, show(noAccount)).toBe(2);
    expect(noAccount.stderr).toContain("--remote needs your Cloudflare account id: set CLOUDFLARE_ACCOUNT_ID, pass --account-id");
    expect(seen).toEqual([]);
  });
});

describe("--remote purges through the KV API, one request per command", () => {
  it("suspend sends every host of the tenant in one bulk delete, with the token", async () => {
    seen.length = 0;
    answer = success(2);
    const r = await tenantsCli({ databaseUrl, env: remoteEnv() }, "suspend", "acme", ...remoteFlags);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe("Tenant acme is now suspended.\nPurged 2 host(s) from the deployed (production) KV tenant cache.\n");
    expect(seen).toEqual([
      {
        method: "POST",
        path: `/client/v4/accounts/${ACCOUNT}/storage/kv/namespaces/${NAMESPACE}/bulk/delete`,
        authorization: `Bearer ${TOKEN}`,
        body: [hostCacheKey("acme.example.com"), hostCacheKey("www.acme.test")],
      },
    ]);
  });

  it("rename purges the tenant's hosts (their cached answers carry the old slug)", async () => {
    seen.length = 0;
    answer = success(2);
    const r = await tenantsCli({ databaseUrl, env: remoteEnv() }, "rename", "acme", "acme_corp", ...remoteFlags);
    expect(r.code, show(r)).toBe(0);
    expect(seen.map((s) => s.body)).toEqual([[hostCacheKey("acme.example.com"), hostCacheKey("www.acme.test")]]);
  });

  it("when the API refuses, the change is kept and the command exits 1 saying how to retry", async () => {
    seen.length = 0;
    answer = { status: 403, body: { success: false, errors: [{ code: 10000, message: "Authentication error" }], messages: [], result: null } };
    const r = await tenantsCli({ databaseUrl, env: remoteEnv() }, "resume", "acme_corp", ...remoteFlags);
    expect(r.code, show(r)).toBe(1);
    expect(r.stdout).toBe("Tenant acme_corp is now active.\n");
    expect(r.stderr).toBe(
      "error: the change is saved, but the deployed (production) KV tenant cache was not purged (Cloudflare's API answered 403: " +
        `Authentication error (10000)); Workers may serve the old answer for up to ${BOUND}: retry with ` +
        "`npm run tenants -- cache purge acme.example.com www.acme.test --remote`\n",
    );
    expect((await client.query("SELECT status::text FROM shared.tenants WHERE slug = 'acme_corp'")).rows).toEqual([{ status: "active" }]);
    expect(seen).toHaveLength(1);
  });

  it("cache purge --remote needs no database", async () => {
    seen.length = 0;
    answer = success(1);
    const r = await tenantsCli(
      { databaseUrl: "postgresql://u:p@127.0.0.1:9/none", env: remoteEnv() },
      "cache", "purge", "Acme.Example.com", ...remoteFlags,
    );
    expect(r.code, show(r)).toBe(0);
    expect(seen.map((s) => s.body)).toEqual([[hostCacheKey("acme.example.com")]]);
  });
});

describe("--no-purge", () => {
  it("makes the change and warns how long Workers may serve the old answer", async () => {
    seen.length = 0;
    const before = await databaseState(client);
    const r = await tenantsCli({ databaseUrl }, "suspend", "acme_corp", "--no-purge");
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe("Tenant acme_corp is now suspended.\n");
    expect(r.stderr).toBe(
      `warning: --no-purge: the KV tenant cache was not purged; Workers may serve the old answer for acme.example.com, www.acme.test for up to ${BOUND}\n`,
    );
    expect(await databaseState(client)).not.toEqual(before);
    expect(seen).toEqual([]);
  });

  it("--remote and --no-purge together are bad usage", async () => {
    const r = await tenantsCli({ databaseUrl }, "resume", "acme_corp", "--no-purge", "--remote");
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toBe("error: --remote purges the deployed KV and --no-purge skips purging: give one of them\n");
  });
});
