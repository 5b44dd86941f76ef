// Purges hosts from the Workers KV tenant cache after the catalog changed, through wrangler:
// locally the namespace `wrangler dev` persists under .wrangler/state, or the deployed one (--remote).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { hostCacheKey } from "../../src/tenancy/cache.ts";

export const KV_BINDING = "TENANT_CACHE";

export interface PurgeTarget {
  /** The deployed namespace (needs Cloudflare credentials) instead of the local one. */
  remote: boolean;
  /** Wrangler environment for --remote (default production). */
  env?: string;
  /** Local persistence directory (default .wrangler/state, as `wrangler dev` uses). */
  persistTo?: string;
}

export interface PurgeOutcome {
  purged: boolean;
  /** Why nothing was purged, or what went wrong. */
  note?: string;
}

function run(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((done) => {
    const child = spawn(resolve("node_modules/.bin/wrangler"), args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("error", (error) => done({ code: 127, output: error.message }));
    child.on("exit", (code) => done({ code: code ?? 1, output }));
  });
}

export async function purgeHosts(hosts: string[], target: PurgeTarget): Promise<PurgeOutcome> {
  if (hosts.length === 0) return { purged: false, note: "no hosts to purge" };
  const persistTo = target.persistTo ?? ".wrangler/state";
  if (!target.remote && !existsSync(join(persistTo, "v3", "kv"))) {
    return { purged: false, note: `no local KV under ${persistTo} yet (wrangler dev has not cached anything)` };
  }
  const dir = await mkdtemp(join(tmpdir(), "edge-tenants-purge-"));
  try {
    const file = join(dir, "keys.json");
    await writeFile(file, JSON.stringify(hosts.map(hostCacheKey)));
    const args = ["kv", "bulk", "delete", file, "--binding", KV_BINDING, "--force"];
    if (target.remote) args.push("--remote", "--env", target.env ?? "production");
    else args.push("--local", "--persist-to", persistTo);
    const { code, output } = await run(args);
    if (code !== 0) {
      const reason = output.split("\n").find((l) => /error|✘/i.test(l))?.trim() ?? `wrangler exited ${code}`;
      return { purged: false, note: reason };
    }
    return { purged: true };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
