// A local Citus cluster for development and tests: a coordinator and two workers, ordinary
// PostgreSQL 15 servers (Debian's, as Citus is built for it) with the Citus extension, all on
// loopback. `npm run db -- --citus` and `npm run dev -- --citus` start it; tests get the same from
// test/global-setup.ts (TEST_CITUS=1).
//
// Clients reach the coordinator over TCP on 127.0.0.1 with a password (random, kept in the data
// folder like the embedded server's). The nodes reach each other over Unix sockets in a folder only
// the servers' OS user can enter (mode 0700), with `trust`: Citus opens connections between nodes as
// the client's own role (the app role, the owner), and nothing outside that folder can use them.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import { chmod, chown, lstat, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { credentialsPath, DEFAULT_CITUS_PORT, DEFAULT_DATABASE, embeddedDatabaseUrl, readEmbeddedCredentials } from "./defaults.ts";
import { freePortBlock, prepareDataDir, postgresUserIds, type LocalDatabase } from "./postgres.ts";

export { DEFAULT_CITUS_DATA_DIR, DEFAULT_CITUS_PORT } from "./defaults.ts";
/** The superuser of every node (it owns the database and runs migrations). */
const SUPERUSER = "postgres";
const NODE_NAMES = ["coordinator", "worker1", "worker2"] as const;

/** Debian's PostgreSQL 15, where Citus 13 is installed (CITUS_PG_BINDIR overrides). */
export function citusBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.CITUS_PG_BINDIR ?? "/usr/lib/postgresql/15/bin";
}

export class CitusUnavailableError extends Error {}

/**
 * Why a Citus cluster cannot start here, or undefined when it can: PostgreSQL 15's binaries and
 * the Citus extension must be installed (docs/citus.md says how).
 */
export function citusUnavailable(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const bin = citusBinDir(env);
  if (!existsSync(join(bin, "postgres")) || !existsSync(join(bin, "initdb"))) {
    return `PostgreSQL 15 is not installed (no ${join(bin, "postgres")}): install Debian's postgresql-15 and Citus 13 (docs/citus.md), or set CITUS_PG_BINDIR`;
  }
  const lib = resolve(bin, "../lib/citus.so");
  if (!existsSync(lib)) {
    return `the Citus extension is not installed into PostgreSQL 15 (no ${lib}): install Citus 13 for PostgreSQL 15 (docs/citus.md)`;
  }
  return undefined;
}

export interface CitusNode {
  name: (typeof NODE_NAMES)[number];
  /** TCP port on 127.0.0.1. */
  port: number;
  dataDir: string;
}

export interface CitusCluster extends LocalDatabase {
  nodes: CitusNode[];
  /** The Unix socket folder the nodes use between themselves (and tests as the superuser). */
  socketDir: string;
  /** The superuser's connection to `database` on one node, over its socket (tests, bootstrap). */
  nodeClient(node: CitusNode, database?: string): Promise<pg.Client>;
  layout: CitusLayout;
  /** Creates a database on every node with Citus in it and the workers registered (tests). */
  createDatabase(name: string): Promise<string>;
  /** Drops a database made by createDatabase, on every node. */
  dropDatabase(name: string): Promise<void>;
}

export interface CitusOptions {
  dataDir: string;
  /** The coordinator's port; the workers take the next two. */
  port?: number;
  database?: string;
  /** Throwaway (tests): no fsync, and the folder is deleted on stop. */
  ephemeral?: boolean;
  log?: (line: string) => void;
}

interface ClusterFile {
  ports: number[];
  socketDir: string;
}

/**
 * Unix socket paths are limited to 107 bytes; a deep data folder gets a short one: a fresh folder
 * made by mkdtemp under the temporary folder (never a predictable name, which another local user
 * could have made first, e.g. as a link), kept in cluster.json.
 */
function socketDirFor(dataDir: string): string {
  const inside = join(dataDir, "sockets");
  if (`${inside}/.s.PGSQL.65535`.length <= 100) return inside;
  return mkdtempSync(join(tmpdir(), "edge-tenants-citus-"));
}

