// `npm run tenants -- placement | move <slug> --to <node> | rebalance` on the local Citus cluster
// (TEST_CITUS=1): which node holds each tenant as the nodes themselves report it, a move that puts
// the tenant's tables on the other worker with every row intact, the rebalancer spreading tenants
// out again, every bad input refused with one line and nothing changed; and on plain PostgreSQL
// the one-line refusal (exit 2).
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { citusLayout, connectTo, dropTestDatabases, freshDatabase, onCitus, show, tenantsCli } from "../support/database.ts";
import { tenantRows } from "../support/placement.ts";

vi.setConfig({ testTimeout: 180_000, hookTimeout: 180_000 });
afterAll(dropTestDatabases);

const TENANTS = ["acme", "globex", "initech"] as const;

interface PlacementJson {
  citusVersion: string;
  nodes: Array<{ name: string; address: string; host: string; port: number; nodeId: number; groupId: number; tenants: number; poolSlots: number; bytes: number; shouldHaveShards: boolean }>;
  tenants: Array<{ slug: string; schema: string; node: string | null; address: string | null; distributed: boolean; bytes: number; status: string }>;
}

describe("on plain PostgreSQL", () => {
  let databaseUrl: string;
  beforeAll(async () => {
    // A database without the citus extension (on the Citus coordinator under TEST_CITUS=1: a plain
    // database there, which Citus does not propagate to the workers).
    const server = new URL(inject("databaseUrl"));
    server.searchParams.set("application_name", "plain");
    databaseUrl = await freshDatabase("place_plain", server.toString());
    for (const args of [["init"], ["create", "acme", "--name", "Acme", "--host", "acme.example.com"]]) {
      const r = await tenantsCli({ databaseUrl }, ...args);
      expect(r.code, show(r)).toBe(0);
    }
  });

  it.each([
    ["placement", ["placement"]],
    ["move", ["move", "acme", "--to", "worker2"]],
    ["rebalance", ["rebalance"]],
  ])("%s says in one line that it needs Citus (exit 2)", async (command, args) => {
    const r = await tenantsCli({ databaseUrl }, ...args);
    expect(r.code, show(r)).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      `error: ${command} needs Citus: this database has no citus extension, so every tenant lives on this one server (see docs/citus-placement.md)\n`,
    );
  });
});

