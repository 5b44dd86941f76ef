// Purges hosts from the Workers KV tenant cache after the catalog changed, without starting
// wrangler:
// - the deployed namespace (--remote): one call to Cloudflare's REST API ("Delete multiple key-value
//   pairs", POST /accounts/{account_id}/storage/kv/namespaces/{namespace_id}/bulk/delete, a JSON
//   array of up to 10,000 keys), with CLOUDFLARE_API_TOKEN;
// - the local namespace `wrangler dev` persists (under .wrangler/state): miniflare keeps each KV
//   namespace in a SQLite database (table _mf_entries: key, blob_id, expiration, metadata) and the
//   values in blob files; deleting the rows (and their blobs) is what miniflare's own delete does.
//   SQLite's locking makes this safe while `wrangler dev` runs, and the Worker sees the deletion at
//   once (tried by hand: a value read, deleted here, then read again as null by the running Worker).
import { createHash, createHmac } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { hostCacheKey } from "../../src/tenancy/cache.ts";

export const KV_BINDING = "TENANT_CACHE";
export const DEFAULT_PERSIST_TO = ".wrangler/state";
export const DEFAULT_REMOTE_ENV = "production";
export const CLOUDFLARE_API_BASE = "https://api.cloudflare.com/client/v4";
/** The API takes at most this many keys per bulk delete. */
const BULK_LIMIT = 10_000;

/** A purge that cannot even be attempted: missing credentials or configuration. */
export class PurgeConfigError extends Error {}

export interface PurgeOutcome {
  purged: boolean;
  /** Why nothing was purged, or what went wrong. */
  note?: string;
  /** Keys that were not deleted (remote). */
  failedKeys?: string[];
}

interface WranglerKvNamespace {
  binding?: string;
  id?: string;
}
interface WranglerConfig {
  account_id?: string;
  kv_namespaces?: WranglerKvNamespace[];
  env?: Record<string, { account_id?: string; kv_namespaces?: WranglerKvNamespace[] }>;
}

function readWranglerConfig(path: string): WranglerConfig {
  if (!existsSync(path)) return {};
  try {
    return parseToml(readFileSync(path, "utf8")) as WranglerConfig;
  } catch (error) {
    throw new PurgeConfigError(`cannot read ${path}: ${(error as Error).message}`);
  }
}

function bindingId(namespaces: WranglerKvNamespace[] | undefined): string | undefined {
  return namespaces?.find((ns) => ns.binding === KV_BINDING)?.id;
}

// --- the deployed namespace -----------------------------------------------------------------------

export interface RemoteTarget {
  accountId: string;
  namespaceId: string;
  apiToken: string;
  apiBase: string;
}

export interface RemoteOptions {
  /** wrangler environment whose namespace to purge (default production). */
  env?: string;
  accountId?: string;
  namespaceId?: string;
  /** wrangler.toml to read ids from (default ./wrangler.toml). */
  configPath?: string;
}

const PLACEHOLDER_ID = /^REPLACE_|^$/;

/**
 * Where `--remote` purges: flags first, then the environment (CLOUDFLARE_ACCOUNT_ID,
 * TENANT_CACHE_NAMESPACE_ID), then wrangler.toml's [env.<env>] section. Throws a one-line
 * PurgeConfigError naming what is missing.
 */
export function remoteTarget(options: RemoteOptions, environ: NodeJS.ProcessEnv = process.env): RemoteTarget {
  const env = options.env ?? DEFAULT_REMOTE_ENV;
  const configPath = options.configPath ?? resolve("wrangler.toml");
  const config = readWranglerConfig(configPath);
  const section = config.env?.[env];
  const apiToken = environ.CLOUDFLARE_API_TOKEN?.trim();
  if (!apiToken) {
    throw new PurgeConfigError(
      "--remote purges the deployed Workers KV through Cloudflare's API and needs a token with " +
        '"Workers KV Storage Write": set CLOUDFLARE_API_TOKEN',
    );
  }
  const accountId = options.accountId ?? (environ.CLOUDFLARE_ACCOUNT_ID?.trim() || undefined) ?? section?.account_id ?? config.account_id;
  if (!accountId) {
    throw new PurgeConfigError(
      "--remote needs your Cloudflare account id: set CLOUDFLARE_ACCOUNT_ID, pass --account-id, or put account_id in wrangler.toml",
    );
  }
  const namespaceId = options.namespaceId ?? (environ.TENANT_CACHE_NAMESPACE_ID?.trim() || undefined) ?? bindingId(section?.kv_namespaces);
  if (!namespaceId || PLACEHOLDER_ID.test(namespaceId)) {
    throw new PurgeConfigError(
      `--remote needs the id of the ${KV_BINDING} namespace of environment ${env}: ` +
        (namespaceId
          ? `wrangler.toml still has the placeholder "${namespaceId}"; put the id that \`npx wrangler kv namespace create ${KV_BINDING} --env ${env}\` printed there`
          : `add [[env.${env}.kv_namespaces]] with binding "${KV_BINDING}" to wrangler.toml`) +
        ", or pass --namespace-id (or set TENANT_CACHE_NAMESPACE_ID)",
    );
  }
  const apiBase = (environ.CLOUDFLARE_API_BASE_URL?.trim() || CLOUDFLARE_API_BASE).replace(/\/+$/, "");
  return { accountId, namespaceId, apiToken, apiBase };
}

