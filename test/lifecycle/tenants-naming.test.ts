// Schema names are identities (issue 13, item 1): a tenant's schema is `tenant_<random key>`,
// assigned once and never again, even after the tenant is deleted; the slug is a label that
// `rename` changes; a host taken from one tenant waits out the staleness bound before another
// tenant may have it.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants, schemaOf } from "../support/fleet.ts";
import { STALENESS_BOUND_SECONDS } from "../../scripts/tenants/staleness.ts";

// Each test starts CLI processes; on a loaded machine they take seconds each.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

afterAll(dropTestDatabases);

const KEYED = /^tenant_[a-z2-7]{12}$/;

let databaseUrl: string;
let client: pg.Client;
const run = (...args: string[]) => tenantsCli({ databaseUrl }, ...args);
async function ok(...args: string[]): Promise<string> {
  const r = await run(...args);
  expect(r.code, show(r)).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  databaseUrl = await freshDatabase("naming");
  client = await connectTo(databaseUrl);
  await initWithTenants(client, []);
});

describe("schema names are never reused", () => {
  it("delete and create of the same slug gives a new schema; the registry keeps the old name", async () => {
    const first = JSON.parse(await ok("create", "acme", "--name", "Acme", "--host", "acme.example.com", "--json"));
    expect(first.schema).toMatch(KEYED);
    await client.query(`INSERT INTO "${first.schema}".users (email, hashed_password) VALUES ('old@acme.test', 'x')`);
    await ok("delete", "acme", "--now", "--yes");

    const second = JSON.parse(await ok("create", "acme", "--name", "Another Acme", "--host", "acme-new.example.com", "--json"));
    expect(second.schema).toMatch(KEYED);
    expect(second.schema).not.toBe(first.schema);
    // The new customer's schema has none of the old one's data, and the old schema is gone.
    expect((await client.query(`SELECT count(*)::int AS n FROM "${second.schema}".users`)).rows[0].n).toBe(0);
    expect((await client.query("SELECT to_regnamespace($1) AS r", [first.schema])).rows[0].r).toBeNull();

    const { rows } = await client.query(
      "SELECT schema_name, tenant_id::int AS tenant_id, released_at IS NOT NULL AS released FROM shared.tenant_schemas WHERE schema_name = ANY($1) ORDER BY assigned_at",
      [[first.schema, second.schema]],
    );
    expect(rows).toEqual([
      { schema_name: first.schema, tenant_id: first.id, released: true },
      { schema_name: second.schema, tenant_id: second.id, released: false },
    ]);
  });

  it("the database itself refuses to give a registered name to another tenant", async () => {
    const { rows } = await client.query("SELECT schema_name FROM shared.tenant_schemas WHERE released_at IS NOT NULL LIMIT 1");
    const released = rows[0].schema_name as string;
    // Even bypassing the CLI, a tenant row cannot take a name the registry holds for someone else,
    // and the registry cannot get a second row for it.
    await expect(
      client.query("INSERT INTO shared.tenants (slug, name, schema_name) VALUES ('thief', 'Thief', $1)", [released]),
    ).rejects.toMatchObject({ code: "23503", constraint: "tenants_schema_name_registered_fk" });
    await expect(
      client.query("INSERT INTO shared.tenant_schemas (schema_name, tenant_id) VALUES ($1, 999)", [released]),
    ).rejects.toMatchObject({ code: "23505" });
    // Nor a name outside the strict pattern.
    await expect(
      client.query("INSERT INTO shared.tenant_schemas (schema_name, tenant_id) VALUES ('public', 998)"),
    ).rejects.toMatchObject({ code: "23514", constraint: "tenant_schemas_schema_name_format" });
  });
});

describe("rename", () => {
  it("changes the slug only: same schema, hosts and data; the old slug is free", async () => {
    const before = JSON.parse(await ok("create", "initech", "--name", "Initech", "--host", "initech.example.com", "--host", "www.initech.test", "--json"));
    await client.query(`INSERT INTO "${before.schema}".users (email, hashed_password) VALUES ('a@initech.test', 'x')`);

    expect(await ok("rename", "initech", "initrode")).toBe(
      "Renamed tenant initech to initrode (its schema and hosts are unchanged).\n",
    );
    const after = JSON.parse(await ok("show", "initrode", "--json"));
    expect(after).toMatchObject({ id: before.id, slug: "initrode", name: "Initech", schema: before.schema, hosts: before.hosts });
    expect((await client.query(`SELECT email FROM "${after.schema}".users`)).rows).toEqual([{ email: "a@initech.test" }]);
    expect(await schemaOf(client, "initrode")).toBe(before.schema);
    const gone = await run("show", "initech");
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe("error: no tenant initech: see `npm run tenants -- list`\n");
  });

  it("refuses a taken slug, an invalid one and an unknown tenant, changing nothing", async () => {
    const state = await databaseState(client);
    const cases: Array<[string[], number, string]> = [
      [["rename", "initrode", "acme"], 1, "tenant acme already exists: choose another slug"],
      [["rename", "nope", "other"], 1, "no tenant nope: see `npm run tenants -- list`"],
      [["rename", "initrode", "Bad-Slug"], 1, 'invalid slug "Bad-Slug": use a lowercase letter followed by up to 55 lowercase letters, digits or underscores (e.g. acme or globex_eu)'],
      [["rename", "initrode"], 2, "usage: npm run tenants -- rename <slug> <new-slug>"],
    ];
    for (const [args, code, message] of cases) {
      const r = await run(...args);
      expect(r.code, show(r)).toBe(code);
      expect(r.stderr).toBe(`error: ${message}\n`);
    }
    expect(await databaseState(client)).toEqual(state);
  });
});

