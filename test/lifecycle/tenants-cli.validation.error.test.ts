// `npm run tenants` refusing bad input: invalid slugs and hosts (exit 1) and bad usage (exit 2).
// Every refusal leaves the database exactly as it was, and comes before any connection attempt.
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type pg from "pg";
import { databaseState } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, show, tenantsCli } from "../support/database.ts";
import { initWithTenants } from "../support/fleet.ts";

// Each test starts CLI processes; on a loaded machine they take seconds each.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

let databaseUrl: string;
let client: pg.Client;
let before: Awaited<ReturnType<typeof databaseState>>;

beforeAll(async () => {
  databaseUrl = await freshDatabase("tcli_validation");
  client = await connectTo(databaseUrl);
  await initWithTenants(client, ["acme"]);
  before = await databaseState(client);
});
afterAll(dropTestDatabases);

async function refused(args: string[], code: number, message: string): Promise<void> {
  const r = await tenantsCli({ databaseUrl }, ...args);
  expect(r.code, show(r)).toBe(code);
  expect(r.stderr).toBe(`error: ${message}\n`);
  expect(r.stdout).toBe("");
  expect(await databaseState(client)).toEqual(before);
}

const slugMessage = (slug: string) =>
  `invalid slug "${slug}": use a lowercase letter followed by up to 55 lowercase letters, digits or underscores (e.g. acme or globex_eu)`;

const hostMessage = (host: string) =>
  `invalid host "${host}": give a DNS name such as acme.example.com or acme.localhost ` +
  "(letters, digits and inner hyphens in dot-separated labels; no port, no IP address)";

describe.concurrent("invalid slugs are refused (exit 1)", () => {
  const slugs: Array<[string, string]> = [
    ["uppercase", "Acme"],
    ["leading digit", "1acme"],
    ["57 characters", "a".repeat(57)],
    ["empty", ""],
    ["a hyphen", "acme-co"],
    ["a leading underscore", "_acme"],
  ];
  it.each(slugs)("create with %s", async (_, slug) => {
    await refused(["create", slug, "--name", "X", "--host", "x.example.com"], 1, slugMessage(slug));
  });
  // The same rule guards every command that takes a slug.
  it.each(slugs.slice(0, 2))("suspend, delete and hosts add with %s", async (_, slug) => {
    await refused(["suspend", slug], 1, slugMessage(slug));
    await refused(["delete", slug, "--yes"], 1, slugMessage(slug));
    await refused(["hosts", "add", slug, "x.example.com"], 1, slugMessage(slug));
  }, 90_000); // three CLI processes: slow on a loaded machine
});

describe.concurrent("invalid hosts are refused (exit 1)", () => {
  const hosts: Array<[string, string]> = [
    ["with a port", "newco.example.com:8080"],
    ["an IPv4 address", "127.0.0.1"],
    ["an IPv6 address", "[::1]"],
    ["an underscore", "new_co.example.com"],
    ["a label over 63 bytes", `${"a".repeat(64)}.example.com`],
    ["over 253 bytes", `${Array.from({ length: 5 }, () => "b".repeat(60)).join(".")}.com`],
    ["a label ending in a hyphen", "newco-.example.com"],
    ["empty", ""],
  ];
  it.each(hosts)("create with a host %s", async (_, host) => {
    await refused(["create", "newco", "--name", "NewCo", "--host", host], 1, hostMessage(host));
  });
  it.each(hosts.slice(0, 2))("create with a good host and one %s", async (_, host) => {
    await refused(["create", "newco", "--name", "NewCo", "--host", "newco.example.com", "--host", host], 1, hostMessage(host));
  });
  it.each(hosts)("hosts add with a host %s", async (_, host) => {
    await refused(["hosts", "add", "acme", host], 1, hostMessage(host));
  });
});

describe.concurrent("invalid display names are refused (exit 1)", () => {
  it("a blank --name", async () => {
    await refused(["create", "newco", "--name", "   ", "--host", "newco.example.com"], 1, 'a tenant needs a display name: --name "Acme Inc."');
  });
  it("a --name over 200 characters", async () => {
    await refused(
      ["create", "newco", "--name", "n".repeat(201), "--host", "newco.example.com"],
      1,
      "the display name is longer than 200 characters",
    );
  });
});

