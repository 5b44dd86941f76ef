// Where tenants live on a Citus cluster, and moving them: `tenants placement`, `tenants move <slug>
// --to <node>`, `tenants rebalance`. Each tenant schema is a Citus distributed schema, placed whole on
// one node; Citus moves it online (citus_schema_move, logical replication) and its rebalancer
// spreads schemas over the workers (citus_rebalance_start). cli.ts dispatches here.
// docs/citus-placement.md describes the commands.
import type pg from "pg";
import { slugError } from "../../src/tenancy/naming.ts";
import { UsageError } from "../cli-support.ts";
import { citusVersion } from "../db/citus.ts";
import { TenantCommandError } from "./operations.ts";

export const PLACEMENT_COMMANDS = ["placement", "move", "rebalance"] as const;

export const PLACEMENT_OPTIONS = {
  to: { type: "string" },
  mode: { type: "string" },
} as const;

/** Citus' shard_transfer_mode values (citus_schema_move, citus_rebalance_start). */
export const TRANSFER_MODES = ["auto", "force_logical", "block_writes"] as const;
export type TransferMode = (typeof TRANSFER_MODES)[number];

export const PLACEMENT_HELP = `  placement [--json]                      Citus only: which node holds each tenant (its schema and size), and
                                          per-node totals (tenants, warm-pool slots, bytes)
  move <slug> --to <node> [--mode <mode>] [--json]
                                          Citus only: move a tenant's schema to another node, online (Citus'
                                          citus_schema_move; the Worker keeps serving it). <node> as placement
                                          names it (worker2), its host:port, or its port. --mode: auto (default:
                                          logical replication, writes continue), force_logical, block_writes
  rebalance [--dry-run] [--mode <mode>] [--json]
                                          Citus only: run Citus' rebalancer (tenant schemas spread evenly over
                                          the workers) and wait for it; prints which tenants moved where.
                                          --dry-run prints the planned moves and changes nothing`;

/** A node of the cluster that can hold tenants (a primary in pg_dist_node). */
export interface PlacementNode {
  /** `coordinator` (group 0), else `worker<group id>`: stable while the node stays in the cluster. */
  name: string;
  /** host:port as registered in pg_dist_node (a Unix socket folder for the local cluster). */
  address: string;
  host: string;
  port: number;
  nodeId: number;
  groupId: number;
  /** False for a node that takes no shards (the coordinator, usually). */
  shouldHaveShards: boolean;
  active: boolean;
}

export interface TenantPlacement {
  slug: string;
  schema: string;
  status: string;
  /** The node's name (see PlacementNode.name), or null for a schema with no tables. */
  node: string | null;
  address: string | null;
  /** False for a schema that is not a Citus distributed schema (its tables stay on the coordinator). */
  distributed: boolean;
  bytes: number;
}

export interface NodeTotals extends PlacementNode {
  tenants: number;
  poolSlots: number;
  /** Bytes of every tenant schema and pool slot on the node. */
  bytes: number;
}

export interface Placement {
  citusVersion: string;
  nodes: NodeTotals[];
  tenants: TenantPlacement[];
}

/** pg_size_pretty's units: bytes, kB, MB, GB, TB (1024 each). */
export function formatBytes(bytes: number): string {
  const units = ["kB", "MB", "GB", "TB"];
  if (bytes < 10 * 1024) return `${bytes} bytes`;
  let value = bytes;
  let unit = "bytes";
  for (const u of units) {
    if (value < 10 * 1024) break;
    value /= 1024;
    unit = u;
  }
  return `${Math.round(value)} ${unit}`;
}

/** Refuses (exit 2, one line) unless the database is a Citus coordinator; returns Citus' version. */
export async function requireCitus(client: pg.ClientBase, command: string): Promise<string> {
  const version = await citusVersion(client);
  if (!version) {
    throw new UsageError(
      `${command} needs Citus: this database has no citus extension, so every tenant lives on this one server ` +
        "(see docs/citus-placement.md)",
    );
  }
  return version;
}

function nodeName(groupId: number): string {
  return groupId === 0 ? "coordinator" : `worker${groupId}`;
}

