// Deletion that can be undone (issue 9, part 2): `delete` suspends the tenant and keeps its schema,
// data and hosts for a retention period; `restore-deleted` brings it back unchanged; `purge-deleted`
// drops only the tenants whose retention has passed. Time is passed honestly: a retention of 0s is
// due at once, one of 1h is not.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { ledger } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, onCitus, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { checkoutTags } from "../support/migrations.ts";

// Citus: every CLI run does its DDL on three nodes.
vi.setConfig({ testTimeout: onCitus ? 360_000 : 120_000, hookTimeout: 120_000 });
afterAll(dropTestDatabases);

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

let databaseUrl: string;
let client: pg.Client;
let schemas: Record<string, string>;
const run = (...args: string[]) => tenantsCli({ databaseUrl }, ...args);
async function ok(...args: string[]): Promise<string> {
  const r = await run(...args);
  expect(r.code, show(r)).toBe(0);
  return r.stdout;
}
async function refused(args: string[], message: string): Promise<void> {
  const r = await run(...args);
  expect(r.code, show(r)).toBe(1);
  expect(r.stderr).toBe(`error: ${message}\n`);
}
const showJson = async (slug: string) => JSON.parse(await ok("show", slug, "--json"));

/** Everything a tenant's data is: every row of its tables, in order. */
async function dataOf(schema: string) {
  const users = await client.query(`SELECT * FROM "${schema}".users ORDER BY id`);
  const items = await client.query(`SELECT * FROM "${schema}".items ORDER BY id`);
  const seq = await client.query(`SELECT last_value FROM "${schema}".users_id_seq`);
  return { users: users.rows, items: items.rows, seq: seq.rows };
}

async function seed(schema: string, n: number): Promise<void> {
  await client.query(
    `INSERT INTO "${schema}".users (email, full_name, hashed_password, role)
     SELECT 'u' || i || '@example.test', CASE WHEN i % 2 = 0 THEN 'Zoë ' || i END, 'h', CASE WHEN i = 1 THEN 'admin' ELSE 'member' END::"${schema}".user_role
     FROM generate_series(1, $1) i`,
    [n],
  );
  await client.query(`INSERT INTO "${schema}".items (title, status, owner_id) SELECT 'item ' || id, 'published', id FROM "${schema}".users`);
}

beforeAll(async () => {
  databaseUrl = await freshDatabase("retention");
  client = await connectTo(databaseUrl);
  schemas = await initWithTenants(client, ["acme", "globex", "initech", "umbrella", "hooli"]);
  for (const schema of Object.values(schemas)) await seed(schema, 25);
});

