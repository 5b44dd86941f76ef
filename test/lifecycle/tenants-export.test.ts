// Export and import of one tenant (issue 9, part 2): one self-contained, versioned file with a
// checksum; import creates a tenant at the file's migration, loads the rows, fixes the sequences and
// migrates to head, in one transaction. Round trip with every column type the tenant tables use,
// every enum value, NULLs, unicode and a few hundred thousand rows; the same bytes on re-export; a
// file newer than the checkout refused; a corrupted or truncated file refused with nothing changed.
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";
import { checkoutTags, fixtureMigrations, removeFixtureMigrations } from "../support/migrations.ts";

vi.setConfig({ testTimeout: 300_000, hookTimeout: 300_000 });

const USERS = 120_000;
const ITEMS = 240_000;

const dir = mkdtempSync(join(tmpdir(), "edge-tenants-export-"));
afterAll(async () => {
  removeFixtureMigrations();
  await dropTestDatabases();
  rmSync(dir, { recursive: true, force: true });
});

let urlA: string;
let urlB: string;
let a: pg.Client;
let b: pg.Client;
let schemaA: string;
const file = (name: string) => join(dir, name);
const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

async function ok(databaseUrl: string, ...args: string[]): Promise<string> {
  const r = await tenantsCli({ databaseUrl }, ...args);
  expect(r.code, show(r)).toBe(0);
  return r.stdout;
}

/** A tenant's rows, as digests of their text (every column, in id order), and its sequences' next values. */
async function fingerprint(client: pg.Client, schema: string) {
  await client.query("SET TimeZone = 'UTC'");
  const digest = async (table: string) =>
    (await client.query(`SELECT count(*)::int AS n, md5(string_agg(t::text, E'\\n' ORDER BY id)) AS md5 FROM "${schema}".${table} t`)).rows[0];
  const seq = async (name: string) =>
    (await client.query(`SELECT last_value::text AS last, is_called FROM "${schema}".${name}`)).rows[0];
  return {
    users: await digest("users"),
    items: await digest("items"),
    usersSeq: await seq("users_id_seq"),
    itemsSeq: await seq("items_id_seq"),
  };
}

beforeAll(async () => {
  urlA = await freshDatabase("export_a");
  urlB = await freshDatabase("export_b");
  a = await connectTo(urlA);
  b = await connectTo(urlB);
  schemaA = (await initWithTenants(a, ["acme"])).acme!;
  await initWithTenants(b, []);
  await ok(urlA, "hosts", "add", "acme", "www.acme.test");
  await ok(urlA, "tier", "acme", "high");
  // Every column type of the tenant tables (serial, text, boolean, both enums, timestamptz, integer
  // foreign keys), NULLs, unicode and text that COPY must escape (tabs, newlines, backslashes).
  await a.query(
    `INSERT INTO "${schemaA}".users (email, full_name, hashed_password, is_active, role, created_at, updated_at)
     SELECT 'user' || i || '@exämple.test',
            CASE WHEN i % 7 = 0 THEN NULL WHEN i % 3 = 0 THEN 'Zoë 日本語 🎉 ' || i ELSE E'tab\\there \\\\ back\\nslash ' || i END,
            'pbkdf2$' || md5(i::text), i % 5 <> 0,
            CASE WHEN i % 10 = 0 THEN 'admin' ELSE 'member' END::"${schemaA}".user_role,
            timestamptz '2024-02-29 12:34:56.789012+00' + i * interval '1 second 1 microsecond',
            timestamptz '1999-12-31 23:59:59.999999-08' + i * interval '1 minute'
     FROM generate_series(1, ${USERS}) i`,
  );
  await a.query(
    `INSERT INTO "${schemaA}".items (title, description, status, owner_id, created_at)
     SELECT 'item ' || i || ' – ünïcode', CASE WHEN i % 4 = 0 THEN NULL ELSE repeat('ab\\c ', i % 9) END,
            (ARRAY['draft', 'published', 'archived'])[1 + i % 3]::"${schemaA}".item_status, 1 + (i % ${USERS}),
            now() - i * interval '3 seconds'
     FROM generate_series(1, ${ITEMS}) i`,
  );
  // Sequences ahead of the rows: the next id must not reuse a deleted one.
  await a.query(`DELETE FROM "${schemaA}".users WHERE id > ${USERS - 10}`);
}, 600_000);