describe("a host taken from a tenant waits out the staleness bound before another tenant gets it", () => {
  const QUARANTINE =
    /^error: host (\S+) was removed from (tenant \w+|a deleted tenant) at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ); cached answers may still send its visitors there until (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \((\d+) min from now\): attach it to another tenant after that, or pass --force to attach it now anyway\n$/;

  it("hosts remove then hosts add to another tenant is refused, saying when it is free; the same tenant may take it back", async () => {
    await ok("create", "umbrella", "--name", "Umbrella", "--host", "umbrella.example.com", "--host", "shop.umbrella.test");
    await ok("create", "hooli", "--name", "Hooli", "--host", "hooli.example.com");
    await ok("hosts", "remove", "umbrella", "shop.umbrella.test");
    const state = await databaseState(client);

    const r = await run("hosts", "add", "hooli", "shop.umbrella.test");
    expect(r.code, show(r)).toBe(1);
    const m = QUARANTINE.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    const [, host, from, releasedAt, freeAt, minutes] = m!;
    expect([host, from]).toEqual(["shop.umbrella.test", "tenant umbrella"]);
    expect(Date.parse(freeAt!) - Date.parse(releasedAt!)).toBe(STALENESS_BOUND_SECONDS * 1000);
    expect(Math.abs(Date.parse(releasedAt!) - Date.now())).toBeLessThan(120_000);
    expect(Number(minutes)).toBe(Math.ceil((Date.parse(freeAt!) - Date.now()) / 60_000));
    expect(await databaseState(client)).toEqual(state);

    // create --host is held the same way.
    const create = await run("create", "piedpiper", "--name", "Pied Piper", "--host", "shop.umbrella.test");
    expect(create.code, show(create)).toBe(1);
    expect(create.stderr).toMatch(QUARANTINE);
    expect(await databaseState(client)).toEqual(state);

    // Back to the tenant it came from: fine at once.
    expect(await ok("hosts", "add", "umbrella", "shop.umbrella.test")).toBe("Added host shop.umbrella.test to tenant umbrella.\n");
    expect((await client.query("SELECT count(*)::int AS n FROM shared.released_hosts WHERE host = 'shop.umbrella.test'")).rows[0].n).toBe(0);
  });

  it("a deleted tenant's hosts are held too; --force attaches anyway and says what it risks", async () => {
    await ok("create", "stark", "--name", "Stark", "--host", "stark.example.com");
    await ok("delete", "stark", "--now", "--yes");
    const refused = await run("create", "wayne", "--name", "Wayne", "--host", "stark.example.com");
    expect(refused.code, show(refused)).toBe(1);
    expect(QUARANTINE.exec(refused.stderr)?.[2]).toBe("a deleted tenant");

    const forced = await run("create", "wayne", "--name", "Wayne", "--host", "stark.example.com", "--force", "--json");
    expect(forced.code, show(forced)).toBe(0);
    expect(forced.stderr).toMatch(
      /^warning: --force: host stark\.example\.com was removed from a deleted tenant at \S+Z; until \S+Z cached answers may still send some of its visitors to that tenant\n$/,
    );
    expect(JSON.parse(forced.stdout).hosts).toEqual([{ host: "stark.example.com", primary: true }]);
    expect((await client.query("SELECT count(*)::int AS n FROM shared.released_hosts WHERE host = 'stark.example.com'")).rows[0].n).toBe(0);
  });

  it("once the bound has passed, another tenant takes the host without --force", async () => {
    await ok("hosts", "add", "hooli", "old.hooli.test");
    await ok("hosts", "remove", "hooli", "old.hooli.test");
    expect((await run("hosts", "add", "umbrella", "old.hooli.test")).code).toBe(1);
    // Age the release past the bound (what waiting would do).
    await client.query(
      "UPDATE shared.released_hosts SET released_at = now() - make_interval(secs => $1 + 1) WHERE host = 'old.hooli.test'",
      [STALENESS_BOUND_SECONDS],
    );
    expect(await ok("hosts", "add", "umbrella", "old.hooli.test")).toBe("Added host old.hooli.test to tenant umbrella.\n");
  });
});