describe("delete keeps the tenant for the retention period", () => {
  it("delete suspends the tenant and schedules its purge; list and show say when; its data and hosts stay", async () => {
    const before = await dataOf(schemas.acme!);
    const out = await ok("delete", "acme", "--retain", "3d");
    const shown = await showJson("acme");
    expect(shown.status).toBe("suspended");
    expect(shown.deleted.deletedAt).toMatch(ISO);
    expect(shown.deleted.purgeAfter).toMatch(ISO);
    expect(Date.parse(shown.deleted.purgeAfter) - Date.parse(shown.deleted.deletedAt)).toBe(3 * 86_400_000);
    expect(out).toBe(
      `Deleted tenant acme: it is suspended (its hosts answer 403 tenant_suspended); its schema ${schemas.acme}, data and hosts are kept until ${shown.deleted.purgeAfter}.\n` +
        "Undo with `npm run tenants -- restore-deleted acme` before then; `npm run tenants -- purge-deleted` drops it after.\n",
    );
    // What the Worker reads for the host: the tenant, suspended.
    const { rows } = await client.query(
      "SELECT t.status::text AS status FROM shared.tenant_hosts h JOIN shared.tenants t ON t.id = h.tenant_id WHERE h.host = 'acme.example.com'",
    );
    expect(rows).toEqual([{ status: "suspended" }]);
    expect(shown.hosts).toEqual([{ host: "acme.example.com", primary: true }]);
    expect(await dataOf(schemas.acme!)).toEqual(before);

    const listed = JSON.parse(await ok("list", "--json"));
    expect(listed.find((t: { slug: string }) => t.slug === "acme").deleted).toEqual(shown.deleted);
    expect(listed.find((t: { slug: string }) => t.slug === "globex").deleted).toBeNull();
    const table = await ok("list");
    expect(table.split("\n")[0]).toMatch(/^SLUG\s+STATUS\s+SCHEMA\s+NAME\s+HOSTS\s+PURGE AFTER$/);
    expect(table).toMatch(new RegExp(`^acme\\s+deleted\\s+${schemas.acme}\\s+acme Inc\\.\\s+acme\\.example\\.com\\s+${shown.deleted.purgeAfter}$`, "m"));
    expect(await ok("show", "acme")).toContain(`status:  deleted (suspended; purged after ${shown.deleted.purgeAfter})\n`);
  });

  it("a deleted tenant is not changed by other commands, and its slug and hosts stay taken", async () => {
    const { purgeAfter } = (await showJson("acme")).deleted;
    const deletedMessage = `tenant acme is deleted (kept until ${purgeAfter}): restore it first with \`npm run tenants -- restore-deleted acme\``;
    for (const args of [["resume", "acme"], ["suspend", "acme"], ["rename", "acme", "acme2"], ["tier", "acme", "high"], ["hosts", "add", "acme", "www.acme.test"]]) {
      await refused(args, deletedMessage);
    }
    await refused(
      ["delete", "acme"],
      `tenant acme is already deleted (kept until ${purgeAfter}): restore it with \`npm run tenants -- restore-deleted acme\`, or drop it now with \`npm run tenants -- delete acme --now --yes\``,
    );
    await refused(
      ["create", "acme", "--name", "Acme 2", "--host", "acme2.example.com"],
      `tenant acme was deleted and is kept until ${purgeAfter}: restore it with \`npm run tenants -- restore-deleted acme\`, or drop it now with \`npm run tenants -- delete acme --now --yes\``,
    );
    await refused(["create", "wile", "--name", "Wile", "--host", "acme.example.com"], "host acme.example.com already belongs to tenant acme: remove it there first (`npm run tenants -- hosts remove acme acme.example.com`)");
    await refused(["restore-deleted", "globex"], "tenant globex is not deleted: nothing to restore");
  });

  it("restore-deleted brings it back unchanged: status, data, hosts", async () => {
    const before = await dataOf(schemas.acme!);
    expect(await ok("restore-deleted", "acme")).toBe(`Restored tenant acme: active, schema ${schemas.acme}, hosts acme.example.com.\n`);
    const shown = await showJson("acme");
    expect([shown.status, shown.deleted, shown.schema, shown.hosts]).toEqual(["active", null, schemas.acme, [{ host: "acme.example.com", primary: true }]]);
    expect(await dataOf(schemas.acme!)).toEqual(before);
    expect((await dataOf(schemas.acme!)).users).toHaveLength(25);
    // It serves and changes as before: the Worker's role writes go on from the same sequence.
    await client.query(`INSERT INTO "${schemas.acme}".users (email, hashed_password) VALUES ('new@acme.test', 'h')`);
    expect((await client.query(`SELECT id FROM "${schemas.acme}".users WHERE email = 'new@acme.test'`)).rows).toEqual([{ id: 26 }]);
  });

  it("a tenant suspended before it was deleted comes back suspended", async () => {
    await ok("suspend", "initech");
    await ok("delete", "initech");
    expect(await ok("restore-deleted", "initech")).toContain("Restored tenant initech: suspended,");
    expect((await showJson("initech")).status).toBe("suspended");
  });

  it("a host removed during the retention is freed (quarantined as usual) and is not restored", async () => {
    await ok("hosts", "add", "umbrella", "shop.umbrella.test");
    await ok("delete", "umbrella");
    // Removing hosts of a deleted tenant is allowed, even the last one.
    await ok("hosts", "remove", "umbrella", "shop.umbrella.test");
    await ok("hosts", "remove", "umbrella", "umbrella.example.com");
    const quarantined = await run("create", "wayne", "--name", "Wayne", "--host", "shop.umbrella.test");
    expect(quarantined.code, show(quarantined)).toBe(1);
    expect(quarantined.stderr).toMatch(/^error: host shop\.umbrella\.test was removed from tenant umbrella at \S+Z; cached answers may still send its visitors there until \S+Z \(\d+ min from now\)/);
    expect(await ok("restore-deleted", "umbrella")).toBe(
      `Restored tenant umbrella: active, schema ${schemas.umbrella}, no hosts (they were removed while it was deleted): add one with \`hosts add\`.\n`,
    );
    // Giving a host back to the tenant it came from is allowed at once.
    await ok("hosts", "add", "umbrella", "umbrella.example.com");
  });
});

