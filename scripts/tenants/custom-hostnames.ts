// Custom domains through Cloudflare for SaaS: `hosts add <slug> <host> --custom` registers the host
// as a custom hostname of the SaaS zone (the official `cloudflare` SDK) and records Cloudflare's id,
// the hostname's status and its certificate's status in shared.tenant_hosts; `hosts status`
// refreshes them. The Worker serves a custom host only while its recorded status is "active"
// (src/tenancy/resolve.ts), so a customer's domain goes live only once Cloudflare has verified it.
import type Cloudflare from "cloudflare";
import type {
  CustomHostnameCreateResponse,
  CustomHostnameGetResponse,
} from "cloudflare/resources/custom-hostnames/custom-hostnames";
import type pg from "pg";
import { CLOUDFLARE_API_BASE } from "./cache-purge.ts";
import { TenantCommandError, addHostLocked, lockedTransaction, type CreateTenantInput } from "./operations.ts";

/** Cannot even try: a missing token or zone id (bad usage, answered before connecting). */
export class CustomHostnameConfigError extends Error {}

export interface SaasConfig {
  apiToken: string;
  zoneId: string | undefined;
  baseURL: string;
}

/**
 * The token (CLOUDFLARE_API_TOKEN), the SaaS zone (--zone-id, else CLOUDFLARE_ZONE_ID; needed to
 * register, not to refresh: each host records its zone) and the API's address (CLOUDFLARE_API_BASE_URL,
 * the same override the KV purge reads).
 */
export function saasConfig(options: { zoneId?: string; needZone: boolean }, environ: NodeJS.ProcessEnv = process.env): SaasConfig {
  const apiToken = environ.CLOUDFLARE_API_TOKEN?.trim();
  if (!apiToken) {
    throw new CustomHostnameConfigError(
      'custom hostnames are managed through Cloudflare\'s API and need a token with "SSL and Certificates Edit" on the SaaS zone: set CLOUDFLARE_API_TOKEN',
    );
  }
  const zoneId = options.zoneId?.trim() || environ.CLOUDFLARE_ZONE_ID?.trim() || undefined;
  if (options.needZone && !zoneId) {
    throw new CustomHostnameConfigError(
      "--custom needs the id of your Cloudflare for SaaS zone (the zone with the fallback origin): set CLOUDFLARE_ZONE_ID or pass --zone-id",
    );
  }
  if (zoneId && !/^[0-9a-f]{32}$/.test(zoneId)) {
    throw new CustomHostnameConfigError(`"${zoneId}" is not a Cloudflare zone id (32 hexadecimal characters, on the zone's Overview page)`);
  }
  const baseURL = (environ.CLOUDFLARE_API_BASE_URL?.trim() || CLOUDFLARE_API_BASE).replace(/\/+$/, "");
  return { apiToken, zoneId, baseURL };
}

/** The SDK, loaded by the commands that use it only: it adds most of a second to every CLI start. */
let sdk: typeof Cloudflare | undefined;

export async function cloudflareClient(config: SaasConfig): Promise<Cloudflare> {
  sdk ??= (await import("cloudflare")).default;
  // No automatic retries: the SDK would retry a create after a timeout or a 409 (and a create that
  // reached Cloudflare must not be sent twice); reads ask for their own retries.
  return new sdk({ apiToken: config.apiToken, baseURL: config.baseURL, maxRetries: 0, timeout: 30_000 });
}

/** Cloudflare's answer as one line: the status and the API's own error messages and codes. */
export function describeApiError(error: unknown, baseURL: string): string {
  if (sdk && error instanceof sdk.APIConnectionError) {
    const cause = (error.cause as Error | undefined)?.message;
    return `cannot reach ${baseURL}: ${cause ?? error.message}`;
  }
  if (sdk && error instanceof sdk.APIError) {
    const why = error.errors.map((e) => `${e.message}${e.code ? ` (${e.code})` : ""}`).join("; ");
    return `Cloudflare's API answered ${error.status}${why ? `: ${why}` : ""}`;
  }
  return (error as Error).message;
}

type CustomHostname = CustomHostnameCreateResponse | CustomHostnameGetResponse;

/** What the catalog keeps of a custom hostname (columns custom_* of shared.tenant_hosts). */
export interface CustomHostState {
  host: string;
  slug: string;
  id: string;
  zoneId: string;
  status: string;
  sslStatus: string | null;
  verification: Verification;
  checkedAt: string;
}

