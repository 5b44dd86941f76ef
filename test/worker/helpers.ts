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
  /** A bearer token (from `signUp`) sent as `Authorization: Bearer <token>`. */
  token?: string;
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
  const auth: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  const init: RequestInit = { method: options.method ?? "GET", headers: { "CF-Connecting-IP": newClientIp(), ...auth, ...options.headers } };
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

/**
 * The test bindings with a database that cannot be reached, whichever client the Worker uses: the
 * SQL endpoint, and under TEST_DB_CLIENT=hyperdrive the Hyperdrive binding, point at a closed port.
 */
export function unreachableDatabase(bindings: object = env): object {
  return {
    ...bindings,
    LOCAL_SQL_ENDPOINT: "http://127.0.0.1:9/sql",
    ...(env.HYPERDRIVE ? { HYPERDRIVE: { connectionString: "postgresql://nobody:nothing@127.0.0.1:9/nowhere?sslmode=disable" } } : {}),
  };
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

/**
 * A new user of the tenant at `host` (signed up through POST /users; made an admin with SQL, as an
 * operator would, when asked), and a bearer token for it from POST /auth/token.
 */
export async function signUp(host: string, options: { admin?: boolean; slug?: string } = {}): Promise<{ id: number; email: string; token: string }> {
  const email = `user-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = "correct horse battery";
  const created = await request(host, { path: "/users", method: "POST", body: { email, password } });
  if (created.status !== 201) throw new Error(`sign-up at ${host} answered ${created.status}: ${await created.text()}`);
  const { id } = await created.json<{ id: number }>();
  if (options.admin) {
    const schema = await schemaOf(options.slug ?? host.split(".")[0]!);
    await ownerSql().query(`UPDATE ${ident(schema)}.users SET role = 'admin' WHERE id = $1`, [id]);
  }
  const res = await request(host, { path: "/auth/token", method: "POST", body: { email, password } });
  if (res.status !== 200) throw new Error(`sign-in at ${host} answered ${res.status}: ${await res.text()}`);
  return { id, email, token: (await res.json<{ token: string }>()).token };
}

/** A bearer token for an existing user (made an admin with SQL first when asked). */
export async function signInAs(host: string, email: string, password: string, options: { admin?: boolean; slug?: string } = {}): Promise<string> {
  if (options.admin) {
    const schema = await schemaOf(options.slug ?? host.split(".")[0]!);
    await ownerSql().query(`UPDATE ${ident(schema)}.users SET role = 'admin' WHERE email = $1`, [email]);
  }
  const res = await request(host, { path: "/auth/token", method: "POST", body: { email, password } });
  if (res.status !== 200) throw new Error(`sign-in at ${host} answered ${res.status}: ${await res.text()}`);
  return (await res.json<{ token: string }>()).token;
}

const adminTokens = new Map<string, Promise<string>>();
/** One admin's bearer token per tenant host, for tests about something other than sign-in. */
export function adminToken(host: string, slug?: string): Promise<string> {
  let token = adminTokens.get(host);
  if (!token) {
    token = signUp(host, { admin: true, slug }).then((u) => u.token);
    adminTokens.set(host, token);
  }
  return token;
}