describe.skipIf(!onCitus)("on Citus", () => {
  let databaseUrl: string;
  let client: pg.Client;
  const cli = (...args: string[]) => tenantsCli({ databaseUrl }, ...args);
  const placement = async (): Promise<PlacementJson> => {
    const r = await cli("placement", "--json");
    expect(r.code, show(r)).toBe(0);
    return JSON.parse(r.stdout) as PlacementJson;
  };
  const nodeOf = async (slug: string) => (await placement()).tenants.find((t) => t.slug === slug)!.node!;
  const other = (node: string) => (node === "worker1" ? "worker2" : "worker1");
  const schemas: Record<string, string> = {};
  /** The warm pool's unclaimed slots (distributed schemas too). */
  let poolSchemas: string[] = [];

  /** The tenant tables whose shard (their rows) exists on a worker itself, asked of that worker over its socket. */
  async function tablesOnNode(port: number, schema: string): Promise<string[]> {
    const layout = citusLayout()!;
    const node = new pg.Client({ host: layout.socketDir, port, user: "postgres", database: new URL(databaseUrl).pathname.slice(1) });
    await node.connect();
    try {
      // Citus hides shards from pg_class for ordinary clients.
      await node.query("SET citus.override_table_visibility = off");
      // Shards are named <table>_<shard id> (every worker also has the tables' empty shells, unsuffixed).
      const { rows } = await node.query<{ name: string }>(
        "SELECT regexp_replace(relname, '_[0-9]+$', '') AS name FROM pg_class WHERE relnamespace = to_regnamespace($1) AND relkind = 'r' AND relname ~ '_[0-9]+$' ORDER BY 1",
        [schema],
      );
      return rows.map((r) => r.name);
    } finally {
      await node.end();
    }
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase("place_citus");
    client = await connectTo(databaseUrl);
    expect((await cli("init")).code).toBe(0);
    for (const slug of TENANTS) {
      const r = await cli("create", slug, "--name", slug, "--host", `${slug}.example.com`, "--no-pool", "--json");
      expect(r.code, show(r)).toBe(0);
      schemas[slug] = JSON.parse(r.stdout).schema;
    }
    const pool = await cli("pool", "fill", "--size", "2");
    expect(pool.code, show(pool)).toBe(0);
    poolSchemas = (await client.query<{ schema: string }>("SELECT schema_name AS schema FROM shared.tenant_pool WHERE claimed_at IS NULL ORDER BY 1")).rows.map((r) => r.schema);
    expect(poolSchemas).toHaveLength(2);
    const acme = schemas.acme!;
    await client.query(`INSERT INTO "${acme}".users (email, hashed_password) SELECT 'user' || g || '@acme.test', 'x' FROM generate_series(1, 50) g`);
    await client.query(`INSERT INTO "${acme}".items (title, owner_id) SELECT 'item ' || g, u.id FROM generate_series(1, 20) g, "${acme}".users u`);
  });

  it("placement lists every tenant on the worker that really holds its tables, with sizes and per-node totals", async () => {
    const p = await placement();
    const layout = citusLayout()!;
    expect(p.citusVersion).toMatch(/^\d+\.\d+/);
    expect(p.nodes.map((n) => [n.name, n.port, n.host])).toEqual([
      ["coordinator", layout.ports[0], layout.socketDir],
      ["worker1", layout.ports[1], layout.socketDir],
      ["worker2", layout.ports[2], layout.socketDir],
    ]);
    expect(p.tenants.map((t) => t.slug)).toEqual([...TENANTS]);
    for (const t of p.tenants) {
      expect(t.schema).toBe(schemas[t.slug]);
      expect(t.distributed).toBe(true);
      expect(["worker1", "worker2"]).toContain(t.node);
      const node = p.nodes.find((n) => n.name === t.node)!;
      expect(t.address).toBe(`${layout.socketDir}:${node.port}`);
      // The worker named holds the tenant's tables; the other one does not.
      expect(await tablesOnNode(node.port, t.schema)).toEqual(["items", "users"]);
      expect(await tablesOnNode(p.nodes.find((n) => n.name === other(t.node!))!.port, t.schema)).toEqual([]);
    }
    // acme has 1,000 items and 50 users: larger than the empty tenants.
    const size = (slug: string) => p.tenants.find((t) => t.slug === slug)!.bytes;
    expect(size("acme")).toBeGreaterThan(size("globex"));
    expect(size("globex")).toBeGreaterThan(0);
    // Per node: its tenants, and the pool slots on it (counted, and in its bytes).
    const { rows: slots } = await client.query<{ port: number }>(
      `SELECT DISTINCT c.relnamespace::regnamespace::text AS schema, s.nodeport AS port FROM citus_shards s JOIN pg_class c ON c.oid = s.table_name
       WHERE c.relnamespace::regnamespace::text = ANY($1)`,
      [poolSchemas],
    );
    expect(slots).toHaveLength(2);
    for (const n of p.nodes) {
      const here = p.tenants.filter((t) => t.node === n.name);
      expect(n.tenants).toBe(here.length);
      expect(n.poolSlots).toBe(slots.filter((s) => s.port === n.port).length);
      const tenantBytes = here.reduce((sum, t) => sum + t.bytes, 0);
      if (n.poolSlots) expect(n.bytes).toBeGreaterThan(tenantBytes);
      else expect(n.bytes).toBe(tenantBytes);
    }
    expect(p.nodes[0]!.shouldHaveShards).toBe(false);

    const text = await cli("placement");
    expect(text.code, show(text)).toBe(0);
    const lines = text.stdout.split("\n");
    expect(lines[0]).toMatch(/^SLUG\s+SCHEMA\s+NODE\s+SIZE\s+STATUS$/);
    const acme = p.tenants.find((t) => t.slug === "acme")!;
    expect(lines.find((l) => l.startsWith("acme "))).toMatch(new RegExp(`^acme\\s+${acme.schema}\\s+${acme.node}\\s+\\d+ (bytes|kB|MB)\\s+active$`));
    expect(lines.find((l) => l.startsWith("worker2 "))).toMatch(new RegExp(`^worker2\\s+\\S+:${layout.ports[2]}\\s+${p.nodes[2]!.tenants}\\s+${p.nodes[2]!.poolSlots}\\s+\\d+ (bytes|kB|MB)$`));
    expect(lines.find((l) => l.startsWith("coordinator "))).toContain("takes no shards");
  });

  it("move puts the tenant's tables on the other worker with every row intact, by name, port or host:port", async () => {
    const schema = schemas.acme!;
    const before = await tenantRows(client, schema);
    expect(before.users).toHaveLength(50);
    expect(before.items).toHaveLength(1000);
    const layout = citusLayout()!;
    const portOf = (name: string) => layout.ports[name === "worker1" ? 1 : 2]!;

    const from = await nodeOf("acme");
    const to = other(from);
    const moved = await cli("move", "acme", "--to", to, "--json");
    expect(moved.code, show(moved)).toBe(0);
    const result = JSON.parse(moved.stdout);
    expect(result).toMatchObject({ slug: "acme", schema, from: { node: from }, to: { node: to, address: `${layout.socketDir}:${portOf(to)}` }, mode: "auto" });
    expect(result.bytes).toBeGreaterThan(0);
    expect(await nodeOf("acme")).toBe(to);
    expect(await tablesOnNode(portOf(to), schema)).toEqual(["items", "users"]);
    // Citus drops the old copy later (deferred cleanup); made to happen now, nothing is left there.
    await client.query("CALL citus_cleanup_orphaned_resources()");
    expect(await tablesOnNode(portOf(from), schema)).toEqual([]);
    expect(await tenantRows(client, schema)).toEqual(before);
    // The ids go on from where they were (the sequences moved with the tables).
    const next = await client.query<{ id: number }>(`INSERT INTO "${schema}".users (email, hashed_password) VALUES ('after@acme.test', 'x') RETURNING id`);
    expect(next.rows[0]!.id).toBeGreaterThan(Math.max(...before.users.map((u) => u.id)));
    await client.query(`DELETE FROM "${schema}".users WHERE email = 'after@acme.test'`);

    // Back by port, then over again by host:port; the text output says from where to where.
    const back = await cli("move", "acme", "--to", String(portOf(from)));
    expect(back.code, show(back)).toBe(0);
    expect(back.stdout).toMatch(new RegExp(`^Moved tenant acme \\(${schema}, \\d+ (bytes|kB|MB)\\) from ${to} \\(\\S+\\) to ${from} \\(\\S+:${portOf(from)}\\) in \\d+\\.\\d s \\(auto\\)\\.\\n$`));
    expect(await nodeOf("acme")).toBe(from);
    const again = await cli("move", "acme", "--to", `${layout.socketDir}:${portOf(to)}`, "--mode", "force_logical");
    expect(again.code, show(again)).toBe(0);
    expect(await nodeOf("acme")).toBe(to);
    expect(await tenantRows(client, schema)).toEqual(before);
  });

  it("move refuses an unknown slug, an unknown node, the node it is on, and a node that takes no shards, changing nothing", async () => {
    const layout = citusLayout()!;
    const where = await nodeOf("globex");
    const cases: Array<[string[], number, string]> = [
      [["move", "nobody", "--to", "worker1"], 1, "error: no tenant nobody: see `npm run tenants -- list`"],
      [["move", "globex", "--to", "worker9"], 1, `error: no node "worker9" in this cluster: use one of coordinator (${layout.socketDir}:${layout.ports[0]}), worker1 (${layout.socketDir}:${layout.ports[1]}), worker2 (${layout.socketDir}:${layout.ports[2]}) (see \`npm run tenants -- placement\`)`],
      [["move", "globex", "--to", "1"], 1, `error: no node "1" in this cluster: use one of`],
      [["move", "globex", "--to", where], 1, `error: tenant globex is already on ${where} (${layout.socketDir}:${layout.ports[where === "worker1" ? 1 : 2]}): nothing to move`],
      [["move", "globex", "--to", "coordinator"], 1, `error: coordinator (${layout.socketDir}:${layout.ports[0]}) takes no shards (pg_dist_node.shouldhaveshards is false): choose a worker`],
      [["move", "Not-A-Slug", "--to", "worker1"], 1, "error: "],
      [["move", "globex"], 2, "error: move needs the node to move to: --to worker2"],
      [["move", "--to", "worker1"], 2, "error: usage: npm run tenants -- move <slug> --to <node>"],
      [["move", "globex", "--to", "worker1", "--mode", "fast"], 2, 'error: unknown --mode "fast": use auto, force_logical, block_writes'],
      [["placement", "extra"], 2, "error: usage: npm run tenants -- placement [--json]"],
      [["placement", "--to", "worker1"], 2, "error: --to goes with move <slug> --to <node>"],
      [["rebalance", "--mode", "slow"], 2, 'error: unknown --mode "slow"'],
    ];
    for (const [args, code, message] of cases) {
      const r = await cli(...args);
      expect(r.code, `${args.join(" ")}\n${show(r)}`).toBe(code);
      expect(r.stderr.startsWith(message), `${args.join(" ")}\n${show(r)}`).toBe(true);
      expect(r.stderr.trimEnd().split("\n"), show(r)).toHaveLength(1);
    }
    expect(await nodeOf("globex")).toBe(where);
  });

  it("move and rebalance refuse to run online while a worker has synchronous_commit off (writes can be lost); --mode block_writes moves", async () => {
    const layout = citusLayout()!;
    const database = new URL(databaseUrl).pathname.slice(1);
    /** Sets synchronous_commit for this database on worker2 itself (not propagated by Citus). */
    const onWorker2 = async (sql: string) => {
      const node = new pg.Client({ host: layout.socketDir, port: layout.ports[2]!, user: "postgres", database });
      await node.connect();
      try {
        await node.query("SET citus.enable_ddl_propagation = off");
        await node.query(sql);
      } finally {
        await node.end();
      }
    };
    const schema = schemas.globex!;
    const before = await tenantRows(client, schema);
    const from = await nodeOf("globex");
    const to = other(from);
    await onWorker2(`ALTER DATABASE "${database}" SET synchronous_commit = off`);
    try {
      const refused = await cli("move", "globex", "--to", to);
      expect(refused.code, show(refused)).toBe(1);
      expect(refused.stderr).toBe(
        `error: refusing to move tenant globex online: synchronous_commit is off on worker2 (${layout.socketDir}:${layout.ports[2]}), ` +
          "and an online move (logical replication) can then lose writes acknowledged while it runs. Set synchronous_commit to on " +
          "(or local) on those nodes, or move with --mode block_writes (writes to the moving tenants wait until the copy ends; " +
          "reads go on). See docs/citus-placement.md\n",
      );
      const rebalanceRefused = await cli("rebalance", "--mode", "force_logical");
      expect(rebalanceRefused.code, show(rebalanceRefused)).toBe(1);
      expect(rebalanceRefused.stderr).toMatch(/^error: refusing to rebalance online: synchronous_commit is off on worker2 /);
      expect(await nodeOf("globex")).toBe(from);

      const blocking = await cli("move", "globex", "--to", to, "--mode", "block_writes", "--json");
      expect(blocking.code, show(blocking)).toBe(0);
      expect(JSON.parse(blocking.stdout)).toMatchObject({ slug: "globex", from: { node: from }, to: { node: to }, mode: "block_writes" });
      expect(await nodeOf("globex")).toBe(to);
      expect(await tenantRows(client, schema)).toEqual(before);
    } finally {
      await onWorker2(`ALTER DATABASE "${database}" RESET synchronous_commit`);
    }
    // With it back on, the online move goes ahead.
    const back = await cli("move", "globex", "--to", from);
    expect(back.code, show(back)).toBe(0);
    expect(await nodeOf("globex")).toBe(from);
  });

  it("rebalance --dry-run shows what it would move; rebalance moves it and prints the moves; then the cluster is balanced", async () => {
    // Everything on worker1 first: the tenants with move, the pool slots with Citus' own function.
    for (const slug of TENANTS) if ((await nodeOf(slug)) !== "worker1") expect((await cli("move", slug, "--to", "worker1")).code).toBe(0);
    const worker1 = (await placement()).nodes.find((n) => n.name === "worker1")!;
    for (const schema of poolSchemas) {
      await client.query("SELECT citus_schema_move($1::regnamespace, $2::int) WHERE NOT EXISTS (SELECT 1 FROM citus_shards s JOIN pg_class c ON c.oid = s.table_name WHERE c.relnamespace = $1::regnamespace AND s.nodeport = $3)", [
        schema,
        worker1.nodeId,
        worker1.port,
      ]);
    }
    const crowded = await placement();
    expect(crowded.nodes.find((n) => n.name === "worker1")).toMatchObject({ tenants: 3, poolSlots: 2 });

    const dry = await cli("rebalance", "--dry-run", "--json");
    expect(dry.code, show(dry)).toBe(0);
    const plan = JSON.parse(dry.stdout);
    expect(plan.dryRun).toBe(true);
    expect(plan.moves.length).toBeGreaterThanOrEqual(1);
    for (const m of plan.moves) {
      if (m.slug === null) expect(poolSchemas).toContain(m.schema);
      else expect(schemas[m.slug]).toBe(m.schema);
      expect([m.from, m.to]).toEqual(["worker1", "worker2"]);
    }
    expect(await placement()).toEqual(crowded);

    const run = await cli("rebalance");
    expect(run.code, show(run)).toBe(0);
    const after = await placement();
    const moved = after.tenants.filter((t) => t.node === "worker2").map((t) => t.slug);
    const movedSlots = after.nodes.find((n) => n.name === "worker2")!.poolSlots;
    // Five schemas of two tables each on worker1: the rebalancer leaves two or three there.
    expect(moved.length + movedSlots).toBeGreaterThanOrEqual(2);
    expect(moved.length + movedSlots).toBeLessThanOrEqual(3);
    expect(run.stdout).toMatch(new RegExp(`^Rebalanced \\(Citus job \\d+\\) in \\d+\\.\\d s: moved ${moved.length + movedSlots} schema\\(s\\):\\n`));
    for (const slug of moved) expect(run.stdout).toMatch(new RegExp(`^ {2}tenant ${slug} \\(${schemas[slug]}\\): worker1 -> worker2 \\(\\d+ (bytes|kB|MB)\\)$`, "m"));
    expect(run.stdout.match(/^ {2}pool slot tenant_[a-z0-9]+: worker1 -> worker2 \(\d+ (bytes|kB|MB)\)$/gm) ?? []).toHaveLength(movedSlots);
    expect(await tenantRows(client, schemas.acme!)).toMatchObject({ users: expect.any(Array) });
    expect((await tenantRows(client, schemas.acme!)).items).toHaveLength(1000);

    const again = await cli("rebalance", "--json");
    expect(again.code, show(again)).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ jobId: null, dryRun: false, moves: [] });
    expect((await cli("rebalance")).stdout).toBe("The cluster is balanced: nothing moved.\n");
  });
});
