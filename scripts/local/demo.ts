// What `npm run dev` prepares before starting the Worker: the database initialized and migrated,
// and two demo tenants with a few users and items, created only when missing.
import { drizzle } from "drizzle-orm/node-postgres";
import { tenantTables } from "../../src/db/schema/tenant.ts";
import { hashPassword } from "../../src/security/password.ts";
import { connect } from "../db/connect.ts";
import { loadMigrations } from "../migrations/files.ts";
import { migrate } from "../migrations/runner.ts";
import { purgeLocal } from "../tenants/cache-purge.ts";
import { createTenant, initDatabase, showTenant } from "../tenants/operations.ts";
import { fillPool } from "../tenants/pool.ts";

/** Unclaimed warm-pool slots `npm run dev` keeps, for sign-up on the apex. */
const DEMO_POOL_SIZE = 3;

/** Every demo user's password (local demo data only); the first user of each tenant is its admin. */
export const DEMO_PASSWORD = "demo-password";

const DEMO_TENANTS = [
  {
    slug: "acme",
    name: "Acme Corporation",
    host: "acme.localhost",
    users: [
      { email: "wile@acme.test", fullName: "Wile E. Coyote", items: ["Rocket skates", "Giant magnet"], admin: true },
      { email: "road@acme.test", fullName: "Road Runner", items: ["Birdseed"] },
    ],
  },
  {
    slug: "globex",
    name: "Globex Corporation",
    host: "globex.localhost",
    users: [{ email: "hank@globex.test", fullName: "Hank Scorpio", items: ["Doomsday device", "Hammock"], admin: true }],
  },
];

export async function prepareDemoDatabase(url: string, log: (line: string) => void = console.log): Promise<string[]> {
  const client = await connect(url);
  try {
    const migrations = loadMigrations();
    if (await initDatabase(client, migrations)) log("database initialized");
    const result = await migrate(client, { migrations });
    if (result.applied) log(`migrated: ${result.plan.shared.length} shared migration(s), ${result.plan.tenants.length} tenant(s)`);
    const urls: string[] = [];
    for (const demo of DEMO_TENANTS) {
      if (!(await showTenant(client, demo.slug))) {
        const tenant = await createTenant(client, migrations, { slug: demo.slug, name: demo.name, hosts: [demo.host] });
        const { users, items } = tenantTables(tenant.schema);
        const db = drizzle({ client });
        for (const u of demo.users) {
          const [user] = await db
            .insert(users)
            .values({
              email: u.email,
              fullName: u.fullName,
              hashedPassword: await hashPassword(DEMO_PASSWORD),
              role: "admin" in u && u.admin ? "admin" : "member",
            })
            .returning({ id: users.id });
          await db.insert(items).values(u.items.map((title) => ({ title, ownerId: user!.id, status: "published" as const })));
        }
        // A local KV left from an earlier database may still answer for this host.
        await purgeLocal([demo.host]);
        log(`demo tenant ${demo.slug} created with ${demo.users.length} user(s)`);
      }
      urls.push(`http://${demo.host}`);
    }
    // A few warm-pool slots, so that sign-up on http://localhost works (docs/signup.md).
    const pool = await fillPool(client, migrations, DEMO_POOL_SIZE);
    if (pool.created) log(`warm pool: ${pool.created} slot(s) created, ${pool.size} unclaimed (sign up at http://localhost/sign-up)`);
    return urls;
  } finally {
    await client.end();
  }
}
