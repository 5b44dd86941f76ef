// `npm run tenants` doing its job: create, list (--json), show, hosts add/remove (the primary
// moves), suspend/resume, delete --yes (schema, catalog rows and ledger rows gone). Schema names
// are assigned by create (tenant_<random key>): the tests read them from the CLI's output.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { ledger, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, onCitus, show, tenantsCli } from "../support/database.ts";
import { checkoutTags } from "../support/migrations.ts";

// Each test starts CLI processes; on a loaded machine they take seconds each.
// Citus: every CLI run does its DDL on three nodes.
vi.setConfig({ testTimeout: onCitus ? 360_000 : 120_000, hookTimeout: 120_000 });

afterAll(dropTestDatabases);

interface Listed {
  id: number;
  slug: string;
  name: string;
  schema: string;
  status: string;
  rateLimitTier: string;
  hosts: Array<{ host: string; primary: boolean }>;
  createdAt: string;
  updatedAt: string;
}

const SCHEMA = /^tenant_[a-z2-7]{12}$/;
const schemaOf = new Map<string, string>();
let databaseUrl: string;
let client: pg.Client;
const cli = async (...args: string[]) => {
  const r = await tenantsCli({ databaseUrl }, ...args);
  expect(r.code, show(r)).toBe(0);
  expect(r.stderr).toBe("");
  return r.stdout;
};
const showJson = async (slug: string) => JSON.parse(await cli("show", slug, "--json")) as Listed;

beforeAll(async () => {
  databaseUrl = await freshDatabase("tcli_happy");
  client = await connectTo(databaseUrl);
  await cli("init");
});

