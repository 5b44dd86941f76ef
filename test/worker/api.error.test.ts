// What a client of the example API (tenant `api`, host api.test) sees when it gets something wrong.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { adminToken } from "./helpers.ts";

type ErrorBody = { error: { code: string; message: string; requestId: string; details?: { field: string; message: string }[] } };

/** As an admin of the tenant (who may read and write every user's data). */
async function send(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}) {
  const headers = { Authorization: `Bearer ${await adminToken("api.test")}`, ...init.headers };
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://api.test${path}`, { method, ...init, headers }), env, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  send(method, path, body === undefined ? { headers } : { body: JSON.stringify(body), headers: { "Content-Type": "application/json", ...headers } });

const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** Asserts the one error shape with this status and code, and that the request id matches the header. */
async function expectError(res: Response, status: number, code: string): Promise<ErrorBody["error"]> {
  expect(res.status).toBe(status);
  expect(res.headers.get("Content-Type")).toMatch(/application\/json/);
  const body = await res.json<ErrorBody>();
  expect(body.error).toMatchObject({ code, message: expect.any(String), requestId: expect.any(String) });
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.requestId).toBe(res.headers.get("X-Request-Id"));
  return body.error;
}

/** A 400 validation_error whose details name exactly these fields (in any order, each at least once). */
async function expectInvalid(res: Response, fields: string[]): Promise<ErrorBody["error"]> {
  const error = await expectError(res, 400, "validation_error");
  expect(Array.isArray(error.details)).toBe(true);
  for (const d of error.details!) expect(d).toEqual({ field: expect.any(String), message: expect.any(String) });
  expect([...new Set(error.details!.map((d) => d.field))].sort()).toEqual([...fields].sort());
  for (const field of fields) expect(error.message).toContain(field);
  return error;
}

async function createUser(): Promise<{ id: number; email: string }> {
  const res = await call("POST", "/users", { email: `e-${unique()}@example.com`, password: "long enough" });
  expect(res.status).toBe(201);
  return res.json();
}

describe("POST /users with invalid input", () => {
  it("a bad email is 400 validation_error naming email", async () => {
    const error = await expectInvalid(await call("POST", "/users", { email: "not-an-email", password: "long enough" }), ["email"]);
    expect(error.details![0]!.message).toBe("email must be an email address");
  });

  it("a short password is 400 naming password", async () => {
    const error = await expectInvalid(await call("POST", "/users", { email: `s-${unique()}@example.com`, password: "short" }), [
      "password",
    ]);
    expect(error.details![0]!.message).toBe("password must be at least 8 characters");
  });

  it("several faults are all named at once", async () => {
    await expectInvalid(await call("POST", "/users", { email: "nope", password: "x" }), ["email", "password"]);
  });

  it("an empty JSON object names both required fields", async () => {
    await expectInvalid(await call("POST", "/users", {}), ["email", "password"]);
  });

  it("a missing body is 400 validation_error", async () => {
    const res = await send("POST", "/users");
    await expectError(res, 400, "validation_error");
  });

  it("an empty body declared as JSON is 400 validation_error, not a server error", async () => {
    const res = await send("POST", "/users", { body: "", headers: { "Content-Type": "application/json" } });
    await expectError(res, 400, "validation_error");
  });

  it("a body that is not JSON is 400 validation_error, not a server error", async () => {
    const res = await send("POST", "/users", { body: "{email: nope", headers: { "Content-Type": "application/json" } });
    const error = await expectError(res, 400, "validation_error");
    expect(error.message).toMatch(/JSON/);
    expect(error.details).toEqual([{ field: "(body)", message: expect.stringMatching(/JSON/) }]);
  });

  it("a JSON body that is not an object is 400 validation_error", async () => {
    await expectError(await call("POST", "/users", ["a@example.com", "password"]), 400, "validation_error");
  });

  it("creates nothing when the input is invalid", async () => {
    const email = `ghost-${unique()}@example.com`;
    await expectInvalid(await call("POST", "/users", { email, password: "short" }), ["password"]);
    // The same email is still free.
    expect((await call("POST", "/users", { email, password: "long enough" })).status).toBe(201);
  });
});