describe("purge-deleted", () => {
  it("drops only tenants whose retention has passed; the rest stay restorable", async () => {
    await ok("delete", "globex", "--retain", "1h");
    await ok("delete", "hooli", "--retain", "0s");
    const hooli = await showJson("hooli");

    const out = await ok("purge-deleted", "--json");
    const purged = JSON.parse(out);
    expect(purged.map((t: { slug: string; schema: string; hosts: string[] }) => [t.slug, t.schema, t.hosts])).toEqual([
      ["hooli", schemas.hooli, ["hooli.example.com"]],
    ]);
    // hooli: schema, catalog, host and ledger rows gone; the registry keeps the name, released.
    expect((await client.query("SELECT to_regnamespace($1) AS r", [schemas.hooli])).rows[0].r).toBeNull();
    expect((await client.query("SELECT 1 FROM shared.tenants WHERE id = $1", [hooli.id])).rowCount).toBe(0);
    expect((await client.query("SELECT 1 FROM shared.tenant_hosts WHERE tenant_id = $1", [hooli.id])).rowCount).toBe(0);
    expect((await ledger(client)).filter((r) => r.schema_name === schemas.hooli)).toEqual([]);
    expect((await client.query("SELECT released_at IS NOT NULL AS released FROM shared.tenant_schemas WHERE schema_name = $1", [schemas.hooli])).rows).toEqual([
      { released: true },
    ]);
    // Its host is quarantined from other tenants for the staleness bound, as after any removal.
    const held = await run("create", "piedpiper", "--name", "Pied Piper", "--host", "hooli.example.com");
    expect(held.code, show(held)).toBe(1);
    expect(held.stderr).toMatch(/^error: host hooli\.example\.com was removed from a deleted tenant at \S+Z; cached answers may still send its visitors there/);
    await refused(["restore-deleted", "hooli"], "no tenant hooli: see `npm run tenants -- list`");

    // globex is not due: untouched, and restorable.
    expect(await ok("purge-deleted")).toBe("No deleted tenant is due: nothing purged.\n");
    expect((await client.query("SELECT to_regnamespace($1) AS r", [schemas.globex])).rows[0].r).not.toBeNull();
    expect((await ledger(client)).filter((r) => r.schema_name === schemas.globex).map((r) => r.migration)).toEqual(checkoutTags("tenant"));
    const before = await dataOf(schemas.globex!);
    await ok("restore-deleted", "globex");
    expect(await dataOf(schemas.globex!)).toEqual(before);

    // A new tenant with hooli's slug gets a new schema name.
    const reborn = JSON.parse(await ok("create", "hooli", "--name", "Hooli 2", "--host", "hooli2.example.com", "--json"));
    expect(reborn.schema).not.toBe(schemas.hooli);
  });

  it("the default retention comes from TENANT_RETENTION, checked like --retain", async () => {
    const r = await tenantsCli({ databaseUrl, env: { TENANT_RETENTION: "90m" } }, "delete", "globex", "--json");
    expect(r.code, show(r)).toBe(0);
    const deleted = JSON.parse(r.stdout);
    expect(Date.parse(deleted.purgeAfter) - Date.parse(deleted.deletedAt)).toBe(90 * 60_000);
    await ok("restore-deleted", "globex");
    const bad = await tenantsCli({ databaseUrl, env: { TENANT_RETENTION: "a week" } }, "delete", "globex");
    expect(bad.code, show(bad)).toBe(1);
    expect(bad.stderr).toBe('error: TENANT_RETENTION "a week" is not a duration: write a whole number and a unit, s, m, h or d (e.g. 7d, 12h, 30m, 0s)\n');
    expect((await showJson("globex")).deleted).toBeNull();
  });

  it("without a retention override the default is 7 days", async () => {
    const r = await tenantsCli({ databaseUrl, env: { TENANT_RETENTION: "" } }, "delete", "globex", "--json");
    expect(r.code, show(r)).toBe(0);
    const deleted = JSON.parse(r.stdout);
    expect(Date.parse(deleted.purgeAfter) - Date.parse(deleted.deletedAt)).toBe(7 * 86_400_000);
    await ok("restore-deleted", "globex");
  });
});