describe("export and import", () => {
  it("export writes one versioned file with a checksum; exporting again gives the same bytes", async () => {
    const out = await ok(urlA, "export", "acme", "--out", file("acme.tenant"));
    expect(out).toMatch(
      new RegExp(
        `^Exported tenant acme \\(at tenant/${checkoutTags("tenant").at(-1)}\\) to .*acme\\.tenant: users ${USERS - 10} rows, items \\d+ rows; [\\d.]+ MB in [\\d.]+ s, sha256 [0-9a-f]{64}\\.\n$`,
      ),
    );
    const text = readFileSync(file("acme.tenant"));
    const lines = text.toString("utf8").split("\n");
    expect(lines[0]).toBe("edge-tenants-export 1");
    const header = JSON.parse(lines[1]!);
    expect(header.migrations).toEqual(checkoutTags("tenant"));
    expect(header.tenant).toMatchObject({
      slug: "acme",
      name: "acme Inc.",
      status: "active",
      rateLimitTier: "high",
      hosts: [
        { host: "acme.example.com", primary: true },
        { host: "www.acme.test", primary: false },
      ],
    });
    expect(header.tables.map((t: { name: string }) => t.name)).toEqual(["users", "items"]); // referenced first
    expect(JSON.stringify(header)).not.toContain(schemaA); // nothing specific to this database
    // The checksum is over every byte before the last line.
    const trailer = lines.at(-2)!;
    const body = text.subarray(0, text.length - trailer.length - 1);
    expect(trailer).toBe(`end sha256:${createHash("sha256").update(body).digest("hex")}`);

    await ok(urlA, "export", "acme", "--out", file("acme-again.tenant"));
    expect(sha(file("acme-again.tenant"))).toBe(sha(file("acme.tenant")));
    // An existing file is never overwritten.
    const again = await tenantsCli({ databaseUrl: urlA }, "export", "acme", "--out", file("acme.tenant"));
    expect(again.code, show(again)).toBe(1);
    expect(again.stderr).toBe(`error: ${file("acme.tenant")} already exists: choose another --out, or remove it first\n`);
  });

  it("import into another database gives the same tenant; exporting it there gives the same bytes", async () => {
    const out = await ok(urlB, "import", file("acme.tenant"), "--slug", "acme", "--host", "acme.example.com", "--host", "www.acme.test", "--json");
    const result = JSON.parse(out);
    expect(result.migrated).toEqual([]);
    expect(result.tables).toEqual([
      { name: "users", rows: USERS - 10 },
      { name: "items", rows: (await a.query(`SELECT count(*)::int AS n FROM "${schemaA}".items`)).rows[0].n },
    ]);
    const tenant = result.tenant;
    expect(tenant.schema).toMatch(/^tenant_[a-z2-7]{12}$/);
    expect([tenant.slug, tenant.name, tenant.status, tenant.rateLimitTier, tenant.hosts]).toEqual([
      "acme",
      "acme Inc.",
      "active",
      "high",
      [
        { host: "acme.example.com", primary: true },
        { host: "www.acme.test", primary: false },
      ],
    ]);
    expect(await fingerprint(b, tenant.schema)).toEqual(await fingerprint(a, schemaA));
    // Every enum value and NULLs came through.
    const { rows } = await b.query(
      `SELECT (SELECT array_agg(DISTINCT status::text ORDER BY status::text) FROM "${tenant.schema}".items) AS statuses,
              (SELECT array_agg(DISTINCT role::text ORDER BY role::text) FROM "${tenant.schema}".users) AS roles,
              (SELECT count(*)::int FROM "${tenant.schema}".users WHERE full_name IS NULL) AS nulls,
              (SELECT full_name FROM "${tenant.schema}".users WHERE id = 3) AS unicode`,
    );
    expect(rows[0]).toEqual({ statuses: ["archived", "draft", "published"], roles: ["admin", "member"], nulls: Math.floor((USERS - 10) / 7), unicode: "Zoë 日本語 🎉 3" });
    // The next id continues after the source's sequence, not after the last row.
    const next = await b.query(`INSERT INTO "${tenant.schema}".users (email, hashed_password) VALUES ('next@acme.test', 'h') RETURNING id`);
    expect(next.rows[0].id).toBe(USERS + 1);
    await b.query(`DELETE FROM "${tenant.schema}".users WHERE email = 'next@acme.test'`);
    await b.query(`SELECT setval('"${tenant.schema}".users_id_seq', ${USERS})`);

    await ok(urlB, "export", "acme", "--out", file("acme-from-b.tenant"));
    expect(sha(file("acme-from-b.tenant"))).toBe(sha(file("acme.tenant")));
  });

  it("import under another slug in the same database: a new schema, the same rows", async () => {
    const tenant = JSON.parse(await ok(urlA, "import", file("acme.tenant"), "--slug", "acme_copy", "--host", "copy.acme.test", "--json")).tenant;
    expect(tenant.schema).not.toBe(schemaA);
    expect(await fingerprint(a, tenant.schema)).toEqual(await fingerprint(a, schemaA));
  });

  it("a corrupted file is refused and nothing changes", async () => {
    const original = readFileSync(file("acme.tenant"));
    const before = await databaseState(b);
    // One letter of one row changed: still valid COPY data, so only the checksum can tell.
    const flipped = Buffer.from(original);
    const at = flipped.indexOf("item 1000 ");
    flipped[at] = "I".charCodeAt(0);
    writeFileSync(file("flipped.tenant"), flipped);
    let r = await tenantsCli({ databaseUrl: urlB }, "import", file("flipped.tenant"), "--slug", "other", "--host", "other.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: ${file("flipped.tenant")} does not match its checksum: the file is corrupted; nothing was imported\n`);
    expect(await databaseState(b)).toEqual(before);

    // Cut short in the middle of the rows.
    writeFileSync(file("truncated.tenant"), original.subarray(0, Math.floor(original.length / 2)));
    r = await tenantsCli({ databaseUrl: urlB }, "import", file("truncated.tenant"), "--slug", "other", "--host", "other.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: ${file("truncated.tenant")} ends too early: the file is truncated or corrupted; nothing was imported\n`);
    expect(await databaseState(b)).toEqual(before);

    // Not an export at all.
    writeFileSync(file("notes.txt"), "hello\n");
    r = await tenantsCli({ databaseUrl: urlB }, "import", file("notes.txt"), "--slug", "other", "--host", "other.example.com");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toBe(`error: ${file("notes.txt")} is not a tenant export file (it does not start with "edge-tenants-export")\n`);
    expect(await databaseState(b)).toEqual(before);
  });

  it("a file newer than the checkout's head is refused; an older one is migrated to head after the load", async () => {
    const tenantTags = checkoutTags("tenant");
    const older = fixtureMigrations({ tenant: tenantTags.length - 1 });
    const urlC = await freshDatabase("export_c");
    const c = await connectTo(urlC);
    const schemaC = (await initWithTenants(c, ["legacy"], older)).legacy!;
    await c.query(`INSERT INTO "${schemaC}".users (email, hashed_password) VALUES ('old@legacy.test', 'h')`);
    const before = await databaseState(c);

    // Newer than the older checkout: refused, nothing changed.
    const refused = await tenantsCli({ databaseUrl: urlC, migrationsDir: older }, "import", file("acme.tenant"), "--slug", "acme", "--host", "acme.example.com");
    expect(refused.code, show(refused)).toBe(1);
    expect(refused.stderr).toBe(
      `error: ${file("acme.tenant")} is at tenant migration ${tenantTags.at(-1)}, newer than this checkout's head ${tenantTags.at(-2)} ` +
        `(${tenantTags.at(-1)} is not in migrations/tenant): import it with a checkout that has that migration\n`,
    );
    expect(await databaseState(c)).toEqual(before);

    // Older than head: loaded at its migration, then migrated.
    const exported = await tenantsCli({ databaseUrl: urlC, migrationsDir: older }, "export", "legacy", "--out", file("legacy.tenant"));
    expect(exported.code, show(exported)).toBe(0);
    const imported = JSON.parse(await ok(urlB, "import", file("legacy.tenant"), "--slug", "legacy", "--host", "legacy.example.com", "--json"));
    expect(imported.fromMigration).toBe(tenantTags.at(-2));
    expect(imported.migrated).toEqual([tenantTags.at(-1)]);
    const { rows } = await b.query(`SELECT email, role::text AS role FROM "${imported.tenant.schema}".users`);
    expect(rows).toEqual([{ email: "old@legacy.test", role: "member" }]);
    const ledger = await b.query("SELECT migration FROM public.schema_migrations WHERE schema_name = $1 ORDER BY migration", [imported.tenant.schema]);
    expect(ledger.rows.map((r) => r.migration)).toEqual(tenantTags);
  });

  it("maintenance mode is not carried: the file does not hold it, and the imported tenant is out of maintenance", async () => {
    await ok(urlA, "maintenance", "acme", "on", "--message", "Moving to another database");
    try {
      await ok(urlA, "export", "acme", "--out", file("acme-in-maintenance.tenant"));
      const header = JSON.parse(readFileSync(file("acme-in-maintenance.tenant"), "utf8").split("\n", 2)[1]!);
      expect(header.tenant.status).toBe("active");
      expect(Object.keys(header.tenant).filter((key) => /maintenance/i.test(key))).toEqual([]);
      expect(JSON.stringify(header)).not.toContain("Moving to another database");
      const imported = JSON.parse(await ok(urlB, "import", file("acme-in-maintenance.tenant"), "--slug", "acme_moved", "--host", "moved.acme.test", "--json"));
      expect(imported.tenant.maintenance).toBeNull();
      expect(imported.tenant.rateLimitTier).toBe("high");
      const { rows } = await b.query("SELECT maintenance_message FROM shared.tenants WHERE slug = 'acme_moved'");
      expect(rows).toEqual([{ maintenance_message: null }]);
    } finally {
      await ok(urlA, "maintenance", "acme", "off");
    }
  });
});