describe("the tenant lifecycle through the CLI", () => {
  it("list on an empty catalog says how to start", async () => {
    expect(await cli("list")).toBe("No tenants yet: create one with `npm run tenants -- create <slug> --name <name> --host <host>`.\n");
    expect(JSON.parse(await cli("list", "--json"))).toEqual([]);
  });

  it("create prints the tenant; the first host is primary; hosts are normalized and deduplicated", async () => {
    const out = await cli("create", "acme", "--name", "Acme Inc.", "--host", "ACME.example.com.", "--host", "www.acme.test", "--host", "acme.example.com");
    expect(out).toMatch(
      /^Created tenant acme \(created a new schema\)\.\nslug: {4}acme\nname: {4}Acme Inc\.\nschema: {2}tenant_[a-z2-7]{12}\nstatus: {2}active\ntier: {4}standard\nhosts: {3}acme\.example\.com \(primary\), www\.acme\.test\ncreated: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\nupdated: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/,
    );
    schemaOf.set("acme", /^schema: {2}(\S+)$/m.exec(out)![1]!);
    const globex = JSON.parse(await cli("create", "globex", "--name", "Globex", "--host", "globex.example.com", "--json")) as Listed;
    expect(globex).toMatchObject({ slug: "globex", name: "Globex", status: "active" });
    expect(globex.schema).toMatch(SCHEMA);
    expect(globex.schema).not.toBe(schemaOf.get("acme"));
    schemaOf.set("globex", globex.schema);
    expect(globex.hosts).toEqual([{ host: "globex.example.com", primary: true }]);
    expect(await userSchemas(client)).toEqual(["public", "shared", ...[schemaOf.get("acme")!, globex.schema].sort()]);
    // The catalog and the registry of assigned names agree.
    const { rows } = await client.query("SELECT t.slug, s.schema_name FROM shared.tenants t JOIN shared.tenant_schemas s USING (schema_name) ORDER BY 1");
    expect(rows).toEqual([
      { slug: "acme", schema_name: schemaOf.get("acme") },
      { slug: "globex", schema_name: globex.schema },
    ]);
  });

  it("list and list --json show every tenant with its schema and hosts", async () => {
    const [acme, globex] = [schemaOf.get("acme")!, schemaOf.get("globex")!];
    expect(await cli("list")).toBe(
      [
        "SLUG    STATUS  SCHEMA               NAME       HOSTS",
        `acme    active  ${acme}  Acme Inc.  acme.example.com, www.acme.test`,
        `globex  active  ${globex}  Globex     globex.example.com`,
        "",
      ].join("\n"),
    );
    const listed = JSON.parse(await cli("list", "--json")) as Listed[];
    expect(listed.map((t) => [t.slug, t.name, t.schema, t.status, t.hosts])).toEqual([
      ["acme", "Acme Inc.", acme, "active", [{ host: "acme.example.com", primary: true }, { host: "www.acme.test", primary: false }]],
      ["globex", "Globex", globex, "active", [{ host: "globex.example.com", primary: true }]],
    ]);
    for (const t of listed) expect(t.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it("show prints one tenant", async () => {
    const out = await cli("show", "globex");
    expect(out).toContain(`slug:    globex\nname:    Globex\nschema:  ${schemaOf.get("globex")}\nstatus:  active\ntier:    standard\nhosts:   globex.example.com (primary)\n`);
  });

  it("hosts add and remove; removing the primary makes the first remaining host primary", async () => {
    expect(await cli("hosts", "add", "globex", "Globex.Localhost")).toBe("Added host globex.localhost to tenant globex.\n");
    expect(await cli("hosts", "add", "globex", "api.globex.test")).toBe("Added host api.globex.test to tenant globex.\n");
    expect((await showJson("globex")).hosts).toEqual([
      { host: "globex.example.com", primary: true },
      { host: "api.globex.test", primary: false },
      { host: "globex.localhost", primary: false },
    ]);
    // Removing a host that is not primary keeps the primary.
    expect(await cli("hosts", "remove", "globex", "globex.localhost")).toBe("Removed host globex.localhost from tenant globex.\n");
    expect((await showJson("globex")).hosts).toEqual([
      { host: "globex.example.com", primary: true },
      { host: "api.globex.test", primary: false },
    ]);
    // Removing the primary moves it.
    expect(await cli("hosts", "remove", "globex", "GLOBEX.example.com")).toBe("Removed host globex.example.com from tenant globex.\n");
    expect((await showJson("globex")).hosts).toEqual([{ host: "api.globex.test", primary: true }]);
    const { rows } = await client.query("SELECT host, is_primary FROM shared.tenant_hosts WHERE host LIKE '%globex%' ORDER BY host");
    expect(rows).toEqual([{ host: "api.globex.test", is_primary: true }]);
    // A removed host can go back to the tenant it came from at once (another tenant must wait: see
    // tenants-naming.test.ts).
    expect(await cli("hosts", "add", "globex", "globex.localhost")).toBe("Added host globex.localhost to tenant globex.\n");
    expect(await cli("hosts", "remove", "globex", "globex.localhost")).toBe("Removed host globex.localhost from tenant globex.\n");
  }, 120_000); // ten CLI processes: slow on a loaded machine

  it("suspend and resume change the status and updated_at", async () => {
    const before = await showJson("acme");
    await new Promise((r) => setTimeout(r, 1_100)); // updatedAt has whole seconds
    expect(await cli("suspend", "acme")).toBe("Tenant acme is now suspended.\n");
    const suspended = await showJson("acme");
    expect(suspended.status).toBe("suspended");
    expect(suspended.updatedAt > before.updatedAt).toBe(true);
    expect(suspended.createdAt).toBe(before.createdAt);
    expect(await cli("list")).toContain(`acme    suspended  ${schemaOf.get("acme")}  Acme Inc.`);
    expect(await cli("resume", "acme")).toBe("Tenant acme is now active.\n");
    expect((await showJson("acme")).status).toBe("active");
    // The other tenant was not touched.
    expect((await showJson("globex")).status).toBe("active");
  }, 120_000);

  it("tier moves a tenant to another request-rate tier; show prints it; a bad tier changes nothing", async () => {
    expect((await showJson("globex")).rateLimitTier).toBe("standard");
    expect(await cli("tier", "globex", "high")).toBe("Tenant globex is now on the high request-rate tier.\n");
    expect((await showJson("globex")).rateLimitTier).toBe("high");
    expect(await cli("show", "globex")).toContain("tier:    high");
    const again = await tenantsCli({ databaseUrl }, "tier", "globex", "high");
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("tenant globex is already on the high tier");
    const bad = await tenantsCli({ databaseUrl }, "tier", "globex", "gold");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown rate limit tier "gold": use standard or high');
    expect((await showJson("globex")).rateLimitTier).toBe("high");
    expect((await showJson("acme")).rateLimitTier).toBe("standard");
  }, 120_000);

  it("delete --now --yes drops the schema, the catalog and host rows and the ledger rows; the slug is free again, the schema name is not", async () => {
    const [acme, globex] = [schemaOf.get("acme")!, schemaOf.get("globex")!];
    const { rows: [{ id }] } = await client.query("SELECT id::int AS id FROM shared.tenants WHERE slug = 'globex'");
    await client.query(`CREATE TABLE "${globex}".extra (id int)`); // data of any shape goes with it
    expect(await cli("delete", "globex", "--now", "--yes")).toBe(`Deleted tenant globex now and dropped schema ${globex}.\n`);
    expect(await userSchemas(client)).toEqual(["public", "shared", acme]);
    expect((await client.query("SELECT 1 FROM shared.tenants WHERE slug = 'globex'")).rowCount).toBe(0);
    expect((await client.query("SELECT 1 FROM shared.tenant_hosts WHERE tenant_id = $1", [id])).rowCount).toBe(0);
    expect((await ledger(client)).filter((r) => r.schema_name === globex)).toEqual([]);
    expect((await ledger(client)).filter((r) => r.schema_name === acme).map((r) => r.migration)).toEqual(checkoutTags("tenant"));
    expect(JSON.parse(await cli("list", "--json")).map((t: Listed) => t.slug)).toEqual(["acme"]);

    const again = JSON.parse(await cli("create", "globex", "--name", "Globex 2", "--host", "globex2.example.com", "--json")) as Listed;
    expect(again.id).not.toBe(id);
    expect(again.schema).toMatch(SCHEMA);
    expect(again.schema).not.toBe(globex);
    expect(again.hosts).toEqual([{ host: "globex2.example.com", primary: true }]);
    expect((await client.query(`SELECT * FROM "${again.schema}".items`)).rowCount).toBe(0);
    expect((await client.query("SELECT to_regnamespace($1) AS r", [globex])).rows[0].r).toBeNull();
  });

  it("a 56-character slug is fine: the schema name does not depend on it", async () => {
    const slug = `s${"x".repeat(55)}`;
    const label = "h".repeat(63);
    const t = JSON.parse(await cli("create", slug, "--name", "Long", "--host", `${label}.example.com`, "--json")) as Listed;
    expect(t.schema).toMatch(SCHEMA);
    const { rows } = await client.query("SELECT nspname FROM pg_namespace WHERE nspname = $1", [t.schema]);
    expect(rows).toEqual([{ nspname: t.schema }]);
    expect(await cli("delete", slug, "--now", "--yes")).toBe(`Deleted tenant ${slug} now and dropped schema ${t.schema}.\n`);
  });
});
