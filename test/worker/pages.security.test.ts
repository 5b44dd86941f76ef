// The tenant pages (tenants pages_a, pages_b, pages_limit), as a browser (and an attacker with a browser) would use them: every request is
// a separate request through the runtime (exports.default), with a small cookie jar per "browser".
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newClientIp } from "./helpers.ts";

const PASSWORD = "correct horse battery";
const unique = () => `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;

/** One browser: a cookie jar per host (host-only cookies, as the pages set them) and one address. */
class Browser {
  readonly jar = new Map<string, Map<string, string>>();
  readonly setCookies: string[] = [];
  constructor(readonly ip = newClientIp()) {}

  cookies(host: string): Map<string, string> {
    let jar = this.jar.get(host);
    if (!jar) this.jar.set(host, (jar = new Map()));
    return jar;
  }

  async fetch(host: string, path: string, init: { method?: string; form?: Record<string, string>; origin?: string | null } = {}): Promise<Response> {
    const headers = new Headers({ Accept: "text/html", "CF-Connecting-IP": this.ip });
    const jar = this.cookies(host);
    if (jar.size) headers.set("Cookie", [...jar].map(([k, v]) => `${k}=${v}`).join("; "));
    let body: string | undefined;
    if (init.form) {
      headers.set("Content-Type", "application/x-www-form-urlencoded");
      body = new URLSearchParams(init.form).toString();
    }
    if (init.origin !== null && (init.method ?? "GET") !== "GET") headers.set("Origin", init.origin ?? `http://${host}`);
    const res = await exports.default.fetch(new Request(`http://${host}${path}`, { method: init.method ?? "GET", headers, body, redirect: "manual" }));
    for (const line of res.headers.getSetCookie()) {
      this.setCookies.push(line);
      const [pair] = line.split(";");
      const eq = pair!.indexOf("=");
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === "") jar.delete(name);
      else jar.set(name, value);
    }
    return res;
  }

  /** The CSRF token of the first form on a page. */
  async token(host: string, path = "/"): Promise<string> {
    const html = await (await this.fetch(host, path)).text();
    const match = /name="csrf" value="([^"]+)"/.exec(html);
    if (!match) throw new Error(`no CSRF token on ${host}${path}`);
    return match[1]!;
  }

  async signUp(host: string): Promise<string> {
    const email = `page-${unique()}@example.com`;
    const res = await this.fetch(host, "/sign-up", { method: "POST", form: { csrf: await this.token(host), email, password: PASSWORD } });
    expect(res.status).toBe(303);
    expect(res.headers.get("Location")).toBe("/my/items");
    return email;
  }

  async addItem(host: string, title: string): Promise<void> {
    const res = await this.fetch(host, "/my/items", { method: "POST", form: { csrf: await this.token(host, "/my/items"), title, status: "draft" } });
    expect(res.status).toBe(303);
  }
}

describe("the home page", () => {
  it("shows the tenant's name and the sign-up and sign-in forms, in a page with a language and labels", async () => {
    const res = await new Browser().fetch("pages-a.test", "/");
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<html lang="en">/);
    expect(html).toContain("<h1>Pages A</h1>");
    expect(html).toContain('action="/sign-in"');
    expect(html).toContain('action="/sign-up"');
    expect(html).toContain('<label for="in-email">');
    expect(html).toContain('<link rel="stylesheet" href="/styles.css"/>');
  });
});

describe("browser sessions", () => {
  it("sign-up sets a session cookie: HttpOnly, Secure, SameSite=Lax, host-only, Path=/", async () => {
    const browser = new Browser();
    await browser.signUp("pages-a.test");
    const session = browser.setCookies.find((line) => line.startsWith("session="))!;
    expect(session).toBeDefined();
    const attributes = session.split(";").slice(1).map((a) => a.trim().toLowerCase());
    expect(attributes).toEqual(expect.arrayContaining(["httponly", "secure", "samesite=lax", "path=/"]));
    expect(attributes.some((a) => a.startsWith("domain"))).toBe(false);
  });

  it("lists, creates, changes and deletes the signed-in user's items, without JavaScript", async () => {
    const browser = new Browser();
    await browser.signUp("pages-a.test");
    await browser.addItem("pages-a.test", "Anvil");
    let html = await (await browser.fetch("pages-a.test", "/my/items")).text();
    expect(html).toContain("<h3>Anvil</h3>");
    const id = /action="\/my\/items\/(\d+)\/status"/.exec(html)![1]!;
    const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!;
    expect((await browser.fetch("pages-a.test", `/my/items/${id}/status`, { method: "POST", form: { csrf, status: "published" } })).status).toBe(303);
    html = await (await browser.fetch("pages-a.test", "/my/items")).text();
    expect(html).toMatch(/<option value="published" selected="">published<\/option>/);
    expect((await browser.fetch("pages-a.test", `/my/items/${id}/delete`, { method: "POST", form: { csrf } })).status).toBe(303);
    html = await (await browser.fetch("pages-a.test", "/my/items")).text();
    expect(html).not.toContain("Anvil");
    expect(html).toContain("No items yet.");
  });

  it("shows each user only their own items", async () => {
    const alice = new Browser();
    const bob = new Browser();
    await alice.signUp("pages-a.test");
    await bob.signUp("pages-a.test");
    await alice.addItem("pages-a.test", `alice-${unique()}`);
    const bobs = await (await bob.fetch("pages-a.test", "/my/items")).text();
    expect(bobs).not.toContain("alice-");
  });

  it("refuses an acme session cookie copied to globex: 401, nothing of acme shown", async () => {
    const victim = new Browser();
    await victim.signUp("pages-a.test");
    await victim.addItem("pages-a.test", "acme secret plans");
    const attacker = new Browser();
    attacker.cookies("pages-b.test").set("session", victim.cookies("pages-a.test").get("session")!);
    const res = await attacker.fetch("pages-b.test", "/my/items");
    expect(res.status).toBe(401);
    const html = await res.text();
    expect(html).toContain("not valid at this tenant");
    expect(html).not.toContain("acme secret plans");
    // ... and the JSON API refuses it too.
    expect((await attacker.fetch("pages-b.test", "/me")).status).toBe(401);
  });

  it("refuses item pages without a session: 401 page", async () => {
    const res = await new Browser().fetch("pages-a.test", "/my/items");
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/<html lang="en">/);
  });

  it("signs out: the cookie is cleared and the items page is refused", async () => {
    const browser = new Browser();
    await browser.signUp("pages-a.test");
    const res = await browser.fetch("pages-a.test", "/sign-out", { method: "POST", form: { csrf: await browser.token("pages-a.test", "/my/items") } });
    expect(res.status).toBe(303);
    expect(browser.cookies("pages-a.test").has("session")).toBe(false);
    expect((await browser.fetch("pages-a.test", "/my/items")).status).toBe(401);
  });
});