describe.concurrent("bad usage exits 2", () => {
  const cases: Array<[string, string[], string]> = [
    ["an unknown command", ["frob"], 'unknown command "frob" (see --help)'],
    ["create without --name", ["create", "newco", "--host", "newco.example.com"], 'a tenant needs a display name: --name "Acme Inc."'],
    ["create without --host", ["create", "newco", "--name", "NewCo"], "a tenant needs at least one host: --host newco.example.com"],
    ["create without a slug", ["create", "--name", "NewCo", "--host", "newco.example.com"], "usage: npm run tenants -- create <slug> --name <name> --host <host> [--host <host> ...]"],
    ["create with two slugs", ["create", "a", "b", "--name", "N", "--host", "a.example.com"], "usage: npm run tenants -- create <slug> --name <name> --host <host> [--host <host> ...]"],
    ["show without a slug", ["show"], "usage: npm run tenants -- show <slug> [--json]"],
    ["init with an argument", ["init", "now"], "usage: npm run tenants -- init"],
    ["list with an argument", ["list", "all"], "usage: npm run tenants -- list [--json]"],
    ["suspend without a slug", ["suspend"], "usage: npm run tenants -- suspend <slug>"],
    ["delete without a slug", ["delete", "--yes"], "usage: npm run tenants -- delete <slug> [--retain <duration>] [--now --yes]"],
    ["restore-deleted without a slug", ["restore-deleted"], "usage: npm run tenants -- restore-deleted <slug>"],
    ["purge-deleted with an argument", ["purge-deleted", "acme"], "usage: npm run tenants -- purge-deleted [--json]"],
    ["delete with --now and --retain", ["delete", "acme", "--now", "--yes", "--retain", "1d"], "--now drops the tenant at once and --retain keeps it: give one of them"],
    ["hosts without a host", ["hosts", "add", "acme"], "usage: npm run tenants -- hosts add|remove <slug> <host>"],
    ["an unknown hosts action", ["hosts", "move", "acme", "x.example.com"], 'unknown hosts action "move": use hosts add, hosts remove or hosts status'],
    ["cache without purge", ["cache", "flush"], "usage: npm run tenants -- cache purge <host> [<host> ...]"],
  ];
  it.each(cases)("%s", async (_, args, message) => {
    await refused(args, 2, message);
  });

  it("an unknown option", async () => {
    const r = await tenantsCli({ databaseUrl }, "list", "--bogus");
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/^error: Unknown option '--bogus'.*\(see --help\)\n$/);
  });

  it("no command prints the usage and exits 2; --help exits 0", async () => {
    const none = await tenantsCli({ databaseUrl });
    expect(none.code, show(none)).toBe(2);
    expect(none.stdout).toContain("Usage: npm run tenants -- <command> [options]");
    const help = await tenantsCli({ databaseUrl }, "--help");
    expect(help.code, show(help)).toBe(0);
    expect(help.stdout).toContain("delete <slug> --now --yes");
    expect(help.stdout).toContain("restore-deleted <slug>");
    expect(help.stdout).toContain("purge-deleted [--json]");
    expect(await databaseState(client)).toEqual(before);
  });
});

describe.concurrent("arguments are checked before connecting: the same answers with no database running", () => {
  // A port nothing listens on: any attempt to connect would fail with "cannot connect".
  let closedUrl: string;
  beforeAll(async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    closedUrl = `postgresql://owner:secret@127.0.0.1:${port}/none`;
  });
  const cases: Array<[string[], number, string]> = [
    [["create"], 2, "usage: npm run tenants -- create <slug> --name <name> --host <host> [--host <host> ...]"],
    [["create", "Acme", "--name", "X", "--host", "x.example.com"], 1, slugMessage("Acme")],
    [["create", "newco", "--host", "newco.example.com"], 2, 'a tenant needs a display name: --name "Acme Inc."'],
    [["create", "newco", "--name", "NewCo"], 2, "a tenant needs at least one host: --host newco.example.com"],
    [["create", "newco", "--name", "   ", "--host", "newco.example.com"], 1, 'a tenant needs a display name: --name "Acme Inc."'],
    [["create", "newco", "--name", "NewCo", "--host", "newco.example.com:8080"], 1, hostMessage("newco.example.com:8080")],
    [["hosts", "add", "acme", "127.0.0.1"], 1, hostMessage("127.0.0.1")],
    [["hosts", "add", "1acme", "x.example.com"], 1, slugMessage("1acme")],
    [["hosts", "move", "acme", "x.example.com"], 2, 'unknown hosts action "move": use hosts add, hosts remove or hosts status'],
    [["suspend"], 2, "usage: npm run tenants -- suspend <slug>"],
    [["suspend", "Acme"], 1, slugMessage("Acme")],
    [["rename", "acme", "Not-A-Slug"], 1, slugMessage("Not-A-Slug")],
    [["delete", "acme", "--now"], 1, "delete --now drops tenant acme's schema and all its data at once, with no way back: run again with --yes to confirm (or without --now to keep it restorable for the retention period)"],
    [["delete", "acme", "--retain", "7 days"], 1, '--retain "7 days" is not a duration: write a whole number and a unit, s, m, h or d (e.g. 7d, 12h, 30m, 0s)'],
    [["delete", "acme", "--retain=-1d"], 1, '--retain "-1d" is not a duration: write a whole number and a unit, s, m, h or d (e.g. 7d, 12h, 30m, 0s)'],
    [["delete", "acme", "--retain", "4000d"], 1, '--retain "4000d" is longer than 3650d (ten years): choose a shorter retention'],
    [["restore-deleted", "Acme"], 1, slugMessage("Acme")],
    [["show"], 2, "usage: npm run tenants -- show <slug> [--json]"],
    [["init", "now"], 2, "usage: npm run tenants -- init"],
    [["frob"], 2, 'unknown command "frob" (see --help)'],
  ];
  it.each(cases)("%j", async (args, code, message) => {
    const r = await tenantsCli({ databaseUrl: closedUrl }, ...args);
    expect(r.code, show(r)).toBe(code);
    expect(r.stderr).toBe(`error: ${message}\n`);
  });
  it("a good command does try the database, so the port really is closed", async () => {
    const r = await tenantsCli({ databaseUrl: closedUrl }, "list");
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot connect to PostgreSQL at 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  });
});
