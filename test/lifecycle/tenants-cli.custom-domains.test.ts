// Custom domains (issue 11, item 4): `hosts add <slug> <host> --custom` registers the host with
// Cloudflare for SaaS through the official `cloudflare` SDK and records its id and statuses in the
// catalog; `hosts status` refreshes them from the API and prints them.
//
// Cloudflare's API cannot be reached from the test machine, so this talks to a FAKE: a local HTTP
// server on a loopback port standing in for api.cloudflare.com (CLOUDFLARE_API_BASE_URL points the
// CLI's SDK client at it). Its answers are typed with the SDK's own response types, which are the
// contract: the "Custom Hostnames" endpoints (POST/GET/DELETE /zones/{zone_id}/custom_hostnames[/{id}])
// wrapped in the API's envelope { success, errors, messages, result }. The fake does not verify
// anything by itself: a test flips a hostname to "active", as Cloudflare does once the customer's
// CNAME and certificate validation are in place.
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type {
  CustomHostnameCreateParams,
  CustomHostnameCreateResponse,
  CustomHostnameGetResponse,
} from "cloudflare/resources/custom-hostnames/custom-hostnames";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, onCitus, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";

// Citus: every CLI run does its DDL on three nodes.
vi.setConfig({ testTimeout: onCitus ? 360_000 : 120_000, hookTimeout: 120_000 });

const ZONE = "0123456789abcdef0123456789abcdef";
const TOKEN = "test-token-not-a-secret";

interface Seen {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}
const seen: Seen[] = [];
/** The fake's custom hostnames, by id. */
const hostnames = new Map<string, CustomHostnameGetResponse>();
/** When set, the next request is answered with this instead. */
let failure: { status: number; code: number; message: string } | undefined;
let fake: Server;
let apiBase: string;
let nextId = 1;

type Envelope<T> = { success: boolean; errors: Array<{ code: number; message: string }>; messages: unknown[]; result: T | null };
const ok = <T>(result: T): Envelope<T> => ({ success: true, errors: [], messages: [], result });
const refused = (code: number, message: string): Envelope<never> => ({ success: false, errors: [{ code, message }], messages: [], result: null });

async function readBody(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}

function route(method: string, path: string, body: unknown): { status: number; body: Envelope<unknown> } {
  const m = /^\/client\/v4\/zones\/([0-9a-f]{32})\/custom_hostnames(?:\/([^/]+))?$/.exec(path);
  if (!m) return { status: 404, body: refused(7003, "Could not route to " + path) };
  const id = m[2];
  if (method === "POST" && !id) {
    const params = body as Omit<CustomHostnameCreateParams, "zone_id">;
    if ([...hostnames.values()].some((h) => h.hostname === params.hostname)) {
      return { status: 409, body: refused(1406, "Duplicate custom hostname found.") };
    }
    const created: CustomHostnameCreateResponse = {
      id: `0d89c70d-ad9f-4843-b99f-6cc0252067${String(nextId++).padStart(2, "0")}`,
      hostname: params.hostname,
      created_at: new Date().toISOString(),
      status: "pending",
      ownership_verification: { name: `_cf-custom-hostname.${params.hostname}`, type: "txt", value: "5cc07c04-ea62-4a5a-95f0-419334a875a4" },
      ownership_verification_http: {
        http_url: `http://${params.hostname}/.well-known/cf-custom-hostname-challenge/0d89c70d`,
        http_body: "5cc07c04-ea62-4a5a-95f0-419334a875a4",
      },
      ssl: {
        id: "0d89c70d-ad9f-4843-b99f-6cc0252067ce",
        method: params.ssl?.method,
        type: params.ssl?.type,
        status: "pending_validation",
        validation_records: [{ txt_name: `_acme-challenge.${params.hostname}`, txt_value: "810b7d5f01154524b961ba0cd578acc2", status: "pending" }],
      },
      verification_errors: ["custom hostname does not CNAME to this zone."],
    };
    hostnames.set(created.id, created);
    return { status: 201, body: ok(created) };
  }
  const found = id ? hostnames.get(id) : undefined;
  if (!found) return { status: 404, body: refused(1436, "The custom hostname was not found.") };
  if (method === "GET") return { status: 200, body: ok(found) };
  if (method === "DELETE") {
    hostnames.delete(found.id);
    return { status: 200, body: ok({ id: found.id }) };
  }
  return { status: 405, body: refused(10405, "Method not allowed") };
}

