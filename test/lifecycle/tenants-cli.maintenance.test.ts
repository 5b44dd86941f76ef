// `npm run tenants -- maintenance <slug> on|off`: what the catalog records (the message, since when,
// and only the SHA-256 of the bypass token it prints once), what show/list say, a new token when
// switched on again, and every bad input refused with nothing changed.
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });
afterAll(dropTestDatabases);

let databaseUrl: string;
let client: pg.Client;
const cli = (...args: string[]) => tenantsCli({ databaseUrl }, ...args);

async function catalogRow(slug: string) {
  const { rows } = await client.query<{ message: string | null; hash: string | null; since: Date | null }>(
    "SELECT maintenance_message AS message, maintenance_bypass_hash AS hash, maintenance_since AS since FROM shared.tenants WHERE slug = $1",
    [slug],
  );
  return rows[0]!;
}
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

beforeAll(async () => {
  databaseUrl = await freshDatabase("tcli_maint");
  client = await connectTo(databaseUrl);
  for (const args of [["init"], ["create", "acme", "--name", "Acme Inc.", "--host", "acme.example.com"], ["create", "globex", "--name", "Globex", "--host", "globex.example.com"]]) {
    const r = await cli(...args);
    expect(r.code, show(r)).toBe(0);
  }
});

describe("tenants maintenance", () => {
  it("on: records the message and the token's hash (never the token), prints the token once; show and list say so", async () => {
    const on = await cli("maintenance", "acme", "on", "--message", "Moving to faster disks; back at 14:00 UTC.");
    expect(on.code, show(on)).toBe(0);
    const token = /^ {2}(\S+)$/m.exec(on.stdout)?.[1];
    expect(token, on.stdout).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(on.stdout).toContain('Tenant acme is in maintenance: its hosts answer 503 tenant_maintenance: "Moving to faster disks; back at 14:00 UTC."');
    expect(on.stdout).toContain("open https://acme.example.com/?maintenance_bypass=<token> once in a browser");

    const row = await catalogRow("acme");
    expect(row.message).toBe("Moving to faster disks; back at 14:00 UTC.");
    expect(row.hash).toBe(sha256(token!));
    expect(row.since).toBeInstanceOf(Date);
    // The token itself is nowhere in the catalog.
    const { rows } = await client.query("SELECT 1 FROM shared.tenants t WHERE t::text LIKE '%' || $1 || '%'", [token]);
    expect(rows).toEqual([]);

    const shown = JSON.parse((await cli("show", "acme", "--json")).stdout);
    expect(shown.maintenance).toEqual({ message: "Moving to faster disks; back at 14:00 UTC.", since: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/) });
    expect(JSON.parse((await cli("show", "globex", "--json")).stdout).maintenance).toBeNull();
    expect((await cli("show", "acme")).stdout).toContain("maintenance: since ");
    const listed = (await cli("list")).stdout.split("\n");
    expect(listed.find((l) => l.startsWith("acme "))).toContain("active, maintenance");
    expect(listed.find((l) => l.startsWith("globex "))).not.toContain("maintenance");
  });

  it("on again: a new token (the old hash replaced), the same message and start time; off clears everything", async () => {
    const before = await catalogRow("acme");
    const again = await cli("maintenance", "acme", "on", "--json");
    expect(again.code, show(again)).toBe(0);
    const report = JSON.parse(again.stdout);
    expect(report).toEqual({
      slug: "acme",
      maintenance: true,
      renewed: true,
      message: "Moving to faster disks; back at 14:00 UTC.",
      bypassToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
    });
    const row = await catalogRow("acme");
    expect(row.hash).toBe(sha256(report.bypassToken));
    expect(row.hash).not.toBe(before.hash);
    expect(row.since).toEqual(before.since);

    const off = await cli("maintenance", "acme", "off");
    expect(off.code, show(off)).toBe(0);
    expect(off.stdout).toContain("Tenant acme is out of maintenance.");
    expect(await catalogRow("acme")).toEqual({ message: null, hash: null, since: null });

    // On from scratch without --message: a default naming the tenant.
    const fresh = JSON.parse((await cli("maintenance", "globex", "on", "--json")).stdout);
    expect(fresh).toMatchObject({ renewed: false, message: "Globex is down for maintenance; please try again shortly." });
    expect((await cli("maintenance", "globex", "off")).code).toBe(0);

    const offAgain = await cli("maintenance", "acme", "off");
    expect(offAgain.code, show(offAgain)).toBe(1);
    expect(offAgain.stderr).toBe("error: tenant acme is not in maintenance\n");
  });

  it("bad input: one line saying what was wrong, exit 2 (1 for a slug that is not valid or not a tenant), nothing changed", async () => {
    const before = await databaseState(client);
    for (const [args, code, message] of [
      [["maintenance", "acme"], 2, "error: usage: npm run tenants -- maintenance <slug> on|off [--message <text>]"],
      [["maintenance", "acme", "maybe"], 2, 'error: maintenance <slug> takes on or off, not "maybe"'],
      [["maintenance", "acme", "on", "--message", "  "], 2, "error: --message needs some text: what visitors of the tenant's hosts should read"],
      [["maintenance", "acme", "on", "--message", "two\nlines"], 2, "error: --message must be one line of text (no control characters or line breaks)"],
      [["maintenance", "acme", "on", "--message", "x".repeat(501)], 2, "error: --message is 501 characters long: keep it to 500"],
      [["maintenance", "acme", "off", "--message", "bye"], 2, "error: --message goes with maintenance <slug> on"],
      [["maintenance", "Acme", "on"], 1, null],
      [["maintenance", "nope", "on"], 1, "error: no tenant nope: see `npm run tenants -- list`"],
    ] as const) {
      const r = await cli(...args);
      expect(r.code, show(r)).toBe(code);
      if (message) expect(r.stderr).toBe(`${message}\n`);
      else expect(r.stderr.split("\n").filter(Boolean)).toHaveLength(1);
    }
    expect(await databaseState(client)).toEqual(before);
  });
});
