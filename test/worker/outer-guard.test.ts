// Whatever escapes the app, even its error handler, still gets the project's JSON error shape from
// the Worker's outer guard, never the runtime's bare 500.
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index.ts";
import { unreachableDatabase } from "./helpers.ts";

afterEach(() => vi.restoreAllMocks());

describe("the outer guard", () => {
  it("answers 500 internal_error in the JSON shape when the error handler itself fails", async () => {
    // Logging throws: the error handler fails while answering a database that cannot be reached.
    vi.spyOn(console, "error").mockImplementation(() => {
      throw new Error("log sink is down");
    });
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const request = new Request(`http://guard-${Date.now()}.test/users`, { headers: { "CF-Connecting-IP": "192.0.2.77" } });
    const bindings = unreachableDatabase(env);
    const res = await worker.fetch(request, bindings, { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext);
    expect(res.status).toBe(500);
    expect(res.headers.get("Content-Type")).toMatch(/application\/json/);
    const body = await res.json<{ error: { code: string; message: string; requestId: string } }>();
    expect(body.error).toEqual({ code: "internal_error", message: expect.any(String), requestId: res.headers.get("X-Request-Id") });
  });

  it("is what the runtime calls (exports.default)", async () => {
    const res = await exports.default.fetch(new Request("http://no-such-tenant-guard.test/", { headers: { "CF-Connecting-IP": "192.0.2.78" } }));
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("tenant_not_found");
  });
});
