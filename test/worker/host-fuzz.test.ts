// Host fuzzing inside workerd: every Host value an attacker would try is answered either by the
// tenant that owns exactly the host the Worker received (after normalizing) or by 400/403 in the
// project's error shape; never a 5xx. The wrangler dev run of the same values, with raw Host
// headers, is test/e2e/request-path.e2e.test.ts.
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { fixtureOwner, fuzzHosts } from "../fixtures/fuzz-hosts.ts";
import { normalizeHost } from "../../src/tenancy/naming.ts";
import { newClientIp } from "./helpers.ts";

type Expected = { status: 200; slug: string; home?: string } | { status: 400 | 403; code: string };

function expectedFor(received: string): Expected {
  const host = normalizeHost(received);
  if (!host) return { status: 400, code: "invalid_host" };
  const owner = fixtureOwner(host);
  if (!owner) return { status: 403, code: "tenant_not_found" };
  if (owner.suspended) return { status: 403, code: "tenant_suspended" };
  return { status: 200, slug: owner.slug, home: owner.name };
}

describe("Host fuzzing inside workerd", () => {
  it("answers over 500 hostile Host values with the owning tenant or 400/403 in the error shape, never 5xx", async () => {
    const values = fuzzHosts();
    expect(values.length).toBeGreaterThanOrEqual(500);
    const counts = new Map<string, number>();
    const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
    const wrong: string[] = [];

    const sendable = values.flatMap(({ what, value }) => {
      try {
        return [{ what, value, url: new URL(`http://${value}/tenant`) }];
      } catch {
        count("not sent: the runtime's URL parser refuses it (no request can carry it)");
        return [];
      }
    });
    for (let i = 0; i < sendable.length; i += 24) {
      await Promise.all(
        sendable.slice(i, i + 24).map(async ({ what, value, url }) => {
          let res: Response;
          try {
            res = await exports.default.fetch(new Request(url, { headers: { "CF-Connecting-IP": newClientIp() } }));
          } catch (error) {
            // workerd's own fetch refuses the URL before any Worker runs (e.g. "*" in a host).
            count(`not sent: the runtime's fetch refuses it (${String(error).replace(/: http.*/, "")})`);
            return;
          }
          const text = await res.text();
          let expected = expectedFor(url.host);
          // "/", "?", "#", "\\" end the host: the rest became the path: "/" is the tenant's home page
          // (HTML, its name in the heading); anything else a route the tenant lacks.
          const home = expected.status === 200 && url.pathname === "/" ? expected.home : undefined;
          if (expected.status === 200 && url.pathname !== "/tenant" && !home) expected = { status: 404 as 403, code: "not_found" };
          let body: { slug?: string; error?: { code: string; message: string; requestId: string } } = {};
          try {
            body = JSON.parse(text);
          } catch {}
          const code = body.error?.code;
          count(`${res.status} ${code ?? body.slug ?? ""}`.trim());
          const shapeOk = res.status === 200 || (code && body.error!.requestId === res.headers.get("X-Request-Id") && body.error!.message);
          const matches = home
            ? res.status === 200 && text.includes(`<h1>${home}</h1>`)
            : expected.status === 200
              ? res.status === 200 && body.slug === expected.slug
              : res.status === expected.status && code === expected.code;
          if (res.status >= 500 || !shapeOk || !matches) {
            wrong.push(`${what}: ${JSON.stringify(value)} -> worker saw ${url.host}: got ${res.status} ${text.slice(0, 100)}, expected ${JSON.stringify(expected)}`);
          }
        }),
      );
    }
    console.log(
      `Host fuzzing in workerd, ${values.length} values:\n` +
        [...counts].sort().map(([k, n]) => `  ${String(n).padStart(4)}  ${k}`).join("\n"),
    );
    expect(wrong).toEqual([]);
  });
});
