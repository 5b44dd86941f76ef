// Each host sees only its own tenant's data, however requests interleave.
import { describe, expect, it } from "vitest";
import { adminToken, request, signInAs } from "./helpers.ts";

type User = { id: number; email: string; items: Array<{ title: string }> };

async function createUser(host: string, email: string): Promise<User> {
  const res = await request(host, { path: "/users", method: "POST", body: { email, password: "correct-horse" } });
  expect(res.status).toBe(201);
  return res.json<User>();
}

describe("tenant isolation", () => {
  it("gives two tenants each their own user 1, items and writes", async () => {
    const acmeUser = await createUser("acme.test", "road.runner@acme.test");
    const globexUser = await createUser("globex.test", "hank@globex.test");
    expect(acmeUser.id).toBe(1);
    expect(globexUser.id).toBe(1);
    // Each tenant's first user is made its admin (as an operator would) and signs in there.
    const acmeToken = await signInAs("acme.test", "road.runner@acme.test", "correct-horse", { admin: true });
    const globexToken = await signInAs("globex.test", "hank@globex.test", "correct-horse", { admin: true });

    const item = await request("acme.test", { token: acmeToken, path: "/users/1/items", method: "POST", body: { title: "Rocket skates" } });
    expect(item.status).toBe(201);

    const acme = await (await request("acme.test", { token: acmeToken, path: "/users/1" })).json<User>();
    const globex = await (await request("globex.test", { token: globexToken, path: "/users/1" })).json<User>();
    expect(acme.email).toBe("road.runner@acme.test");
    expect(acme.items.map((i) => i.title)).toEqual(["Rocket skates"]);
    expect(globex.email).toBe("hank@globex.test");
    expect(globex.items).toEqual([]);

    const globexItems = await (await request("globex.test", { token: globexToken, path: "/items" })).json<unknown[]>();
    expect(globexItems).toEqual([]);
    const globexUsers = await (await request("globex.test", { token: globexToken, path: "/users" })).json<User[]>();
    expect(globexUsers.map((u) => u.email)).toEqual(["hank@globex.test"]);
  });

  it("answers a tenant's other host with the same tenant", async () => {
    const res = await request("www.acme.example", { path: "/tenant" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ slug: "acme" });
  });

  it("keeps a random-order, concurrent mix of requests each on the tenant its host names", async () => {
    const slugs = ["initech", "umbrella", "hooli"];
    for (const slug of slugs) await createUser(`${slug}.test`, `owner@${slug}.test`);

    const calls = Array.from({ length: 90 }, (_, i) => {
      const slug = slugs[(i * 7 + (i % 5)) % slugs.length]!;
      const kind = i % 3;
      return { slug, kind, i };
    }).sort(() => Math.random() - 0.5);

    const results = await Promise.all(
      calls.map(async ({ slug, kind, i }) => {
        const host = `${slug}.test`;
        if (kind === 0) {
          const res = await request(host, { path: "/tenant" });
          return { slug, ok: res.status === 200 && (await res.json<{ slug: string }>()).slug === slug };
        }
        if (kind === 1) {
          const res = await request(host, { token: await adminToken(host), path: "/users/1/items", method: "POST", body: { title: `${slug}-item-${i}` } });
          return { slug, ok: res.status === 201 };
        }
        const res = await request(host, { token: await adminToken(host), path: "/users/1" });
        const user = await res.json<User>();
        return { slug, ok: res.status === 200 && user.email === `owner@${slug}.test` && user.items.every((it) => it.title.startsWith(`${slug}-`)) };
      }),
    );
    expect(results.filter((r) => !r.ok)).toEqual([]);

    for (const slug of slugs) {
      const items = await (await request(`${slug}.test`, { token: await adminToken(`${slug}.test`), path: "/items?limit=100" })).json<Array<{ title: string }>>();
      const expected = calls.filter((c) => c.slug === slug && c.kind === 1).length;
      expect(items).toHaveLength(expected);
      expect(items.every((it) => it.title.startsWith(`${slug}-item-`))).toBe(true);
    }
  });
});
