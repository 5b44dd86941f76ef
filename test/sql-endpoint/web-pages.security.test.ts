// No web page can reach the local database: the endpoint sends no CORS headers, refuses any request
// carrying an Origin header and any non-loopback Host (DNS rebinding). Tried as an attacker would:
// a real Chromium page from another origin, raw requests with forged headers.
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startSqlEndpoint, type SqlEndpoint } from "../../scripts/sql-endpoint/server.ts";
import { databaseUrl, directClient } from "./helpers.ts";
import { browserAvailable, launchChromium } from "../support/browser.ts";

const MARKER = "web_page_was_here";

let endpoint: SqlEndpoint;
let client: pg.Client;
let queriesRun = 0;

beforeAll(async () => {
  const upstream = new URL(databaseUrl());
  endpoint = await startSqlEndpoint({
    upstream: { host: upstream.hostname, port: Number(upstream.port) },
    onQuery: () => queriesRun++,
  });
  client = await directClient();
  await client.query(`DROP TABLE IF EXISTS public.${MARKER}`);
});

afterAll(async () => {
  await client.query(`DROP TABLE IF EXISTS public.${MARKER}`);
  await client.end();
  await endpoint.close();
});

beforeEach(() => {
  queriesRun = 0;
});

async function markerExists(): Promise<boolean> {
  const { rows } = await client.query("SELECT to_regclass($1) IS NOT NULL AS present", [`public.${MARKER}`]);
  return rows[0].present;
}

/** A raw HTTP request to the endpoint, with exactly the headers given (Host included). */
function raw(
  method: string,
  headers: Record<string, string>,
  body = "",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: "127.0.0.1", port: endpoint.port, path: "/sql", method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (text += d));
      res.on("end", () => done({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on("error", fail);
    req.end(body);
  });
}

const attack = JSON.stringify({ query: `CREATE TABLE public.${MARKER} (id int)`, params: [] });
const neonHeaders = () => ({ "Neon-Connection-String": databaseUrl(), "Content-Type": "application/json" });

function expectRefused(res: { status: number; headers: Record<string, unknown>; body: string }, message: RegExp) {
  expect(res.status).toBe(403);
  expect(res.body).not.toContain("\n");
  expect(JSON.parse(res.body).message).toMatch(message);
  expect(Object.keys(res.headers).filter((h) => h.startsWith("access-control-"))).toEqual([]);
}

describe("requests from web pages", () => {
  it("answers a CORS preflight with 403 and no CORS headers", async () => {
    const res = await raw("OPTIONS", {
      Host: `127.0.0.1:${endpoint.port}`,
      Origin: "https://evil.example",
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "neon-connection-string",
    });
    expectRefused(res, /web pages/);
  });

  it.each(["https://evil.example", "null", "http://localhost:1234"])(
    "refuses a POST carrying Origin: %s, with valid credentials, before any query runs",
    async (origin) => {
      const res = await raw("POST", { ...neonHeaders(), Host: `127.0.0.1:${endpoint.port}`, Origin: origin }, attack);
      expectRefused(res, /requests from web pages are refused/);
      expect(queriesRun).toBe(0);
      expect(await markerExists()).toBe(false);
    },
  );

  it.each([
    "evil.example",
    "evil.example:4445",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "10.0.0.5",
    "[::2]:4445",
  ])("refuses Host %j (DNS rebinding) with 403 before any query runs", async (host) => {
    const res = await raw("POST", { ...neonHeaders(), Host: host }, attack);
    expectRefused(res, /is refused: call the local SQL endpoint at a loopback address/);
    expect(queriesRun).toBe(0);
    expect(await markerExists()).toBe(false);
  });

  it.each(["127.0.0.1", "localhost", "LOCALHOST", "127.1.2.3", "[::1]"])(
    "answers the loopback Host %s (with its port), as the Worker and local tools call it",
    async (host) => {
      const res = await raw(
        "POST",
        { ...neonHeaders(), Host: `${host}:${endpoint.port}` },
        JSON.stringify({ query: "SELECT 1 AS one", params: [] }),
      );
      expect(res.status, res.body).toBe(200);
      expect(JSON.parse(res.body).rows).toEqual([{ one: 1 }]);
      expect(res.headers["access-control-allow-origin"]).toBeUndefined();
      expect(queriesRun).toBe(1);
    },
  );

  // CI installs Chromium and sets REQUIRE_BROWSER, so there this test cannot be skipped.
  describe.runIf(browserAvailable)("a real browser", () => {
    let site: Server;

    beforeAll(async () => {
      // The attacker's page, from another origin (another host name and port).
      site = createServer((_req, res) => {
        res.writeHead(200, { "Content-Type": "text/html" });
        res.end("<!doctype html><title>innocent page</title><p>hello</p>");
      });
      await new Promise<void>((done) => site.listen(0, "127.0.0.1", done));
    });

    afterAll(async () => {
      await new Promise((done) => site.close(done));
    });

    it("cannot run SQL from a page of another origin, by CORS fetch or by a no-cors POST", async () => {
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        await page.goto(`http://localhost:${(site.address() as AddressInfo).port}/`);
        expect(await page.textContent("p")).toBe("hello");
        const outcome = await page.evaluate(
          async ({ urls, connectionString, body }) => {
            const results: string[] = [];
            for (const url of urls) {
              // What the driver sends: a CORS request with Neon's headers (needs a preflight).
              try {
                const res = await fetch(url, {
                  method: "POST",
                  headers: { "Neon-Connection-String": connectionString, "Neon-Array-Mode": "true" },
                  body,
                });
                results.push(`cors ${url}: answered ${res.status} ${await res.text()}`);
              } catch (error) {
                results.push(`cors ${url}: failed ${(error as Error).name}`);
              }
              // A "simple" request needs no preflight (no custom headers, text/plain body).
              try {
                const res = await fetch(url, { method: "POST", mode: "no-cors", body });
                results.push(`no-cors ${url}: ${res.type}`);
              } catch (error) {
                results.push(`no-cors ${url}: failed ${(error as Error).name}`);
              }
            }
            return results;
          },
          {
            urls: [endpoint.url, endpoint.url.replace("127.0.0.1", "localhost")],
            connectionString: databaseUrl(),
            body: attack,
          },
        );
        expect(outcome).toEqual([
          `cors ${endpoint.url}: failed TypeError`,
          `no-cors ${endpoint.url}: opaque`,
          `cors ${endpoint.url.replace("127.0.0.1", "localhost")}: failed TypeError`,
          `no-cors ${endpoint.url.replace("127.0.0.1", "localhost")}: opaque`,
        ]);
        expect(queriesRun).toBe(0);
        expect(await markerExists()).toBe(false);
      } finally {
        await browser.close();
      }
    }, 60_000);
  });
});