/** What Cloudflare does once the customer's CNAME and the certificate's validation are in place. */
function activate(hostname: string): void {
  const h = [...hostnames.values()].find((x) => x.hostname === hostname)!;
  h.status = "active";
  h.ssl = { ...h.ssl, status: "active", validation_records: [] };
  delete h.verification_errors;
}

let databaseUrl: string;
let client: pg.Client;

beforeAll(async () => {
  fake = createServer(async (req, res) => {
    const text = await readBody(req);
    const body = text ? JSON.parse(text) : undefined;
    seen.push({ method: req.method!, path: req.url!, authorization: req.headers.authorization, body });
    let answer: { status: number; body: Envelope<unknown> };
    if (req.headers.authorization !== `Bearer ${TOKEN}`) answer = { status: 403, body: refused(10000, "Authentication error") };
    else if (failure) {
      answer = { status: failure.status, body: refused(failure.code, failure.message) };
      failure = undefined;
    } else answer = route(req.method!, req.url!, body);
    res.writeHead(answer.status, { "content-type": "application/json" }).end(JSON.stringify(answer.body));
  });
  await new Promise<void>((r) => fake.listen(0, "127.0.0.1", r));
  apiBase = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/client/v4`;
  databaseUrl = await freshDatabase("custom_domains");
  client = await connectTo(databaseUrl);
  await initWithTenants(client, ["acme", "globex"]);
});
afterAll(async () => {
  await new Promise((r) => fake.close(r));
  await dropTestDatabases();
});

const saasEnv = (extra: Record<string, string> = {}) => ({
  CLOUDFLARE_API_TOKEN: TOKEN,
  CLOUDFLARE_ZONE_ID: ZONE,
  CLOUDFLARE_API_BASE_URL: apiBase,
  ...extra,
});

async function customColumns(host: string) {
  const { rows } = await client.query(
    `SELECT t.slug, h.custom_hostname_id AS id, h.custom_zone_id AS zone, h.custom_status AS status,
            h.custom_ssl_status AS ssl, h.custom_verification AS verification, h.custom_checked_at AS checked
     FROM shared.tenant_hosts h JOIN shared.tenants t ON t.id = h.tenant_id WHERE h.host = $1`,
    [host],
  );
  return rows[0];
}

describe("bad input: one line, nothing changed", () => {
  it("without a token or a zone id: exit 2 before connecting, and no request to the API", async () => {
    const elsewhere = "postgresql://u:p@127.0.0.1:9/none";
    const noToken = await tenantsCli({ databaseUrl: elsewhere, env: saasEnv({ CLOUDFLARE_API_TOKEN: "" }) }, "hosts", "add", "acme", "shop.acme-customer.test", "--custom");
    expect(noToken.code, show(noToken)).toBe(2);
    expect(noToken.stderr).toBe(
      'error: custom hostnames are managed through Cloudflare\'s API and need a token with "SSL and Certificates Edit" on the SaaS zone: set CLOUDFLARE_API_TOKEN\n',
    );
    const noZone = await tenantsCli({ databaseUrl: elsewhere, env: saasEnv({ CLOUDFLARE_ZONE_ID: "" }) }, "hosts", "add", "acme", "shop.acme-customer.test", "--custom");
    expect(noZone.code, show(noZone)).toBe(2);
    expect(noZone.stderr).toBe(
      "error: --custom needs the id of your Cloudflare for SaaS zone (the zone with the fallback origin): set CLOUDFLARE_ZONE_ID or pass --zone-id\n",
    );
    const badZone = await tenantsCli({ databaseUrl: elsewhere, env: saasEnv() }, "hosts", "add", "acme", "shop.acme-customer.test", "--custom", "--zone-id", "example.com");
    expect(badZone.code, show(badZone)).toBe(2);
    expect(badZone.stderr).toContain('"example.com" is not a Cloudflare zone id');
    const statusNoToken = await tenantsCli({ databaseUrl: elsewhere, env: saasEnv({ CLOUDFLARE_API_TOKEN: "" }) }, "hosts", "status");
    expect(statusNoToken.code, show(statusNoToken)).toBe(2);
    expect(statusNoToken.stderr).toContain("set CLOUDFLARE_API_TOKEN");
    const removeCustom = await tenantsCli({ databaseUrl: elsewhere, env: saasEnv() }, "hosts", "remove", "acme", "acme.example.com", "--custom");
    expect(removeCustom.code, show(removeCustom)).toBe(2);
    expect(removeCustom.stderr).toBe("error: --custom goes with hosts add\n");
    expect(seen).toEqual([]);
  });

  it("an unknown tenant or a host another tenant has: refused before asking Cloudflare", async () => {
    const before = await databaseState(client);
    const unknown = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "add", "nope", "shop.nope-customer.test", "--custom");
    expect(unknown.code, show(unknown)).toBe(1);
    expect(unknown.stderr).toBe("error: no tenant nope: see `npm run tenants -- list`\n");
    const taken = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "add", "globex", "acme.example.com", "--custom");
    expect(taken.code, show(taken)).toBe(1);
    expect(taken.stderr).toBe("error: host acme.example.com already belongs to tenant acme\n");
    const statusUnknown = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "status", "nope");
    expect(statusUnknown.code, show(statusUnknown)).toBe(1);
    expect(statusUnknown.stderr).toBe("error: no tenant nope: see `npm run tenants -- list`\n");
    expect(seen).toEqual([]);
    expect(await databaseState(client)).toEqual(before);
  });

  it("when Cloudflare refuses (a duplicate, a bad token), the host is not added", async () => {
    // Someone registered the hostname in the zone by hand already.
    route("POST", `/client/v4/zones/${ZONE}/custom_hostnames`, { hostname: "taken.customer.test" });
    const before = await databaseState(client);
    const duplicate = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "add", "acme", "Taken.Customer.test", "--custom");
    expect(duplicate.code, show(duplicate)).toBe(1);
    expect(duplicate.stderr).toBe(
      "error: Cloudflare did not register taken.customer.test (Cloudflare's API answered 409: Duplicate custom hostname found. (1406)): nothing was changed\n",
    );
    const badToken = await tenantsCli({ databaseUrl, env: saasEnv({ CLOUDFLARE_API_TOKEN: "wrong" }) }, "hosts", "add", "acme", "shop.acme-customer.test", "--custom");
    expect(badToken.code, show(badToken)).toBe(1);
    expect(badToken.stderr).toBe(
      "error: Cloudflare did not register shop.acme-customer.test (Cloudflare's API answered 403: Authentication error (10000)): nothing was changed\n",
    );
    expect(await databaseState(client)).toEqual(before);
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([
      `POST /client/v4/zones/${ZONE}/custom_hostnames`,
      `POST /client/v4/zones/${ZONE}/custom_hostnames`,
    ]);
    seen.length = 0;
  });

  it("an unreachable API: one line naming the address", async () => {
    const before = await databaseState(client);
    const r = await tenantsCli(
      { databaseUrl, env: saasEnv({ CLOUDFLARE_API_BASE_URL: "http://127.0.0.1:9/client/v4" }) },
      "hosts", "add", "acme", "shop.acme-customer.test", "--custom",
    );
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/^error: Cloudflare did not register shop\.acme-customer\.test \(cannot reach http:\/\/127\.0\.0\.1:9\/client\/v4: .+\): nothing was changed\n$/);
    expect(r.stderr.split("\n")).toHaveLength(2);
    expect(await databaseState(client)).toEqual(before);
  });
});

describe("a customer's domain, from registration to active", () => {
  const HOST = "shop.acme-customer.test";

  it("hosts add --custom registers it with the token and zone, and records it as pending", async () => {
    seen.length = 0;
    const r = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "add", "acme", HOST, "--custom");
    expect(r.code, show(r)).toBe(0);
    const row = await customColumns(HOST);
    expect(seen).toEqual([
      {
        method: "POST",
        path: `/client/v4/zones/${ZONE}/custom_hostnames`,
        authorization: `Bearer ${TOKEN}`,
        body: { hostname: HOST, ssl: { method: "http", type: "dv" } },
      },
    ]);
    expect(row).toMatchObject({ slug: "acme", id: [...hostnames.values()].find((h) => h.hostname === HOST)!.id, zone: ZONE, status: "pending", ssl: "pending_validation" });
    expect(row.verification).toEqual({
      ownership: { name: `_cf-custom-hostname.${HOST}`, type: "txt", value: "5cc07c04-ea62-4a5a-95f0-419334a875a4" },
      certificate: [{ txt_name: `_acme-challenge.${HOST}`, txt_value: "810b7d5f01154524b961ba0cd578acc2", status: "pending" }],
      errors: ["custom hostname does not CNAME to this zone."],
    });
    expect(r.stdout).toBe(
      `Added custom host ${HOST} to tenant acme: Cloudflare custom hostname ${row.id}, hostname pending, certificate pending_validation.\n` +
        `The Worker serves it once Cloudflare reports it active: the customer points ${HOST} at your SaaS zone (CNAME, see docs/custom-domains.md); ` +
        "then run `npm run tenants -- hosts status acme`.\n",
    );
    // A plain `show` lists it among the tenant's hosts.
    const shown = await tenantsCli({ databaseUrl }, "show", "acme", "--json");
    expect(JSON.parse(shown.stdout).hosts.map((h: { host: string }) => h.host)).toEqual(["acme.example.com", HOST]);
  });

  it("the same host again is refused before asking Cloudflare", async () => {
    seen.length = 0;
    const r = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "add", "globex", HOST, "--custom");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: host ${HOST} already belongs to tenant acme\n`);
    expect(seen).toEqual([]);
  });

  it("hosts status asks Cloudflare and prints what the customer still has to publish", async () => {
    seen.length = 0;
    const checkedBefore = (await customColumns(HOST)).checked as Date;
    const r = await tenantsCli({ databaseUrl, env: saasEnv({ CLOUDFLARE_ZONE_ID: "" }) }, "hosts", "status", "acme");
    expect(r.code, show(r)).toBe(0);
    const id = (await customColumns(HOST)).id;
    expect(seen.map((s) => `${s.method} ${s.path}`)).toEqual([`GET /client/v4/zones/${ZONE}/custom_hostnames/${id}`]);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^HOST\s+TENANT\s+HOSTNAME\s+CERTIFICATE\s+SERVED\s+CHECKED$/);
    expect(lines[1]).toMatch(new RegExp(`^${HOST.replace(/\./g, "\\.")}\\s+acme\\s+pending\\s+pending_validation\\s+no\\s+\\d{4}-\\d\\d-\\d\\dT`));
    expect(lines.slice(2)).toEqual([
      `${HOST}: ownership: TXT record _cf-custom-hostname.${HOST} = 5cc07c04-ea62-4a5a-95f0-419334a875a4 (or the CNAME in place)`,
      `${HOST}: certificate: TXT record _acme-challenge.${HOST} = 810b7d5f01154524b961ba0cd578acc2`,
      `${HOST}: error: custom hostname does not CNAME to this zone.`,
    ]);
    expect(((await customColumns(HOST)).checked as Date).getTime()).toBeGreaterThan(checkedBefore.getTime());
  });

  it("an API error during hosts status updates nothing", async () => {
    activate(HOST);
    failure = { status: 403, code: 10000, message: "Authentication error" };
    const before = await databaseState(client);
    const r = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "status");
    expect(r.code, show(r)).toBe(1);
    const id = (await customColumns(HOST)).id;
    expect(r.stderr).toBe(
      `error: cannot refresh ${HOST} (custom hostname ${id}): Cloudflare's API answered 403: Authentication error (10000); nothing was updated\n`,
    );
    expect(await databaseState(client)).toEqual(before);
    expect((await customColumns(HOST)).status).toBe("pending");
  });

  it("once Cloudflare reports it active, hosts status records it and it is served", async () => {
    const r = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "status", "--json");
    expect(r.code, show(r)).toBe(0);
    const states = JSON.parse(r.stdout);
    expect(states).toEqual([
      expect.objectContaining({ host: HOST, slug: "acme", status: "active", sslStatus: "active", verification: { ownership: expect.any(Object) } }),
    ]);
    expect(await customColumns(HOST)).toMatchObject({ status: "active", ssl: "active" });
    expect((await customColumns(HOST)).verification.errors).toBeUndefined();
    const text = await tenantsCli({ databaseUrl, env: saasEnv() }, "hosts", "status");
    expect(text.stdout).toMatch(new RegExp(`^${HOST.replace(/\./g, "\\.")}\\s+acme\\s+active\\s+active\\s+yes\\s`, "m"));
  });

  it("hosts remove detaches it, and says it is still registered at Cloudflare", async () => {
    const id = (await customColumns(HOST)).id;
    const r = await tenantsCli({ databaseUrl }, "hosts", "remove", "acme", HOST);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(`Removed host ${HOST} from tenant acme.\n`);
    expect(r.stderr).toBe(
      `warning: ${HOST} is still registered with Cloudflare for SaaS (custom hostname ${id} in zone ${ZONE}): ` +
        "delete it on the zone's Custom Hostnames page (docs/custom-domains.md)\n",
    );
    expect(await customColumns(HOST)).toBeUndefined();
  });
});