/** The socket folder must be a real folder (not a link) owned by the servers' user, before it is trusted. */
async function checkSocketDir(socketDir: string, owner: { uid: number } | undefined): Promise<void> {
  const info = await lstat(socketDir);
  const uid = owner?.uid ?? process.getuid?.();
  if (!info.isDirectory() || info.isSymbolicLink() || (uid !== undefined && info.uid !== uid && info.uid !== process.getuid?.())) {
    throw new Error(`${socketDir} (the Citus nodes' socket folder) is not a folder of this user's: delete it, or the cluster folder, and start again`);
  }
}

async function run(command: string, args: string[], owner: { uid: number; gid: number } | undefined): Promise<void> {
  await new Promise<void>((done, fail) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...(owner ?? {}), env: { ...process.env, LC_ALL: "C" } });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.once("error", fail);
    child.once("close", (code) => (code === 0 ? done() : fail(new Error(`${command} ${args.join(" ")} failed (exit ${code}): ${output.trim().slice(-500)}`))));
  });
}

function nodeSettings(port: number, socketDir: string, ephemeral: boolean): string {
  const quoted = socketDir.replace(/'/g, "''");
  return [
    "",
    "# edge-tenants local Citus cluster (scripts/local/citus.ts)",
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${quoted}'`,
    "shared_preload_libraries = 'citus'",
    // Two-phase commit across nodes, and logical replication for citus_schema_move.
    "max_prepared_transactions = 100",
    "wal_level = logical",
    // Citus would otherwise call home over the internet.
    "citus.enable_statistics_collection = off",
    // Connections a node opens to itself (moves, the rebalancer) go through the socket folder too.
    `citus.local_hostname = '${quoted}'`,
    "timezone = 'UTC'",
    // Not synchronous_commit = off: with it, online moves (citus_schema_move) lost acknowledged
    // writes (docs/citus-placement.md), and `tenants move` refuses to run online.
    // Tests keep dozens of databases at once, and Citus runs a maintenance daemon (a background
    // worker) per database; moves need logical replication workers too. The default 8 ran out.
    ...(ephemeral ? ["fsync = off", "full_page_writes = off", "max_worker_processes = 64"] : []),
    "",
  ].join("\n");
}

async function connectWhenReady(config: pg.ClientConfig, child: ChildProcess, logFile: string, timeoutMs = 60_000): Promise<pg.Client> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").slice(-5).join(" / ") : "";
      throw new Error(`a Citus node exited while starting (${child.exitCode ?? child.signalCode}): ${tail}`);
    }
    const client = new pg.Client(config);
    client.on("error", () => {});
    try {
      await client.connect();
      return client;
    } catch (error) {
      await client.end().catch(() => {});
      const code = (error as { code?: string }).code;
      // 57P03: the database system is starting up.
      if (Date.now() > deadline) throw new Error(`a Citus node did not accept connections within ${timeoutMs / 1000} s: ${(error as Error).message}`);
      if (code && code !== "57P03" && code !== "ECONNREFUSED" && code !== "ENOENT") throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Three consecutive free ports on loopback for a throwaway cluster (tests, benchmarks). */
export async function freeCitusPorts(): Promise<number> {
  const base = await freePortBlock(3);
  if (base === undefined) throw new Error("found no three consecutive free ports on 127.0.0.1 for a Citus cluster");
  return base;
}

/**
 * Starts (creating on first use) a coordinator and two workers in `dataDir`, makes `database` on
 * each with the Citus extension, and registers the workers with the coordinator. Idempotent on an
 * existing folder. `url` is the coordinator's, as the superuser, over TCP.
 */
export async function startCitusCluster(options: CitusOptions): Promise<CitusCluster> {
  const why = citusUnavailable();
  if (why) throw new CitusUnavailableError(why);
  const dataDir = resolve(options.dataDir);
  const database = options.database ?? DEFAULT_DATABASE;
  const bin = citusBinDir();
  const root = process.getuid?.() === 0;
  const owner = root ? postgresUserIds() : undefined;
  if (root && !owner) throw new CitusUnavailableError("running as root, but there is no `postgres` OS user to run the Citus nodes as (PostgreSQL refuses root)");

  const clusterFile = join(dataDir, "cluster.json");
  const fresh = !existsSync(clusterFile);
  let layout: ClusterFile;
  if (fresh) {
    const base = options.port ?? DEFAULT_CITUS_PORT;
    layout = { ports: [base, base + 1, base + 2], socketDir: socketDirFor(dataDir) };
  } else {
    layout = JSON.parse(await readFile(clusterFile, "utf8")) as ClusterFile;
    if (options.port !== undefined && options.port !== layout.ports[0]) {
      throw new Error(
        `the Citus cluster in ${dataDir} was created with its coordinator on port ${layout.ports[0]} (the workers are registered by port): ` +
          `unset LOCAL_CITUS_PORT, or use another LOCAL_CITUS_DATA_DIR for port ${options.port}`,
      );
    }
  }
  const nodes: CitusNode[] = NODE_NAMES.map((name, i) => ({ name, port: layout.ports[i]!, dataDir: join(dataDir, name) }));
  const socketDir = layout.socketDir;

  await prepareDataDir(join(dataDir, "coordinator"));
  await mkdir(dataDir, { recursive: true });
  if (!existsSync(socketDir)) await mkdir(socketDir, { mode: 0o700 });
  await checkSocketDir(socketDir, owner);
  await chmod(socketDir, 0o700);
  if (owner) await chown(socketDir, owner.uid, owner.gid);

  let credentials = readEmbeddedCredentials(dataDir);
  if (fresh) {
    credentials = { user: SUPERUSER, password: randomBytes(24).toString("base64url") };
    for (const node of nodes) {
      await rm(node.dataDir, { recursive: true, force: true });
      await mkdir(node.dataDir, { recursive: true });
      await chmod(node.dataDir, 0o700);
      if (owner) await chown(node.dataDir, owner.uid, owner.gid);
      const pwfile = join(node.dataDir, "..", `.${node.name}.pw`);
      await writeFile(pwfile, `${credentials.password}\n`, { mode: 0o600 });
      if (owner) await chown(pwfile, owner.uid, owner.gid);
      try {
        // Sockets: trust (the folder is 0700); TCP: scram with the kept password.
        await run(join(bin, "initdb"), ["-D", node.dataDir, "-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256", `--pwfile=${pwfile}`, "-E", "UTF8", "--locale=C"], owner);
      } finally {
        await rm(pwfile, { force: true });
      }
      const conf = join(node.dataDir, "postgresql.conf");
      await writeFile(conf, readFileSync(conf, "utf8") + nodeSettings(node.port, socketDir, options.ephemeral ?? false));
    }
    await writeFile(credentialsPath(dataDir), `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
    await writeFile(clusterFile, `${JSON.stringify(layout, null, 2)}\n`);
  }
  if (!credentials) throw new Error(`the Citus cluster in ${dataDir} has no ${credentialsPath(dataDir)}: delete the folder to make a new cluster`);

  const children: ChildProcess[] = [];
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((done) => {
            if (child.exitCode !== null || child.signalCode !== null) return done();
            child.once("exit", () => done());
            child.kill("SIGINT"); // fast shutdown
          }),
      ),
    );
    if (options.ephemeral) {
      await rm(dataDir, { recursive: true, force: true });
      await rm(socketDir, { recursive: true, force: true });
    }
  };

  const nodeClient = (node: CitusNode, db = database) =>
    connectWhenReady({ host: socketDir, port: node.port, user: SUPERUSER, database: db }, children[nodes.indexOf(node)]!, join(dataDir, `${node.name}.log`));

  try {
    for (const node of nodes) {
      const logFile = join(dataDir, `${node.name}.log`);
      const fd = openSync(logFile, "a", 0o600);
      if (owner) await chown(logFile, owner.uid, owner.gid);
      const child = spawn(join(bin, "postgres"), ["-D", node.dataDir], { stdio: ["ignore", fd, fd], ...(owner ?? {}), env: { ...process.env, LC_ALL: "C" } });
      closeSync(fd);
      children.push(child);
    }
    await Promise.all(nodes.map(async (node) => (await nodeClient(node, "postgres")).end()));
    await Promise.all(nodes.map((node) => ensureCitusDatabase(nodeClient, node, database)));
    await registerWorkers(await nodeClient(nodes[0]!), nodes, socketDir);
  } catch (error) {
    await stopAll();
    throw error;
  }

  const exited = new Promise<string>((done) => {
    children.forEach((child, i) =>
      child.once("exit", (code, signal) => {
        if (!stopping) done(`the Citus ${nodes[i]!.name} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
      }),
    );
  });

  return {
    url: embeddedDatabaseUrl(nodes[0]!.port, credentials, database),
    host: "127.0.0.1",
    port: nodes[0]!.port,
    embedded: true,
    exited,
    nodes,
    socketDir,
    nodeClient,
    layout: { socketDir, ports: layout.ports },
    async createDatabase(name: string) {
      await createCitusDatabase({ socketDir, ports: layout.ports }, name);
      return embeddedDatabaseUrl(nodes[0]!.port, credentials!, name);
    },
    dropDatabase: (name: string) => dropCitusDatabase({ socketDir, ports: layout.ports }, name),
    stop: stopAll,
  };
}

