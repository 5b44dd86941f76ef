// Every query the Worker sends for a request names only that request's tenant schema. The local
// endpoint records what it receives (tests only); each request here carries its own tag in the
// connection string, so its statements can be told apart from every other request's.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { clearMemoryCache } from "../../src/tenancy/resolve.ts";
import { adminToken, ownerSql, request } from "./helpers.ts";

// Tenants of their own: other test files count acme's and globex's users.
const TENANTS = ["rec_one", "rec_two", "rec_three"] as const;
const HOSTS: Record<(typeof TENANTS)[number], string> = {
  rec_one: "rec-one.test",
  rec_two: "rec-two.test",
  rec_three: "rec-three.test",
};

async function statementsTagged(tag: string): Promise<string[]> {
  const res = await fetch(`${env.TEST_STATEMENT_LOG_URL}?tag=${encodeURIComponent(tag)}`);
  return res.json<string[]>();
}

function taggedBindings(tag: string) {
  const url = new URL(env.DATABASE_URL!);
  url.searchParams.set("tag", tag);
  return { ...env, DATABASE_URL: url.toString() };
}

// The statement log is the local SQL endpoint's; with the Hyperdrive client (TEST_DB_CLIENT=hyperdrive)
// the Worker's SQL goes over TCP, past the endpoint, so there is nothing to read here.
describe.skipIf(env.HYPERDRIVE)("the SQL a request sends", () => {
  it("names only its own tenant's schema, over a mixed run of several tenants, cold and warm", async () => {
    const schemas = Object.fromEntries(
      ((await ownerSql().query("SELECT slug, schema_name FROM shared.tenants")) as Array<{ slug: string; schema_name: string }>).map((r) => [
        r.slug,
        r.schema_name,
      ]),
    ) as Record<string, string>;
    const allSchemas = Object.values(schemas);
    const run = Date.now().toString(36);

    // Every tenant gets a user first, so the reads below return rows.
    const steps: Array<{ slug: (typeof TENANTS)[number]; method: string; path: string; body?: unknown }> = [];
    for (const slug of TENANTS) steps.push({ slug, method: "POST", path: "/users", body: { email: `rec-${run}@example.com`, password: "long enough" } });
    for (let i = 0; i < 60; i++) {
      const slug = TENANTS[Math.floor(Math.random() * TENANTS.length)]!;
      const kind = i % 5;
      steps.push(
        kind === 0
          ? { slug, method: "GET", path: "/users" }
          : kind === 1
            ? { slug, method: "GET", path: "/items" }
            : kind === 2
              ? { slug, method: "GET", path: "/tenant" }
              : kind === 3
                ? { slug, method: "GET", path: "/users/1" }
                : { slug, method: "POST", path: "/users/1/items", body: { title: `rec ${i}` } },
      );
    }

    // An admin of each tenant (signed up before the recording starts) makes every request.
    const tokens = Object.fromEntries(await Promise.all(TENANTS.map(async (slug) => [slug, await adminToken(HOSTS[slug], slug)] as const)));
    const problems: string[] = [];
    let checked = 0;
    for (const [i, step] of steps.entries()) {
      if (i % 7 === 0) {
        // Cold: the lookup goes to the catalog, and its KV write-back runs in this request too.
        clearMemoryCache();
        await env.TENANT_CACHE.delete(hostCacheKey(HOSTS[step.slug]));
      }
      const tag = `mix-${run}-${i}`;
      const res = await request(HOSTS[step.slug], { token: tokens[step.slug], method: step.method, path: step.path, body: step.body, bindings: taggedBindings(tag) });
      expect(res.status, `${step.method} ${step.path} on ${step.slug}`).toBeLessThan(500);
      const own = schemas[step.slug]!;
      const statements = await statementsTagged(tag);
      if (step.path !== "/tenant" || i % 7 !== 0) expect(statements.length, `${step.method} ${step.path}`).toBeGreaterThan(0);
      for (const statement of statements) {
        checked++;
        for (const other of allSchemas) {
          if (other !== own && new RegExp(`\\b${other}\\b`).test(statement)) {
            problems.push(`${step.method} ${step.path} on ${step.slug} (${own}) sent: ${statement.slice(0, 160)}`);
          }
        }
      }
      if (step.path !== "/tenant") expect(statements.some((s) => s.includes(`"${own}"`)), `${own}: ${statements.join(" | ")}`).toBe(true);
    }
    expect(checked).toBeGreaterThan(steps.length);
    expect(problems).toEqual([]);
  });
});
