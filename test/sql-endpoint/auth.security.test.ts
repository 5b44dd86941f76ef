// Credentials are checked by PostgreSQL for every (user, password): a wrong password never rides on
// a connection pooled by an earlier request with the right one.
import { neon, NeonDbError } from "@neondatabase/serverless";
import { describe, expect, it } from "vitest";
import { connectionStringWith, databaseUrl, driver, post } from "./helpers.ts";

const sql = driver();

describe("authentication", () => {
  it("rejects a wrong password with 28P01, even after the right one pooled a connection", async () => {
    // Pool connections for the right credentials first (several, concurrently and serially).
    await Promise.all(Array.from({ length: 4 }, () => sql`SELECT 1`));
    await expect(sql`SELECT current_user AS u`).resolves.toEqual([{ u: new URL(databaseUrl()).username }]);

    const wrong = neon(connectionStringWith({ password: "definitely-wrong" }));
    for (let i = 0; i < 3; i++) {
      const error = await wrong`SELECT 1 AS leaked`.then(
        () => expect.unreachable("a wrong password must not run a query"),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NeonDbError);
      expect(error).toMatchObject({
        code: "28P01",
        message: `password authentication failed for user "${new URL(databaseUrl()).username}"`,
      });
      // The right password still works in between: its pooled connections are intact.
      await expect(sql`SELECT 2 AS ok`).resolves.toEqual([{ ok: 2 }]);
    }
  });

  it("rejects an empty password and an unknown user", async () => {
    await expect(neon(connectionStringWith({ password: "" }))`SELECT 1`).rejects.toBeInstanceOf(NeonDbError);
    await expect(neon(connectionStringWith({ user: "no_such_role_x" }))`SELECT 1`).rejects.toMatchObject({
      code: "28P01",
    });
  });

  it("rejects an unknown database with PostgreSQL's error", async () => {
    await expect(neon(connectionStringWith({ database: "no_such_db_x" }))`SELECT 1`).rejects.toMatchObject({
      code: "3D000",
      message: 'database "no_such_db_x" does not exist',
    });
  });

  it("answers an authentication failure with a 400 JSON error body", async () => {
    const res = await post(
      { query: "SELECT 1", params: [] },
      { "Neon-Connection-String": connectionStringWith({ password: "nope" }) },
    );
    expect(res.status).toBe(400);
    expect(res.json).toMatchObject({ code: "28P01", severity: "FATAL" });
    expect(res.json.rows).toBeUndefined();
  });

  it("ignores the connection string's host, port and options (only user, password and database matter)", async () => {
    const url = new URL(databaseUrl());
    url.hostname = "db.example.invalid";
    url.port = "1";
    url.search = "?sslmode=require&options=-c%20search_path%3Dnowhere";
    const [row] = await neon(url.toString())`SELECT current_database() AS db, current_setting('search_path') AS path`;
    expect(row!.db).toBe(new URL(databaseUrl()).pathname.slice(1));
    expect(row!.path).not.toContain("nowhere");
  });
});