interface Verification {
  /** TXT record proving ownership (when the customer's CNAME is not in place yet). */
  ownership?: { name?: string; type?: string; value?: string };
  /** Records the certificate authority checks (e.g. a TXT record for DCV). */
  certificate?: Array<{ txt_name?: string; txt_value?: string; http_url?: string; http_body?: string; status?: string }>;
  errors?: string[];
}

function verificationOf(h: CustomHostname): Verification {
  const errors = [...(h.verification_errors ?? []), ...(h.ssl?.validation_errors ?? []).map((e) => e.message ?? "")].filter(Boolean);
  return {
    ...(h.ownership_verification ? { ownership: h.ownership_verification } : {}),
    ...(h.ssl?.validation_records?.length ? { certificate: h.ssl.validation_records } : {}),
    ...(errors.length ? { errors } : {}),
  };
}

/** Whether the Worker serves a host in this state (the same rule as lookupHostInCatalog). */
export const isServed = (status: string) => status === "active";

/**
 * `hosts add <slug> <host> --custom`: the same checks as a plain `hosts add` (the tenant exists, the
 * host is free and not quarantined), then the custom hostname is created at Cloudflare and recorded,
 * all inside one transaction under the migration lock: when Cloudflare refuses, nothing is saved;
 * when saving fails after Cloudflare created it, the hostname is deleted there again.
 */
export async function addCustomHost(
  client: pg.Client,
  cf: Cloudflare,
  config: SaasConfig,
  slug: string,
  host: string,
  options: Pick<CreateTenantInput, "force" | "onForced"> = {},
): Promise<{ stale: string[]; state: CustomHostState }> {
  let created: CustomHostnameCreateResponse | undefined;
  const zoneId = config.zoneId!;
  try {
    return await lockedTransaction(client, async () => {
      const stale = await addHostLocked(client, slug, host, options);
      try {
        created = await cf.customHostnames.create({ zone_id: zoneId, hostname: stale[0]!, ssl: { method: "http", type: "dv" } });
      } catch (error) {
        throw new TenantCommandError(`Cloudflare did not register ${stale[0]} (${describeApiError(error, config.baseURL)}): nothing was changed`);
      }
      if (created.hostname !== stale[0]) {
        throw new TenantCommandError(`Cloudflare registered "${created.hostname}" instead of ${stale[0]}: nothing was saved`);
      }
      await client.query(
        `UPDATE shared.tenant_hosts SET custom_hostname_id = $2, custom_zone_id = $3, custom_status = $4, custom_ssl_status = $5,
                custom_verification = $6, custom_checked_at = now()
         WHERE host = $1`,
        [stale[0], created.id, zoneId, created.status ?? "pending", created.ssl?.status ?? null, JSON.stringify(verificationOf(created))],
      );
      const state = (await readStates(client, { host: stale[0]! }))[0]!;
      return { stale, state };
    });
  } catch (error) {
    // Created at Cloudflare but not saved here (e.g. the commit failed): take it back there.
    if (created && !(error instanceof TenantCommandError && /nothing was changed$/.test(error.message))) {
      const id = created.id;
      const undone = await cf.customHostnames.delete(id, { zone_id: zoneId }).then(
        () => "it was deleted at Cloudflare again",
        (e: unknown) => `deleting it at Cloudflare failed too (${describeApiError(e, config.baseURL)}): delete custom hostname ${id} in the dashboard`,
      );
      throw new TenantCommandError(`${(error as Error).message}; the custom hostname was not saved in the catalog and ${undone}`);
    }
    throw error;
  }
}

const STATE_SQL = `
SELECT h.host, t.slug, h.custom_hostname_id AS id, h.custom_zone_id AS "zoneId", h.custom_status AS status,
       h.custom_ssl_status AS "sslStatus", coalesce(h.custom_verification, '{}') AS verification,
       to_char(h.custom_checked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS "checkedAt"
FROM shared.tenant_hosts h JOIN shared.tenants t ON t.id = h.tenant_id
WHERE h.custom_hostname_id IS NOT NULL`;