describe("CSRF on forms", () => {
  it("refuses a form post without the token, with another browser's token, and from another origin: 403 csrf_failed", async () => {
    const browser = new Browser();
    await browser.signUp("pages-a.test");
    const other = new Browser();
    const othersToken = await other.token("pages-a.test");
    for (const [what, init] of [
      ["no token", { method: "POST", form: { title: "forged" } }],
      ["another browser's token", { method: "POST", form: { csrf: othersToken, title: "forged" } }],
      ["another origin", { method: "POST", form: { csrf: await browser.token("pages-a.test", "/my/items"), title: "forged" }, origin: "https://evil.example" }],
    ] as const) {
      const res = await browser.fetch("pages-a.test", "/my/items", init);
      expect(res.status, what).toBe(403);
      expect(await res.text(), what).toContain("csrf_failed");
    }
    expect(await (await browser.fetch("pages-a.test", "/my/items")).text()).not.toContain("forged");
  });
});

describe("the sign-in form", () => {
  it("answers a wrong password with the form again (401), and the 11th attempt in a minute with a 429 page and Retry-After", async () => {
    const owner = new Browser();
    const email = await owner.signUp("pages-limit.test");
    const guesser = new Browser();
    const csrf = await guesser.token("pages-limit.test");
    for (let i = 0; i < 10; i++) {
      const res = await guesser.fetch("pages-limit.test", "/sign-in", { method: "POST", form: { csrf, email, password: `guess-${i}` } });
      expect(res.status).toBe(401);
      expect(await res.text()).toContain("Wrong email or password.");
    }
    const limited = await guesser.fetch("pages-limit.test", "/sign-in", { method: "POST", form: { csrf, email, password: PASSWORD } });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("Retry-After")).toBe("60");
    expect(await limited.text()).toContain("Too many sign-in attempts");
    // The right password from another browser (address) signs in.
    const ok = new Browser();
    const res = await ok.fetch("pages-limit.test", "/sign-in", { method: "POST", form: { csrf: await ok.token("pages-limit.test"), email, password: PASSWORD } });
    expect(res.status).toBe(303);
  });
});

describe("the apex site", () => {
  it("shows a landing page with a sign-up link to the sign-up form, instead of 403", async () => {
    const browser = new Browser();
    const home = await browser.fetch("localhost", "/");
    expect(home.status).toBe(200);
    const html = await home.text();
    expect(html).toContain('href="/sign-up"');
    const signUp = await browser.fetch("localhost", "/sign-up");
    expect(signUp.status).toBe(200);
    expect(await signUp.text()).toContain('<form method="post" action="/signup">');
  });
});

describe("/docs", () => {
  // The vitest pool's exports.default does not serve static assets (wrangler dev does: the Chromium
  // test in test/e2e/browser.e2e.test.ts loads them); here, the page the Worker itself answers.
  it("loads Swagger UI from the site's own assets, nothing from another origin", async () => {
    const docs = await exports.default.fetch("http://pages-a.test/docs");
    expect(docs.status).toBe(200);
    const html = await docs.text();
    expect(html).toMatch(/<html lang="en">/);
    expect(html).toContain('<link rel="stylesheet" href="/vendor/swagger-ui/swagger-ui.css">');
    expect(html).toContain('<script src="/vendor/swagger-ui/swagger-ui-bundle.js"></script>');
    expect(html).toContain("validatorUrl: null");
    expect(html).not.toMatch(/https?:\/\//);
  });
});
