import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/index.ts";
import { unreachableDatabase } from "./helpers.ts";

async function call(path: string, bindings: object, headers: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://localhost${path}`, { headers }), bindings, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

describe("the Worker when the database cannot be reached", () => {
  it("answers 503 database_unavailable with Retry-After, then recovers without a restart", async () => {
    const down = await call("/health", unreachableDatabase());
    expect(down.status).toBe(503);
    expect(Number(down.headers.get("Retry-After"))).toBeGreaterThan(0);
    const body = await down.json<{ error: { code: string; message: string; requestId: string } }>();
    expect(body.error.code).toBe("database_unavailable");
    expect(body.error.requestId).toBe(down.headers.get("X-Request-Id"));

    const up = await call("/health", env);
    expect(up.status).toBe(200);
  });

  it("shows browsers a small HTML page with the same code", async () => {
    const res = await call("/health", unreachableDatabase(), { Accept: "text/html" });
    expect(res.status).toBe(503);
    expect(res.headers.get("Content-Type")).toMatch(/text\/html/);
    expect(await res.text()).toContain("database_unavailable");
  });
});

describe("the Worker without its configuration", () => {
  it("answers 500 misconfigured naming the missing DATABASE_URL", async () => {
    const res = await call("/health", { ...env, DATABASE_URL: undefined, HYPERDRIVE: undefined });
    expect(res.status).toBe(500);
    const body = await res.json<{ error: { code: string; message: string } }>();
    expect(body.error.code).toBe("misconfigured");
    expect(body.error.message).toMatch(/DATABASE_URL is not set/);
  });

  it("refuses a DATABASE_URL that is not a postgres connection string", async () => {
    const res = await call("/health", { ...env, DATABASE_URL: "mysql://x@y/z" });
    expect(res.status).toBe(500);
    expect((await res.json<{ error: { message: string } }>()).error.message).toMatch(/postgres/);
  });
});

describe("unknown routes", () => {
  it("answer 403 tenant_not_found on a host that names no tenant", async () => {
    const res = await call("/nope", env);
    expect(res.status).toBe(403);
    const body = await res.json<{ error: { code: string } }>();
    expect(body.error.code).toBe("tenant_not_found");
  });
});