/** The primary nodes of the cluster, in group order. */
export async function listNodes(client: pg.ClientBase): Promise<PlacementNode[]> {
  const { rows } = await client.query<{ nodeid: number; groupid: number; nodename: string; nodeport: number; isactive: boolean; shouldhaveshards: boolean }>(
    "SELECT nodeid, groupid, nodename, nodeport, isactive, shouldhaveshards FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid, nodeid",
  );
  return rows.map((r) => ({
    name: nodeName(r.groupid),
    address: `${r.nodename}:${r.nodeport}`,
    host: r.nodename,
    port: r.nodeport,
    nodeId: r.nodeid,
    groupId: r.groupid,
    shouldHaveShards: r.shouldhaveshards,
    active: r.isactive,
  }));
}

interface SchemaPlace {
  schema: string;
  groupId: number | null;
  distributed: boolean;
  bytes: number;
}

/**
 * Every tenant-named schema's place: a distributed schema's group (from its colocation group's shard
 * placements) and size (citus_shard_sizes, asked of every node once); a schema that is not
 * distributed is on the coordinator (group 0), sized there.
 */
async function schemaPlaces(client: pg.ClientBase): Promise<Map<string, SchemaPlace>> {
  const { rows } = await client.query<{ schema: string; groupid: number | null; distributed: boolean; bytes: string }>(
    `WITH sizes AS (SELECT shard_id, max(size) AS size FROM citus_shard_sizes() GROUP BY shard_id),
     distributed AS (
       SELECT ds.schemaid, min(p.groupid) AS groupid, coalesce(sum(sz.size), 0) AS bytes
       FROM pg_dist_schema ds
       LEFT JOIN pg_dist_partition dp ON dp.colocationid = ds.colocationid
       LEFT JOIN pg_dist_shard s ON s.logicalrelid = dp.logicalrelid
       LEFT JOIN pg_dist_placement p ON p.shardid = s.shardid AND p.shardstate = 1
       LEFT JOIN sizes sz ON sz.shard_id = s.shardid
       GROUP BY ds.schemaid
     )
     SELECT n.nspname AS schema,
            CASE WHEN d.schemaid IS NOT NULL THEN d.groupid ELSE 0 END AS groupid,
            d.schemaid IS NOT NULL AS distributed,
            CASE WHEN d.schemaid IS NOT NULL THEN d.bytes
                 ELSE (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                       WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p', 'm')) END AS bytes
     FROM pg_namespace n LEFT JOIN distributed d ON d.schemaid = n.oid
     WHERE n.nspname LIKE 'tenant\\_%' ESCAPE '\\'`,
  );
  return new Map(rows.map((r) => [r.schema, { schema: r.schema, groupId: r.groupid, distributed: r.distributed, bytes: Number(r.bytes) }]));
}

async function relationExists(client: pg.ClientBase, name: string): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ok", [name]);
  return rows[0]!.ok;
}

async function requireCatalog(client: pg.ClientBase): Promise<void> {
  if (!(await relationExists(client, "shared.tenants"))) {
    throw new TenantCommandError("the database is not initialized: run `npm run tenants -- init` first");
  }
}

