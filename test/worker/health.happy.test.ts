import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";

describe("GET /health inside workerd", () => {
  it("answers with a query made through neon() and drizzle over the local endpoint", async () => {
    const res = await exports.default.fetch("http://localhost/health");
    expect(res.status).toBe(200);
    const body = await res.json<{ status: string; database: { name: string; time: string } }>();
    expect(body.status).toBe("ok");
    expect(body.database.name).toBe(new URL(env.DATABASE_URL!).pathname.slice(1));
    expect(Date.parse(body.database.time)).not.toBeNaN();
  });
});
