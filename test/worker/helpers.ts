// Calls the Worker inside workerd, with the test bindings (or overrides), and reaches the test
// database through the local endpoint the way the Worker does.
import { neon, neonConfig } from "@neondatabase/serverless";
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { app } from "../../src/index.ts";

export interface Call {
  path?: string;
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  bindings?: object;
}

let clients = 0;
/**
 * A client address of its own (CF-Connecting-IP, as Cloudflare sets it): the per-client limit on
 * lookups of new hosts then only applies where a test sends several requests as one client.
 */
export function newClientIp(): string {
  clients++;
  return `198.18.${(clients >> 8) & 255}.${clients & 255}`;
}

/** A request to `http://<host><path>`: the URL carries the host, as in workerd. */
export async function request(host: string, options: Call = {}): Promise<Response> {
  const ctx = createExecutionContext();
  const init: RequestInit = { method: options.method ?? "GET", headers: { "CF-Connecting-IP": newClientIp(), ...options.headers } };
  if (options.body !== undefined) {
    init.body = JSON.stringify(options.body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const res = await app.fetch(new Request(`http://${host}${options.path ?? "/tenant"}`, init), options.bindings ?? env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

export async function errorCode(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

/** SQL as the server's superuser on the Worker's database, through the local endpoint. */
export function ownerSql() {
  neonConfig.fetchEndpoint = () => env.LOCAL_SQL_ENDPOINT!;
  return neon(env.TEST_OWNER_DATABASE_URL!);
}

/** A tenant's schema name, from the catalog (never derived from its slug). */
export async function schemaOf(slug: string): Promise<string> {
  const rows = (await ownerSql().query("SELECT schema_name FROM shared.tenants WHERE slug = $1", [slug])) as Array<{
    schema_name: string;
  }>;
  if (!rows[0]) throw new Error(`no tenant ${slug} in the test catalog`);
  return rows[0].schema_name;
}

/** Double-quotes an identifier for SQL. */
export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`;