/** The tenants (and unclaimed pool slots) with the node that holds each, and per-node totals. */
export async function readPlacement(client: pg.ClientBase): Promise<Placement> {
  const version = await requireCitus(client, "placement");
  await requireCatalog(client);
  const nodes = await listNodes(client);
  const places = await schemaPlaces(client);
  const deleted = await relationExists(client, "shared.deleted_tenants");
  const { rows } = await client.query<{ slug: string; schema: string; status: string }>(
    `SELECT t.slug, t.schema_name AS schema,
            ${deleted ? "CASE WHEN d.tenant_id IS NOT NULL THEN 'deleted' ELSE t.status::text END" : "t.status::text"} AS status
     FROM shared.tenants t ${deleted ? "LEFT JOIN shared.deleted_tenants d ON d.tenant_id = t.id" : ""}
     ORDER BY t.slug`,
  );
  const pool = (await relationExists(client, "shared.tenant_pool"))
    ? (await client.query<{ schema: string }>("SELECT schema_name AS schema FROM shared.tenant_pool WHERE claimed_at IS NULL")).rows.map((r) => r.schema)
    : [];
  const byGroup = new Map(nodes.map((n) => [n.groupId, n]));
  const totals = new Map<number, NodeTotals>(nodes.map((n) => [n.groupId, { ...n, tenants: 0, poolSlots: 0, bytes: 0 }]));
  const tenants: TenantPlacement[] = rows.map((r) => {
    const place = places.get(r.schema);
    const node = place?.groupId != null ? byGroup.get(place.groupId) : undefined;
    const total = node && totals.get(node.groupId);
    if (total) {
      total.tenants++;
      total.bytes += place!.bytes;
    }
    return {
      slug: r.slug,
      schema: r.schema,
      status: r.status,
      node: node?.name ?? null,
      address: node?.address ?? null,
      distributed: place?.distributed ?? false,
      bytes: place?.bytes ?? 0,
    };
  });
  for (const schema of pool) {
    const place = places.get(schema);
    const total = place?.groupId != null ? totals.get(place.groupId) : undefined;
    if (total) {
      total.poolSlots++;
      total.bytes += place!.bytes;
    }
  }
  return { citusVersion: version, nodes: [...totals.values()], tenants };
}