/** The layout of a running cluster, enough to administer it from another process (tests). */
export interface CitusLayout {
  socketDir: string;
  ports: number[];
}

async function socketClient(layout: CitusLayout, port: number, database: string): Promise<pg.Client> {
  const client = new pg.Client({ host: layout.socketDir, port, user: SUPERUSER, database });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/**
 * Creates `name` on every node of a running cluster, with Citus in it and the workers registered,
 * and returns the coordinator's URL for it with `credentials` (tests: a database per test).
 */
export async function createCitusDatabase(layout: CitusLayout, name: string): Promise<void> {
  const nodes = layout.ports.map((port, i) => ({ name: NODE_NAMES[i]!, port, dataDir: "" }));
  const clientFor = (node: CitusNode, db = name) => socketClient(layout, node.port, db);
  await Promise.all(nodes.map((node) => ensureCitusDatabase(clientFor, node, name)));
  // citus_add_node copies the roles to the worker (ALTER ROLE postgres ...), and roles are shared by
  // every database: two registrations at once (test files in parallel) failed with "tuple
  // concurrently updated". One at a time, under an advisory lock in the coordinator's postgres
  // database (advisory locks are per database).
  const admin = await clientFor(nodes[0]!, "postgres");
  try {
    await admin.query("SELECT pg_advisory_lock(hashtext('edge-tenants: citus_add_node'))");
    await registerWorkers(await clientFor(nodes[0]!), nodes, layout.socketDir);
  } finally {
    await admin.end();
  }
}

/** Drops `name` on every node of a running cluster. */
export async function dropCitusDatabase(layout: CitusLayout, name: string): Promise<void> {
  for (const port of layout.ports) {
    const admin = await socketClient(layout, port, "postgres");
    try {
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
    } finally {
      await admin.end();
    }
  }
}

async function ensureCitusDatabase(
  nodeClient: (node: CitusNode, db?: string) => Promise<pg.Client>,
  node: CitusNode,
  database: string,
): Promise<void> {
  const admin = await nodeClient(node, "postgres");
  try {
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
  } finally {
    await admin.end();
  }
  const client = await nodeClient(node, database);
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS citus");
  } finally {
    await client.end();
  }
}

/** Registers the coordinator and the workers by their socket folder (idempotent); closes `coordinator`. */
async function registerWorkers(coordinator: pg.Client, nodes: CitusNode[], socketDir: string): Promise<void> {
  try {
    const registered = await coordinator.query<{ nodeport: number; groupid: number }>("SELECT nodeport, groupid FROM pg_dist_node WHERE nodename = $1", [socketDir]);
    const has = (port: number) => registered.rows.some((row) => row.nodeport === port);
    if (!registered.rows.some((row) => row.groupid === 0)) {
      await coordinator.query("SELECT citus_set_coordinator_host($1, $2)", [socketDir, nodes[0]!.port]);
    }
    for (const worker of nodes.slice(1)) {
      if (!has(worker.port)) await coordinator.query("SELECT citus_add_node($1, $2)", [socketDir, worker.port]);
    }
  } finally {
    await coordinator.end();
  }
}
