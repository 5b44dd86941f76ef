// Concurrent first requests for a host, sent as separate requests through the runtime
// (exports.default.fetch, i.e. SELF), not as app.fetch calls in one execution context: workerd
// forbids a request to wait on I/O another request started, which a shared lookup did.
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { hostCacheKey } from "../../src/tenancy/cache.ts";
import { evictHost, resolveTenant, resolutionStats } from "../../src/tenancy/resolve.ts";
import { catalogDatabase } from "../../src/db/client.ts";
import { WorkerConfigSchema } from "../../src/env.ts";
import { hashPassword } from "../../src/security/password.ts";
import { ident, newClientIp, ownerSql, schemaOf, signInAs } from "./helpers.ts";

type Answer = { status: number; contentType: string | null; body: string };

async function send(host: string, path = "/tenant", init: RequestInit = {}): Promise<Answer> {
  const answer = (async () => {
    const res = await exports.default.fetch(
      new Request(`http://${host}${path}`, { ...init, headers: { "CF-Connecting-IP": newClientIp(), ...init.headers } }),
    );
    return { status: res.status, contentType: res.headers.get("Content-Type"), body: await res.text() };
  })();
  // A request that hangs (waiting on another request's I/O) is a wrong answer, not a test timeout.
  const hung = new Promise<Answer>((r) => setTimeout(() => r({ status: 0, contentType: null, body: "no answer within 8 s" }), 8_000));
  return Promise.race([answer, hung]);
}

function describeAnswers(answers: Answer[]): string {
  return answers.map((a) => `${a.status} ${a.body.slice(0, 120)}`).join("\n");
}

const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

async function addHost(slug: string, host: string): Promise<void> {
  await ownerSql().query(
    "INSERT INTO shared.tenant_hosts (host, tenant_id) SELECT $1, id FROM shared.tenants WHERE slug = $2",
    [host, slug],
  );
}

/** The burst tenant's users, as GET /users lists them: exactly its one seeded user. */
function isBurstUsers(body: string): boolean {
  try {
    return JSON.stringify((JSON.parse(body) as Array<{ email: string }>).map((u) => u.email)) === '["owner@burst.test"]';
  } catch {
    return false;
  }
}

/** The burst tenant's admin (its one user): GET /users needs one. */
let auth: Record<string, string> = {};

describe("concurrent first requests for a host", () => {
  beforeAll(async () => {
    await ownerSql().query(
      `INSERT INTO ${ident(await schemaOf("burst"))}.users (email, hashed_password, role) VALUES ('owner@burst.test', $1, 'admin')
       ON CONFLICT (email) DO UPDATE SET hashed_password = excluded.hashed_password, role = 'admin'`,
      [await hashPassword("burst password")],
    );
    auth = { Authorization: `Bearer ${await signInAs("burst.test", "owner@burst.test", "burst password")}` };
  });

  it("answers every request of 20 bursts of 12 for unknown hosts 403 tenant_not_found, in the JSON shape", async () => {
    const wrong: Answer[] = [];
    for (let burst = 0; burst < 20; burst++) {
      const host = `nobody-${unique()}.test`;
      const answers = await Promise.all(Array.from({ length: 12 }, () => send(host, "/users", { headers: auth })));
      for (const a of answers) {
        const ok = a.status === 403 && /application\/json/.test(a.contentType ?? "") && JSON.parse(a.body).error.code === "tenant_not_found";
        if (!ok) wrong.push(a);
      }
    }
    expect(wrong, describeAnswers(wrong)).toEqual([]);
  });

  it("answers every request of 10 bursts of 12 for new hosts of a real tenant with that tenant", async () => {
    const wrong: Answer[] = [];
    for (let burst = 0; burst < 10; burst++) {
      const host = `b${burst}-${unique()}.burst.test`;
      await addHost("burst", host);
      const answers = await Promise.all(Array.from({ length: 12 }, () => send(host, "/users", { headers: auth })));
      for (const a of answers) {
        const ok = a.status === 200 && isBurstUsers(a.body);
        if (!ok) wrong.push(a);
      }
    }
    expect(wrong, describeAnswers(wrong)).toEqual([]);
  });

  it("answers the others right when the first request is aborted while they wait", async () => {
    const wrong: Answer[] = [];
    for (let round = 0; round < 5; round++) {
      const known = `a${round}-${unique()}.burst.test`;
      await addHost("burst", known);
      for (const [host, expected] of [
        [known, "burst"],
        [`nobody-${unique()}.test`, "tenant_not_found"],
      ] as const) {
        const abort = new AbortController();
        const first = send(host, "/users", { signal: abort.signal, headers: auth }).catch((error: unknown) => ({
          status: -1,
          contentType: null,
          body: String(error),
        }));
        await new Promise((r) => setTimeout(r, 1));
        const others = Array.from({ length: 8 }, () => send(host, "/users", { headers: auth }));
        abort.abort();
        await first;
        for (const a of await Promise.all(others)) {
          const ok =
            expected === "burst"
              ? a.status === 200 && isBurstUsers(a.body)
              : a.status === 403 && JSON.parse(a.body).error.code === expected;
          if (!ok) wrong.push(a);
        }
      }
    }
    expect(wrong, describeAnswers(wrong)).toEqual([]);
  });
});

describe("evicting a host while a lookup of it is in flight", () => {
  it("wins: the lookup answers but writes nothing back to memory or KV", async () => {
    const host = `evict-${unique()}.burst.test`;
    await addHost("burst", host);
    const config = WorkerConfigSchema.parse(env);
    const deps = {
      kv: env.TENANT_CACHE,
      db: catalogDatabase(config),
      ttls: { memorySeconds: 30, negativeMemorySeconds: 10, kvSeconds: 300 },
      waitUntil: (p: Promise<unknown>) => void p,
      allowCatalogLookup: async () => true,
    };
    const lookup = resolveTenant(host, deps); // in flight: KV read, then the catalog
    await evictHost(host, env.TENANT_CACHE);
    const answer = await lookup;
    expect(answer.kind).toBe("tenant");
    await new Promise((r) => setTimeout(r, 200));
    expect(await env.TENANT_CACHE.get(hostCacheKey(host))).toBeNull();
    const before = resolutionStats.catalogQueries;
    expect((await resolveTenant(host, deps)).kind).toBe("tenant");
    expect(resolutionStats.catalogQueries).toBe(before + 1 + 0); // memory held nothing: asked again
  });
});