function columns(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

export function describePlacement(p: Placement): string {
  const tenantTable = p.tenants.length
    ? columns(
        ["SLUG", "SCHEMA", "NODE", "SIZE", "STATUS"],
        p.tenants.map((t) => [
          t.slug,
          t.schema,
          t.node ? (t.distributed ? t.node : `${t.node} (not distributed)`) : "(no tables)",
          formatBytes(t.bytes),
          t.status,
        ]),
      )
    : "No tenants yet.";
  const nodeTable = columns(
    ["NODE", "ADDRESS", "TENANTS", "POOL SLOTS", "SIZE", ""],
    p.nodes.map((n) => [
      n.name,
      n.address,
      String(n.tenants),
      String(n.poolSlots),
      formatBytes(n.bytes),
      [n.active ? "" : "inactive", n.shouldHaveShards ? "" : "takes no shards"].filter(Boolean).join(", "),
    ]),
  );
  return `${tenantTable}\n\n${nodeTable}`;
}

/**
 * The node `spec` names: a name as `placement` prints it (worker2, coordinator), host:port, or a
 * port alone when one node has it.
 */
export function resolveNode(nodes: PlacementNode[], spec: string): PlacementNode {
  const wanted = spec.trim();
  const listed = () => nodes.map((n) => `${n.name} (${n.address})`).join(", ");
  const byName = nodes.find((n) => n.name === wanted.toLowerCase());
  if (byName) return byName;
  const byAddress = nodes.find((n) => n.address === wanted);
  if (byAddress) return byAddress;
  if (/^\d{1,5}$/.test(wanted)) {
    const byPort = nodes.filter((n) => n.port === Number(wanted));
    if (byPort.length === 1) return byPort[0]!;
    if (byPort.length > 1) throw new TenantCommandError(`several nodes listen on port ${wanted}: name one of ${byPort.map((n) => n.name).join(", ")}`);
  }
  throw new TenantCommandError(`no node "${spec}" in this cluster: use one of ${listed()} (see \`npm run tenants -- placement\`)`);
}

export interface MoveResult {
  slug: string;
  schema: string;
  from: { node: string; address: string };
  to: { node: string; address: string };
  bytes: number;
  mode: TransferMode;
  seconds: number;
  /** When citus_schema_move was called and when it returned (ISO 8601). */
  startedAt: string;
  finishedAt: string;
}

/** Citus' own message, as one line. */
function citusMessage(error: unknown): string {
  const e = error as { message?: string; code?: string };
  return `${(e.message ?? String(error)).split("\n")[0]}${e.code ? ` (SQLSTATE ${e.code})` : ""}`;
}

/**
 * Refuses an online move (logical replication: modes auto and force_logical) while a node that holds
 * tenants runs with synchronous_commit = off. Seen on this project's local cluster: with it off,
 * citus_schema_move under load lost writes the Worker had acknowledged during the move (4 of 6
 * runs of test/lifecycle/placement-move-under-load.test.ts; 0 of 6 with it on). Citus waits for the
 * new node to replay the old one's WAL up to pg_current_wal_lsn(), and asynchronous commits are
 * acknowledged before their WAL is flushed and sent. block_writes copies under a lock instead.
 * Only the value sessions of the command's own role get is seen (server and database settings; a
 * role-level setting for the app role is not).
 */
export async function requireSafeOnlineMove(client: pg.ClientBase, mode: TransferMode, what: string): Promise<void> {
  if (mode === "block_writes") return;
  const { rows } = await client.query<{ nodename: string; nodeport: number; groupid: number; success: boolean; result: string }>(
    `SELECT n.nodename, n.nodeport, n.groupid, r.success, r.result
     FROM run_command_on_all_nodes('SHOW synchronous_commit') r JOIN pg_dist_node n USING (nodeid)
     WHERE n.noderole = 'primary' AND n.shouldhaveshards ORDER BY n.groupid`,
  );
  const off = rows.filter((r) => r.success && r.result === "off");
  if (!off.length) return;
  const names = off.map((r) => `${nodeName(r.groupid)} (${r.nodename}:${r.nodeport})`).join(", ");
  throw new TenantCommandError(
    `refusing to ${what} online: synchronous_commit is off on ${names}, and an online move (logical replication) can then ` +
      `lose writes acknowledged while it runs. Set synchronous_commit to on (or local) on those nodes, or move with ` +
      `--mode block_writes (writes to the moving tenants wait until the copy ends; reads go on). See docs/citus-placement.md`,
  );
}

/** Moves a tenant's distributed schema to `to` with citus_schema_move (online by default). */
export async function moveTenant(client: pg.ClientBase, slug: string, to: string, mode: TransferMode = "auto"): Promise<MoveResult> {
  await requireCitus(client, "move");
  await requireCatalog(client);
  const { rows } = await client.query<{ schema: string }>("SELECT schema_name AS schema FROM shared.tenants WHERE slug = $1", [slug]);
  if (!rows.length) throw new TenantCommandError(`no tenant ${slug}: see \`npm run tenants -- list\``);
  const schema = rows[0]!.schema;
  const nodes = await listNodes(client);
  const target = resolveNode(nodes, to);
  const place = (await schemaPlaces(client)).get(schema);
  if (!place) throw new TenantCommandError(`tenant ${slug}'s schema ${schema} does not exist in this database`);
  if (!place.distributed) {
    throw new TenantCommandError(
      `tenant ${slug}'s schema ${schema} is not a Citus distributed schema (its tables are local to the coordinator): ` +
        `distribute it first (SELECT citus_schema_distribute('${schema}'), see docs/citus-placement.md)`,
    );
  }
  const source = nodes.find((n) => n.groupId === place.groupId);
  if (!source) throw new TenantCommandError(`tenant ${slug}'s schema ${schema} has no tables yet, so Citus has not placed it on a node`);
  if (source.groupId === target.groupId) {
    throw new TenantCommandError(`tenant ${slug} is already on ${target.name} (${target.address}): nothing to move`);
  }
  if (!target.shouldHaveShards) {
    throw new TenantCommandError(
      `${target.name} (${target.address}) takes no shards (pg_dist_node.shouldhaveshards is false): choose a worker, ` +
        `or let it hold tenants with SELECT citus_set_node_property('${target.host}', ${target.port}, 'shouldhaveshards', true)`,
    );
  }
  if (!target.active) throw new TenantCommandError(`${target.name} (${target.address}) is not active in the cluster: choose another node`);
  await requireSafeOnlineMove(client, mode, `move tenant ${slug}`);
  const startedAt = new Date();
  const started = performance.now();
  try {
    await client.query("SELECT citus_schema_move($1::regnamespace, $2::int, $3::citus.shard_transfer_mode)", [schema, target.nodeId, mode]);
  } catch (error) {
    throw new TenantCommandError(`Citus refused to move tenant ${slug} (${schema}) to ${target.name}: ${citusMessage(error)}`);
  }
  return {
    slug,
    schema,
    from: { node: source.name, address: source.address },
    to: { node: target.name, address: target.address },
    bytes: place.bytes,
    mode,
    seconds: (performance.now() - started) / 1000,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
  };
}

export interface SchemaMove {
  /** The tenant's slug, or null for a warm-pool slot (or a schema not in the catalog). */
  slug: string | null;
  schema: string;
  from: string;
  to: string;
  bytes: number;
}

export interface RebalanceResult {
  /** Citus' background job id (null when there was nothing to move). */
  jobId: number | null;
  dryRun: boolean;
  moves: SchemaMove[];
  seconds: number;
}

async function schemaOwners(client: pg.ClientBase): Promise<Map<string, string>> {
  const { rows } = await client.query<{ schema: string; slug: string }>("SELECT schema_name AS schema, slug FROM shared.tenants");
  return new Map(rows.map((r) => [r.schema, r.slug]));
}

/**
 * Citus' rebalancer: the planned moves (dry run), or a background rebalance job started and waited
 * for; the moves reported are the tenant schemas whose node changed.
 */
export async function rebalance(client: pg.ClientBase, options: { dryRun?: boolean; mode?: TransferMode } = {}): Promise<RebalanceResult> {
  await requireCitus(client, "rebalance");
  await requireCatalog(client);
  const nodes = await listNodes(client);
  const nameOf = (group: number | null | undefined) => nodes.find((n) => n.groupId === group)?.name ?? `group ${group}`;
  const owners = await schemaOwners(client);
  const started = performance.now();
  if (options.dryRun) {
    const { rows } = await client.query<{ schema: string; shard_size: string; sourcename: string; sourceport: number; targetname: string; targetport: number }>(
      `SELECT c.relnamespace::regnamespace::text AS schema, p.shard_size, p.sourcename, p.sourceport, p.targetname, p.targetport
       FROM get_rebalance_table_shards_plan() p JOIN pg_class c ON c.oid = p.table_name`,
    );
    const byAddress = (host: string, port: number) => nodes.find((n) => n.host === host && n.port === port)?.name ?? `${host}:${port}`;
    const moves = new Map<string, SchemaMove>();
    for (const r of rows) {
      // A schema's tables move together (one colocation group): report the schema once.
      const move = moves.get(r.schema) ?? { slug: owners.get(r.schema) ?? null, schema: r.schema, from: byAddress(r.sourcename, r.sourceport), to: byAddress(r.targetname, r.targetport), bytes: 0 };
      move.bytes += Number(r.shard_size);
      moves.set(r.schema, move);
    }
    const places = await schemaPlaces(client);
    for (const m of moves.values()) m.bytes = places.get(m.schema)?.bytes ?? m.bytes;
    return { jobId: null, dryRun: true, moves: [...moves.values()], seconds: (performance.now() - started) / 1000 };
  }
  await requireSafeOnlineMove(client, options.mode ?? "auto", "rebalance");
  const before = await schemaPlaces(client);
  let jobId: number | null;
  try {
    const { rows } = await client.query<{ job: string | null }>("SELECT citus_rebalance_start(shard_transfer_mode := $1::citus.shard_transfer_mode) AS job", [
      options.mode ?? "auto",
    ]);
    jobId = rows[0]!.job === null ? null : Number(rows[0]!.job);
    if (jobId !== null) await client.query("SELECT citus_rebalance_wait()");
  } catch (error) {
    throw new TenantCommandError(`Citus' rebalancer failed: ${citusMessage(error)} (see SELECT * FROM citus_rebalance_status())`);
  }
  if (jobId !== null) {
    const { rows } = await client.query<{ state: string }>("SELECT state::text FROM citus_rebalance_status()");
    const state = rows[0]?.state;
    if (state && state !== "finished") {
      throw new TenantCommandError(`Citus' rebalance job ${jobId} ended ${state}: see SELECT * FROM citus_rebalance_status()`);
    }
  }
  const after = await schemaPlaces(client);
  const moves: SchemaMove[] = [];
  for (const [schema, place] of after) {
    const was = before.get(schema);
    if (!was || !place.distributed || was.groupId === place.groupId) continue;
    moves.push({ slug: owners.get(schema) ?? null, schema, from: nameOf(was.groupId), to: nameOf(place.groupId), bytes: place.bytes });
  }
  moves.sort((a, b) => (a.slug ?? "~" + a.schema).localeCompare(b.slug ?? "~" + b.schema));
  return { jobId, dryRun: false, moves, seconds: (performance.now() - started) / 1000 };
}

export function describeRebalance(r: RebalanceResult): string {
  const what = (m: SchemaMove) => (m.slug ? `tenant ${m.slug} (${m.schema})` : `pool slot ${m.schema}`);
  if (!r.moves.length) {
    return r.dryRun ? "Dry run: the cluster is balanced; the rebalancer would move nothing." : "The cluster is balanced: nothing moved.";
  }
  const lines = r.moves.map((m) => `  ${what(m)}: ${m.from} -> ${m.to} (${formatBytes(m.bytes)})`);
  return r.dryRun
    ? [`Dry run: the rebalancer would move ${r.moves.length} schema(s); nothing changed:`, ...lines].join("\n")
    : [`Rebalanced (Citus job ${r.jobId}) in ${r.seconds.toFixed(1)} s: moved ${r.moves.length} schema(s):`, ...lines].join("\n");
}

type Values = Record<string, string | boolean | string[] | undefined>;

interface Plan {
  run(client: pg.Client): Promise<string[] | void>;
  changes: boolean;
}

function transferMode(values: Values): TransferMode {
  const mode = values.mode as string | undefined;
  if (mode === undefined) return "auto";
  if (!(TRANSFER_MODES as readonly string[]).includes(mode)) {
    throw new UsageError(`unknown --mode "${mode}": use ${TRANSFER_MODES.join(", ")} (Citus' shard_transfer_mode)`);
  }
  return mode as TransferMode;
}

/** Checks a placement command's arguments (no I/O) and returns what it will do. */
export function planPlacementCommand(command: string, rest: string[], values: Values): Plan {
  const json = values.json === true;
  if (command !== "move" && values.to !== undefined) throw new UsageError("--to goes with move <slug> --to <node>");
  if (command === "placement" && values.mode !== undefined) throw new UsageError("--mode goes with move and rebalance");
  if (command !== "rebalance" && values["dry-run"] === true) throw new UsageError("--dry-run goes with rebalance");
  switch (command) {
    case "placement": {
      if (rest.length) throw new UsageError("usage: npm run tenants -- placement [--json]");
      return {
        changes: false,
        async run(client) {
          const placement = await readPlacement(client);
          console.log(json ? JSON.stringify(placement, null, 2) : describePlacement(placement));
        },
      };
    }
    case "move": {
      const usage = "usage: npm run tenants -- move <slug> --to <node> [--mode auto|force_logical|block_writes] [--json]";
      if (rest.length !== 1) throw new UsageError(usage);
      const to = values.to as string | undefined;
      if (to === undefined || !to.trim()) throw new UsageError(`move needs the node to move to: --to worker2 (names as \`npm run tenants -- placement\` prints them); ${usage}`);
      const slug = rest[0]!;
      const problem = slugError(slug);
      if (problem) throw new TenantCommandError(problem);
      const mode = transferMode(values);
      return {
        changes: false,
        async run(client) {
          const moved = await moveTenant(client, slug, to, mode);
          console.log(
            json
              ? JSON.stringify(moved, null, 2)
              : `Moved tenant ${moved.slug} (${moved.schema}, ${formatBytes(moved.bytes)}) from ${moved.from.node} (${moved.from.address}) ` +
                  `to ${moved.to.node} (${moved.to.address}) in ${moved.seconds.toFixed(1)} s (${moved.mode}).`,
          );
        },
      };
    }
    case "rebalance": {
      if (rest.length) throw new UsageError("usage: npm run tenants -- rebalance [--dry-run] [--mode auto|force_logical|block_writes] [--json]");
      const mode = transferMode(values);
      const dryRun = values["dry-run"] === true;
      return {
        changes: false,
        async run(client) {
          const result = await rebalance(client, { dryRun, mode });
          console.log(json ? JSON.stringify(result, null, 2) : describeRebalance(result));
        },
      };
    }
  }
  throw new UsageError(`unknown command "${command}" (see --help)`);
}
