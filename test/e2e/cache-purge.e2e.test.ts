// The tenants CLI purges changed hosts from the local Workers KV that `wrangler dev` reads.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadMigrations } from "../../scripts/migrations/files.ts";
import { KV_BINDING } from "../../scripts/tenants/cache-purge.ts";
import { createTenant, initDatabase } from "../../scripts/tenants/operations.ts";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { connectTo, dropTestDatabases, freshDatabase } from "../support/database.ts";

const wrangler = resolve("node_modules/.bin/wrangler");
let persistTo: string;
let databaseUrl: string;

function kv(...args: string[]) {
  return spawnSync(wrangler, ["kv", "key", ...args, "--binding", KV_BINDING, "--local", "--persist-to", persistTo], {
    encoding: "utf8",
  });
}

function cli(...args: string[]) {
  return spawnSync(process.execPath, ["scripts/tenants/cli.ts", ...args, "--persist-to", persistTo], {
    encoding: "utf8",
    env: { ...process.env, DATABASE_URL: databaseUrl },
  });
}

beforeAll(async () => {
  persistTo = await mkdtemp(join(tmpdir(), "edge-tenants-kv-"));
  databaseUrl = await freshDatabase("purge");
  const client = await connectTo(databaseUrl);
  try {
    await initDatabase(client, loadMigrations());
    await createTenant(client, loadMigrations(), { slug: "purgy", name: "Purgy", hosts: ["purgy.test", "old.purgy.test"] });
  } finally {
    await client.end();
  }
  for (const host of ["purgy.test", "old.purgy.test", "other.test"]) {
    expect(kv("put", hostCacheKey(host), JSON.stringify({ tenant: null })).status).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  await rm(persistTo, { recursive: true, force: true });
  await dropTestDatabases();
});

describe("tenants CLI and the local KV tenant cache", () => {
  it("purges a removed host, and only it", () => {
    const removed = cli("hosts", "remove", "purgy", "old.purgy.test");
    expect(removed.status, removed.stderr).toBe(0);
    expect(removed.stdout).toContain("Purged 1 host(s) from the local KV tenant cache.");
    expect(kv("get", hostCacheKey("old.purgy.test"), "--text").stdout).toMatch(/Value not found/);
    expect(kv("get", hostCacheKey("purgy.test"), "--text").stdout).toContain('{"tenant":null}');
    expect(kv("get", hostCacheKey("other.test"), "--text").stdout).toContain('{"tenant":null}');
  }, 120_000); // each check starts wrangler: slow on a loaded machine

  it("purges every host of a suspended tenant", () => {
    const suspended = cli("suspend", "purgy");
    expect(suspended.status, suspended.stderr).toBe(0);
    expect(kv("get", hostCacheKey("purgy.test"), "--text").stdout).toMatch(/Value not found/);
    expect(kv("get", hostCacheKey("other.test"), "--text").stdout).toContain('{"tenant":null}');
  }, 120_000); // each check starts wrangler: slow on a loaded machine

  it("purges on request with cache purge", () => {
    const purged = cli("cache", "purge", "other.test");
    expect(purged.status, purged.stderr).toBe(0);
    expect(kv("get", hostCacheKey("other.test"), "--text").stdout).toMatch(/Value not found/);
  }, 120_000); // each check starts wrangler: slow on a loaded machine
});