interface BulkDeleteResponse {
  success?: boolean;
  errors?: Array<{ code?: number; message?: string }>;
  result?: { successful_key_count?: number; unsuccessful_keys?: string[] } | null;
}

/** Deletes the hosts' keys from the deployed namespace: one HTTPS request per 10,000 hosts. */
export async function purgeRemote(hosts: string[], target: RemoteTarget): Promise<PurgeOutcome> {
  const keys = hosts.map(hostCacheKey);
  const url =
    `${target.apiBase}/accounts/${encodeURIComponent(target.accountId)}` +
    `/storage/kv/namespaces/${encodeURIComponent(target.namespaceId)}/bulk/delete`;
  const failedKeys: string[] = [];
  for (let i = 0; i < keys.length; i += BULK_LIMIT) {
    const chunk = keys.slice(i, i + BULK_LIMIT);
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { authorization: `Bearer ${target.apiToken}`, "content-type": "application/json" },
        body: JSON.stringify(chunk),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      return { purged: false, note: `cannot reach ${target.apiBase}: ${cause ?? (error as Error).message}` };
    }
    const body = (await response.json().catch(() => ({}))) as BulkDeleteResponse;
    if (!response.ok || body.success === false) {
      const why = body.errors?.map((e) => `${e.message ?? "error"}${e.code ? ` (${e.code})` : ""}`).join("; ");
      return { purged: false, note: `Cloudflare's API answered ${response.status}${why ? `: ${why}` : ""}` };
    }
    failedKeys.push(...(body.result?.unsuccessful_keys ?? []));
  }
  if (failedKeys.length) return { purged: false, note: `${failedKeys.length} key(s) were not deleted: ${failedKeys.join(", ")}`, failedKeys };
  return { purged: true };
}

// --- the local namespace (wrangler dev) ----------------------------------------------------------

/** The id `wrangler dev` gives the local namespace: the top-level TENANT_CACHE binding's id. */
export function localNamespaceId(configPath = resolve("wrangler.toml")): string {
  return bindingId(readWranglerConfig(configPath).kv_namespaces) ?? KV_BINDING;
}

/**
 * The file miniflare keeps a KV namespace in: its KV objects are Durable Objects of the class
 * KVNamespaceObject (unique key "miniflare-KVNamespaceObject"), one per namespace id, and workerd
 * names an object's SQLite file after its id derived from the name: HMAC-SHA256 of the name with
 * key SHA-256(unique key), first 16 bytes, followed by the first 16 bytes of the HMAC of those.
 */
export function localNamespaceFile(persistTo: string, namespaceId: string): string {
  const key = createHash("sha256").update("miniflare-KVNamespaceObject").digest();
  const base = createHmac("sha256", key).update(namespaceId).digest().subarray(0, 16);
  const mac = createHmac("sha256", key).update(base).digest().subarray(0, 16);
  const id = Buffer.concat([base, mac]).toString("hex");
  return join(persistTo, "v3", "kv", "miniflare-KVNamespaceObject", `${id}.sqlite`);
}

/** node:sqlite without its "experimental" warning on stderr (it is stable enough for this). */
async function loadSqlite(): Promise<typeof import("node:sqlite")> {
  const emitWarning = process.emitWarning;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const text = typeof warning === "string" ? warning : warning.message;
    if (/SQLite/.test(text)) return;
    return (emitWarning as (...args: unknown[]) => void).call(process, warning, ...rest);
  }) as typeof process.emitWarning;
  try {
    return await import("node:sqlite");
  } finally {
    process.emitWarning = emitWarning;
  }
}

/** Deletes the hosts' keys from the local namespace, in one SQLite transaction. */
export async function purgeLocal(hosts: string[], persistTo = DEFAULT_PERSIST_TO, namespaceId = localNamespaceId()): Promise<PurgeOutcome> {
  const file = localNamespaceFile(persistTo, namespaceId);
  if (!existsSync(file)) {
    return { purged: false, note: `no local KV under ${persistTo} yet (wrangler dev has not cached anything)` };
  }
  const { DatabaseSync } = await loadSqlite();
  let blobs: string[];
  try {
    const db = new DatabaseSync(file, { timeout: 5_000 });
    try {
      const keys = hosts.map(hostCacheKey);
      const rows = db
        .prepare(`DELETE FROM _mf_entries WHERE key IN (SELECT value FROM json_each(?)) RETURNING blob_id`)
        .all(JSON.stringify(keys)) as Array<{ blob_id: string }>;
      blobs = rows.map((r) => r.blob_id);
    } finally {
      db.close();
    }
  } catch (error) {
    return { purged: false, note: `cannot write the local KV in ${file}: ${(error as Error).message}` };
  }
  // The values: miniflare deletes a deleted entry's blob too.
  const blobDir = join(persistTo, "v3", "kv", namespaceId, "blobs");
  await Promise.all(blobs.filter((b) => /^[0-9a-f]+$/.test(b)).map((b) => rm(join(blobDir, b), { force: true })));
  return { purged: true };
}
