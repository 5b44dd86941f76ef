// `npm run migrate` refusing: bad usage (exit 2), a database that is not initialized or not
// reachable (exit 1). None of them creates anything.
import { afterAll, describe, expect, it } from "vitest";
import { databaseState, userSchemas } from "../support/catalog.ts";
import { connectTo, dropTestDatabases, freshDatabase, migrateCli, show } from "../support/database.ts";

afterAll(dropTestDatabases);

describe.concurrent("migrate usage errors exit 2", () => {
  const cases: Array<[string[], string]> = [
    [["--batch-size", "0"], "error: --batch-size needs a whole number of tenants, at least 1"],
    [["--batch-size", "abc"], "error: --batch-size needs a whole number of tenants, at least 1"],
    [["--batch-size", "1.5"], "error: --batch-size needs a whole number of tenants, at least 1"],
    [["--wait-for-run=-1"], "error: --wait-for-run needs a number of seconds, at least 0"],
    [["--wait-for-run", "soon"], "error: --wait-for-run needs a number of seconds, at least 0"],
    [["--lock-timeout-ms", "0"], "error: --lock-timeout-ms needs a whole number of milliseconds, at least 1"],
    [["--lock-timeout-ms", "2.5"], "error: --lock-timeout-ms needs a whole number of milliseconds, at least 1"],
    [["--lock-retries=-1"], "error: --lock-retries needs a whole number of attempts, at least 0"],
    [["--statement-timeout-ms", "soon"], "error: --statement-timeout-ms needs a whole number of milliseconds (0: none), at least 0"],
    [
      ["--lock-timeout", "5"],
      "error: --lock-timeout is gone: use --wait-for-run S (seconds to wait for another run) or --lock-timeout-ms N (PostgreSQL's lock_timeout per statement)",
    ],
    [["frob"], 'error: unknown argument "frob": the only command is status (see --help)'],
    [["status", "now"], 'error: unknown argument "status now": the only command is status (see --help)'],
  ];
  it.each(cases)("migrate %j", async (args, message) => {
    const databaseUrl = await freshDatabase("migcli_usage");
    const client = await connectTo(databaseUrl);
    const r = await migrateCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr.trim()).toBe(message);
    expect(r.stdout).toBe("");
    expect(await userSchemas(client)).toEqual(["public"]);
  });

  it("an unknown option", async () => {
    const r = await migrateCli({ databaseUrl: "postgresql://nobody@127.0.0.1:1/none" }, "--bogus");
    expect(r.code, show(r)).toBe(2);
    expect(r.stderr).toMatch(/^error: Unknown option '--bogus'.*\(see --help\)\n$/);
  });

  it("--help prints the usage and exits 0", async () => {
    const r = await migrateCli({ databaseUrl: "postgresql://nobody@127.0.0.1:1/none" }, "--help");
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toContain("Usage: npm run migrate -- [status] [options]");
    expect(r.stdout).toContain("--batch-size N");
  });
});

describe.concurrent("migrate against a database that is not initialized", () => {
  it.each([[[]], [["status"]], [["--dry-run"]], [["--batch-size", "5"]]])("migrate %j exits 1 and creates nothing", async (args) => {
    const databaseUrl = await freshDatabase("migcli_uninit");
    const client = await connectTo(databaseUrl);
    const before = await databaseState(client);
    const r = await migrateCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toBe("error: the database is not initialized: run `npm run tenants -- init` first");
    expect(await databaseState(client)).toEqual(before);
    expect(await userSchemas(client)).toEqual(["public"]);
  });
});

describe.concurrent("migrate against a database it cannot reach", () => {
  it("exits 1 naming the address and the cause", async () => {
    const r = await migrateCli({ databaseUrl: "postgresql://postgres:postgres@127.0.0.1:1/none" });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr).toMatch(/^error: cannot connect to PostgreSQL at 127\.0\.0\.1:1: .*ECONNREFUSED.*; check DATABASE_URL\n$/);
  });

  it("a DATABASE_URL that is not a postgres URL exits 1", async () => {
    const r = await migrateCli({ databaseUrl: "mysql://localhost/db" });
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr.trim()).toBe("error: DATABASE_URL must be a postgres:// or postgresql:// connection string");
  });
});
