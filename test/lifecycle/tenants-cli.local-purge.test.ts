// Local purge without wrangler: the tenants CLI deletes changed hosts from the KV namespace that
// `wrangler dev` persists (miniflare's SQLite file and blobs) itself, all hosts of a command at once.
// The namespace is written and read back with the real wrangler (`wrangler kv ... --local`), so the
// test proves the CLI edits the same storage wrangler uses, in a way wrangler still reads.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { KV_BINDING, localNamespaceFile, localNamespaceId } from "../../scripts/tenants/cache-purge.ts";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { connectTo, dropTestDatabases, freshDatabase, REPO_ROOT, runScript, show, TENANTS_CLI } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";

const wrangler = join(REPO_ROOT, "node_modules/.bin/wrangler");
let persistTo: string;
let databaseUrl: string;

function wranglerKv(...args: string[]) {
  const r = spawnSync(wrangler, ["kv", ...args, "--binding", KV_BINDING, "--local", "--persist-to", persistTo], { encoding: "utf8", cwd: REPO_ROOT });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  persistTo = await mkdtemp(join(tmpdir(), "edge-tenants-kv-"));
  databaseUrl = await freshDatabase("local_purge");
  const client = await connectTo(databaseUrl);
  await initWithTenants(client, ["purgy", "other"]);
  await client.query("INSERT INTO shared.tenant_hosts (host, tenant_id) SELECT 'www.purgy.test', id FROM shared.tenants WHERE slug = 'purgy'");
  await client.end();
  // What wrangler dev would have cached: both of purgy's hosts and another tenant's.
  const seed = join(persistTo, "seed.json");
  await writeFile(
    seed,
    JSON.stringify(["purgy.example.com", "www.purgy.test", "other.example.com"].map((h) => ({ key: hostCacheKey(h), value: JSON.stringify({ host: h }) }))),
  );
  wranglerKv("bulk", "put", seed);
}, 120_000);

afterAll(async () => {
  await rm(persistTo, { recursive: true, force: true });
  await dropTestDatabases();
});

it("suspend removes every host of the tenant from wrangler's local KV (and their values), and nothing else", async () => {
  const file = localNamespaceFile(persistTo, localNamespaceId(join(REPO_ROOT, "wrangler.toml")));
  expect(existsSync(file), `${file} should be the namespace wrangler wrote`).toBe(true);
  const blobs = join(persistTo, "v3", "kv", localNamespaceId(join(REPO_ROOT, "wrangler.toml")), "blobs");
  expect(readdirSync(blobs)).toHaveLength(3);

  const r = await runScript(TENANTS_CLI, ["suspend", "purgy", "--persist-to", persistTo], { databaseUrl, cwd: REPO_ROOT });
  expect(r.code, show(r)).toBe(0);
  expect(r.stdout).toBe("Tenant purgy is now suspended.\nPurged 2 host(s) from the local KV tenant cache.\n");
  expect(r.stderr).toBe("");

  const keys = (JSON.parse(wranglerKv("key", "list")) as Array<{ name: string }>).map((k) => k.name);
  expect(keys).toEqual([hostCacheKey("other.example.com")]);
  expect(readdirSync(blobs)).toHaveLength(1);
}, 120_000);