describe("POST /users/{userId}/items with invalid input", () => {
  it("an empty (or blank) title is 400 naming title", async () => {
    const user = await createUser();
    const error = await expectInvalid(await call("POST", `/users/${user.id}/items`, { title: "" }), ["title"]);
    expect(error.details![0]!.message).toBe("title cannot be empty");
    await expectInvalid(await call("POST", `/users/${user.id}/items`, { title: "   " }), ["title"]);
    await expectInvalid(await call("POST", `/users/${user.id}/items`, {}), ["title"]);
  });

  it("a status outside draft/published/archived is 400 naming status", async () => {
    const user = await createUser();
    const error = await expectInvalid(await call("POST", `/users/${user.id}/items`, { title: "ok", status: "deleted" }), [
      "status",
    ]);
    expect(error.details![0]!.message).toMatch(/draft|published|archived/);
  });

  it("a body that is not JSON is 400 validation_error", async () => {
    const user = await createUser();
    const res = await send("POST", `/users/${user.id}/items`, { body: "title=x", headers: { "Content-Type": "application/json" } });
    await expectError(res, 400, "validation_error");
  });

  it("the user stays without items after rejected ones", async () => {
    const user = await createUser();
    await expectInvalid(await call("POST", `/users/${user.id}/items`, { title: "" }), ["title"]);
    const res = await call("GET", `/users/${user.id}`);
    expect((await res.json<{ items: unknown[] }>()).items).toEqual([]);
  });
});

describe("paging parameters out of range", () => {
  for (const path of ["/users", "/items"]) {
    it(`${path}?limit=0 is 400 naming limit`, async () => {
      await expectInvalid(await call("GET", `${path}?limit=0`), ["limit"]);
    });
    it(`${path}?limit=101 is 400 naming limit`, async () => {
      await expectInvalid(await call("GET", `${path}?limit=101`), ["limit"]);
    });
    it(`${path}?skip=-1 is 400 naming skip`, async () => {
      await expectInvalid(await call("GET", `${path}?skip=-1`), ["skip"]);
    });
    it(`${path}?skip=abc&limit=1.5 names both`, async () => {
      await expectInvalid(await call("GET", `${path}?skip=abc&limit=1.5`), ["skip", "limit"]);
    });
  }
});

describe("user ids that are not positive integers", () => {
  for (const id of ["abc", "0", "-3", "1.5", "2147483648"]) {
    it(`GET /users/${id} is 400 naming userId`, async () => {
      await expectInvalid(await call("GET", `/users/${id}`), ["userId"]);
    });
    it(`POST /users/${id}/items is 400 naming userId`, async () => {
      await expectInvalid(await call("POST", `/users/${id}/items`, { title: "x" }), ["userId"]);
    });
  }
});

describe("duplicate emails", () => {
  it("a second user with the same email is 409 email_taken", async () => {
    const user = await createUser();
    const error = await expectError(await call("POST", "/users", { email: user.email, password: "another one" }), 409, "email_taken");
    expect(error.message).toContain(user.email);
  });

  it("emails differing only in case are the same email", async () => {
    const user = await createUser();
    const shouted = user.email.toUpperCase();
    await expectError(await call("POST", "/users", { email: shouted, password: "another one" }), 409, "email_taken");
  });
});

describe("missing users", () => {
  it("GET /users/{userId} of no user is 404 user_not_found", async () => {
    const error = await expectError(await call("GET", "/users/2147483000"), 404, "user_not_found");
    expect(error.message).toContain("2147483000");
  });

  it("POST /users/{userId}/items for no user is 404 user_not_found", async () => {
    await expectError(await call("POST", "/users/2147483001/items", { title: "orphan" }), 404, "user_not_found");
  });
});

describe("unknown routes", () => {
  it("an unknown path is 404 not_found naming the method and path", async () => {
    const error = await expectError(await call("GET", "/nothing/here"), 404, "not_found");
    expect(error.message).toContain("GET /nothing/here");
  });

  it("a known path with an unknown method is 404 not_found", async () => {
    await expectError(await call("DELETE", "/users/1"), 404, "not_found");
    await expectError(await call("GET", "/users/1/items"), 404, "not_found");
  });
});

describe("browsers", () => {
  const html = { Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" };

  it("get a small HTML page for an unknown route", async () => {
    const res = await call("GET", "/nothing/here", undefined, html);
    expect(res.status).toBe(404);
    expect(res.headers.get("Content-Type")).toMatch(/text\/html/);
    const page = await res.text();
    expect(page).toMatch(/^<!doctype html>/i);
    expect(page).toContain("not_found");
    expect(page).toContain(res.headers.get("X-Request-Id")!);
  });

  it("get an HTML page for a missing user and for invalid input, with the same status and code", async () => {
    const missing = await call("GET", "/users/2147483002", undefined, html);
    expect(missing.status).toBe(404);
    expect(missing.headers.get("Content-Type")).toMatch(/text\/html/);
    expect(await missing.text()).toContain("user_not_found");

    const invalid = await call("GET", "/users?limit=0", undefined, html);
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get("Content-Type")).toMatch(/text\/html/);
    expect(await invalid.text()).toContain("validation_error");
  });

  it("see user input escaped in the page", async () => {
    const res = await call("GET", "/<script>alert(1)</script>", undefined, html);
    expect(res.status).toBe(404);
    const page = await res.text();
    expect(page).not.toContain("<script>alert(1)</script>");
  });
});