async function readStates(client: pg.Client, where: { slug?: string; host?: string } = {}): Promise<CustomHostState[]> {
  if (where.host) return (await client.query<CustomHostState>(`${STATE_SQL} AND h.host = $1`, [where.host])).rows;
  if (where.slug) return (await client.query<CustomHostState>(`${STATE_SQL} AND t.slug = $1 ORDER BY h.host`, [where.slug])).rows;
  return (await client.query<CustomHostState>(`${STATE_SQL} ORDER BY t.slug, h.host`)).rows;
}

/**
 * `hosts status [<slug>]`: asks Cloudflare for every custom hostname of the tenant (or of all
 * tenants) first, then records all the answers in one transaction; if any request fails, nothing is
 * recorded. Returns the states and the hosts whose served/not-served answer changed (to purge).
 */
export async function refreshCustomHosts(
  client: pg.Client,
  cf: Cloudflare,
  config: SaasConfig,
  slug?: string,
): Promise<{ states: CustomHostState[]; stale: string[] }> {
  if (slug) {
    const { rowCount } = await client.query("SELECT 1 FROM shared.tenants WHERE slug = $1", [slug]);
    if (!rowCount) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
  }
  const before = await readStates(client, { slug });
  const answers: CustomHostnameGetResponse[] = [];
  for (const row of before) {
    try {
      answers.push(await cf.customHostnames.get(row.id, { zone_id: row.zoneId }, { maxRetries: 2 }));
    } catch (error) {
      throw new TenantCommandError(
        `cannot refresh ${row.host} (custom hostname ${row.id}): ${describeApiError(error, config.baseURL)}; nothing was updated`,
      );
    }
  }
  const stale: string[] = [];
  await lockedTransaction(client, async () => {
    for (const [i, row] of before.entries()) {
      const h = answers[i]!;
      const status = h.status ?? "pending";
      if (isServed(status) !== isServed(row.status)) stale.push(row.host);
      await client.query(
        `UPDATE shared.tenant_hosts SET custom_status = $3, custom_ssl_status = $4, custom_verification = $5, custom_checked_at = now()
         WHERE host = $1 AND custom_hostname_id = $2`,
        [row.host, row.id, status, h.ssl?.status ?? null, JSON.stringify(verificationOf(h))],
      );
    }
  });
  return { states: await readStates(client, { slug }), stale };
}

/** The custom hostname registered for `host`, if it is one. */
export async function customHostnameOf(client: pg.Client, host: string): Promise<{ id: string; zoneId: string } | undefined> {
  try {
    const { rows } = await client.query<{ id: string; zoneId: string }>(
      `SELECT custom_hostname_id AS id, custom_zone_id AS "zoneId" FROM shared.tenant_hosts WHERE host = $1 AND custom_hostname_id IS NOT NULL`,
      [host],
    );
    return rows[0];
  } catch (error) {
    // Before init there is no catalog (undefined_table): the command itself says so next.
    if ((error as { code?: string }).code === "42P01") return undefined;
    throw error;
  }
}

/** The states as a table, with what is still missing for each host that is not served. */
export function describeStates(states: CustomHostState[]): string {
  if (states.length === 0) return "No custom hostnames: add one with `npm run tenants -- hosts add <slug> <host> --custom`.";
  const head = ["HOST", "TENANT", "HOSTNAME", "CERTIFICATE", "SERVED", "CHECKED"];
  const rows = states.map((s) => [s.host, s.slug, s.status, s.sslStatus ?? "-", isServed(s.status) ? "yes" : "no", s.checkedAt]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const lines = [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  for (const s of states) {
    if (isServed(s.status) && s.sslStatus === "active") continue;
    const v = s.verification;
    if (v.ownership?.name && v.ownership.value) {
      lines.push(`${s.host}: ownership: ${v.ownership.type?.toUpperCase() ?? "TXT"} record ${v.ownership.name} = ${v.ownership.value} (or the CNAME in place)`);
    }
    for (const r of v.certificate ?? []) {
      if (r.txt_name && r.txt_value) lines.push(`${s.host}: certificate: TXT record ${r.txt_name} = ${r.txt_value}`);
      else if (r.http_url) lines.push(`${s.host}: certificate: ${r.http_url} must serve ${r.http_body ?? "the token"}`);
    }
    for (const e of v.errors ?? []) lines.push(`${s.host}: error: ${e}`);
  }
  return lines.join("\n");
}
