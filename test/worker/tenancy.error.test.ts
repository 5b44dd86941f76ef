// Hosts that name no tenant, hosts that are not hosts, and suspended tenants.
import { describe, expect, it } from "vitest";
import { normalizeHost } from "../../src/tenancy/naming.ts";
import { resolutionStats } from "../../src/tenancy/resolve.ts";
import { errorCode, request } from "./helpers.ts";

describe("unknown and invalid hosts", () => {
  it("answers an unknown host 403 tenant_not_found", async () => {
    const res = await request("nobody-here.test", { path: "/users" });
    expect(res.status).toBe(403);
    const body = await res.json<{ error: { code: string; message: string; requestId: string } }>();
    expect(body.error.code).toBe("tenant_not_found");
    expect(body.error.requestId).toBe(res.headers.get("X-Request-Id"));
  });

  it("shows browsers an HTML page for an unknown host", async () => {
    const res = await request("nobody-here-either.test", { headers: { Accept: "text/html" } });
    expect(res.status).toBe(403);
    expect(res.headers.get("Content-Type")).toMatch(/text\/html/);
    expect(await res.text()).toContain("tenant_not_found");
  });

  // Hosts a request can carry that are not DNS names: 400 at once, no cache, no catalog query.
  const invalidHosts: Array<[string, string]> = [
    ["over 253 bytes", `${["a", "b", "c", "d", "e"].map((c) => c.repeat(60)).join(".")}.test`],
    ["a label over 63 bytes", `${"a".repeat(64)}.test`],
    ["an underscore", "bad_host.test"],
    ["an IPv4 literal", "127.0.0.1"],
    ["an IPv6 literal", "[::1]"],
    ["SQL in it", "acme.test';drop--schema"],
    ["a leading hyphen", "-acme.test"],
    ["an empty label", "acme..test"],
  ];
  for (const [what, host] of invalidHosts) {
    it(`answers a host with ${what} 400 invalid_host, without a cache or catalog lookup`, async () => {
      expect(new URL(`http://${host}/`).host).not.toBe(""); // the request really carries this host
      const before = resolutionStats.catalogQueries + resolutionStats.kvReads;
      const res = await request(host, { path: "/users" });
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe("invalid_host");
      expect(resolutionStats.catalogQueries + resolutionStats.kvReads).toBe(before);
    });
  }

  it("normalizes and validates hosts by one rule", () => {
    expect(normalizeHost("ACME.Example.COM.:8787")).toBe("acme.example.com");
    expect(normalizeHost("acme.localhost")).toBe("acme.localhost");
    for (const bad of ["", " ", ":8787", "acme.test:port", "a".repeat(254), "acme.test/x", "acme test", "1.2.3.4", "ä.test"]) {
      expect(normalizeHost(bad), bad).toBeUndefined();
    }
  });

  it("answers a suspended tenant 403 tenant_suspended", async () => {
    const res = await request("dormant.test", { path: "/users" });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe("tenant_suspended");
  });
});

