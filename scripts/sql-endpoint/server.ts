// A local HTTP endpoint that speaks Neon's SQL-over-HTTP protocol in front of any PostgreSQL, so
// the unchanged `@neondatabase/serverless` driver (and drizzle's neon-http) works without a cloud
// account. Protocol: docs/sql-over-http.md.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isIP, type AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import {
  EndpointError,
  MAX_REQUEST_BYTES,
  MAX_RESPONSE_BYTES,
  encodeParam,
  errorBody,
  headerFlag,
  isPostgresError,
  parseBatchOptions,
  parseBody,
  parseConnectionString,
  resultBody,
  startTransactionSql,
  type QueryItem,
} from "./protocol.ts";
import { RESET_SESSION, SessionPool, type Upstream } from "./pool.ts";
import { extendedStatement, simpleQuery, SYNC, type StatementOutcome } from "./wire.ts";

export interface SqlEndpointOptions {
  upstream: Upstream;
  /** Interface to listen on. Loopback unless deliberately changed. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** A fixed delay added to every request, to feel production's edge-to-region round trip. */
  delayMs?: number;
  maxConnectionsPerKey?: number;
  idleTimeoutMs?: number;
  /** Called for every request that reached the database, after it answered (tests count them). */
  onQuery?: (queries: QueryItem[]) => void;
  /**
   * Tests only (off unless given): called with every request's statements as received, before they
   * run, and the `tag` query parameter of its connection string, so a test can attribute them.
   */
  recordStatements?: (queries: QueryItem[], tag: string | undefined) => void;
}

export interface SqlEndpoint {
  /** The URL to give `neonConfig.fetchEndpoint`, ending in `/sql`. */
  url: string;
  port: number;
  /** Settles if the server stops listening other than through `close()`, with why. */
  failed: Promise<Error>;
  /** Changes the per-request delay from now on (benchmarks compare with and without). */
  setDelayMs(ms: number): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string, extra: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return;
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...extra,
  });
  res.end(body);
}

function sendError(res: ServerResponse, status: number, error: unknown): void {
  send(res, status, JSON.stringify(errorBody(error)));
}

// Past the limit the rest of the body is still read and dropped (not `break`ing out of the stream,
// which destroys the socket mid-request), so the 413 reaches the client and the keep-alive
// connection stays usable; a client that keeps sending far past the limit is cut off.
const DISCARD_LIMIT_BYTES = 8 * MAX_REQUEST_BYTES;

function readBody(req: IncomingMessage): Promise<string> {
  const tooLarge = () => new EndpointError(413, `request is too large (max is ${MAX_REQUEST_BYTES} bytes)`);
  if (Number(req.headers["content-length"] ?? 0) > MAX_REQUEST_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (settled) {
        if (size > DISCARD_LIMIT_BYTES) req.socket.destroy();
        return;
      }
      if (size > MAX_REQUEST_BYTES) {
        settled = true;
        chunks.length = 0;
        return reject(tooLarge());
      }
      chunks.push(chunk);
    });
    req.once("end", () => {
      if (settled) return;
      settled = true;
      resolve(Buffer.concat(chunks).toString("utf8"));
    });
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    req.once("error", fail);
    req.once("close", () => fail(new Error("the client closed the request before sending all of it")));
  });
}

/** Loopback names and addresses, as a Host header carries them (port stripped, brackets kept off). */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (name === "localhost" || name === "::1" || name === "0:0:0:0:0:0:0:1") return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(name);
  return v4 !== null && v4.slice(1).every((octet) => Number(octet) <= 255);
}

/** The host part of a Host header value, without the port (`[::1]:4445` -> `::1`). */
function hostWithoutPort(value: string): string {
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(value);
  if (bracketed) return bracketed[1]!;
  return value.replace(/:\d*$/, "");
}

/**
 * The endpoint serves the local Worker and Node tools, never a web page: no CORS headers at all, a
 * request with an `Origin` header (every browser sends one on a cross-origin or POST fetch) is
 * refused, and so is any Host that is not loopback (a page that rebinds its own DNS name to
 * 127.0.0.1 still sends its own name as Host).
 */
function refuseWebPages(req: IncomingMessage, allowedHosts: ReadonlySet<string>): void {
  if (req.headers.origin !== undefined) {
    throw new EndpointError(403, "requests from web pages are refused: the local SQL endpoint is for the Worker and local tools only");
  }
  const host = hostWithoutPort(req.headers.host ?? "").toLowerCase();
  if (!isLoopbackHost(host) && !allowedHosts.has(host)) {
    throw new EndpointError(403, `Host ${JSON.stringify(req.headers.host ?? "")} is refused: call the local SQL endpoint at a loopback address (127.0.0.1, [::1] or localhost)`);
  }
}

function connectionTag(value: string | string[] | undefined): string | undefined {
  try {
    return new URL(String(value)).searchParams.get("tag") ?? undefined;
  } catch {
    return undefined;
  }
}

function responseTooLarge(): EndpointError {
  return new EndpointError(507, `response is too large (max is ${MAX_RESPONSE_BYTES} bytes)`);
}

export async function startSqlEndpoint(options: SqlEndpointOptions): Promise<SqlEndpoint> {
  const pool = new SessionPool({
    upstream: options.upstream,
    maxPerKey: options.maxConnectionsPerKey ?? 32,
    idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
  });
  let delayMs = options.delayMs ?? 0;
  // Besides loopback names, only the address it deliberately listens on (an IP literal, which no
  // rebound DNS name can pose as).
  const listenHost = (options.host ?? "127.0.0.1").replace(/^\[|\]$/g, "").toLowerCase();
  const allowedHosts = new Set(isIP(listenHost) && listenHost !== "0.0.0.0" && listenHost !== "::" ? [listenHost] : []);

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    refuseWebPages(req, allowedHosts);
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/sql") throw new EndpointError(400, `unknown path ${path}: the SQL endpoint is POST /sql`);
    if (req.method !== "POST") throw new EndpointError(400, `method ${req.method} is not supported: use POST /sql`);

    const body = await readBody(req);
    if (delayMs > 0) await sleep(delayMs);
    const credentials = parseConnectionString(req.headers["neon-connection-string"] as string | undefined);
    const request = parseBody(body);
    if (options.recordStatements) options.recordStatements(request.queries, connectionTag(req.headers["neon-connection-string"]));
    const batchOptions = request.batch ? parseBatchOptions(req.headers) : undefined;
    const rawText = headerFlag(req.headers["neon-raw-text-output"]);
    const arrayMode = headerFlag(req.headers["neon-array-mode"]);

    const session = await pool.acquire(credentials);
    let healthy = false;
    const cancelOnDisconnect = () => {
      if (!res.writableEnded) void pool.cancel(session);
    };
    res.once("close", cancelOnDisconnect);
    try {
      // One write per request: the statements, then (single queries) the session reset. A batch
      // is one extended-protocol segment, START TRANSACTION first, so an error skips the rest; its
      // results are serialised and checked against the response limit BEFORE COMMIT is sent, so a
      // 507 never leaves a batch committed (the session is discarded, which rolls it back).
      const statement = (item: QueryItem) => extendedStatement(item.query, item.params.map(encodeParam));
      let outcomes: StatementOutcome[];
      if (batchOptions) {
        const [segment] = session.wire.pipeline(
          [...statement({ query: startTransactionSql(batchOptions), params: [] }), ...request.queries.flatMap(statement), SYNC],
          1,
          MAX_RESPONSE_BYTES,
        );
        const result = await segment!;
        if (result.error) throw result.error;
        if (result.overBudget) throw responseTooLarge();
        outcomes = result.outcomes.slice(1);
      } else {
        const [segment, reset] = session.wire.pipeline(
          [...statement(request.queries[0]!), SYNC, RESET_SESSION],
          2,
          MAX_RESPONSE_BYTES,
        );
        session.pendingReset = reset!;
        reset!.catch(() => {});
        const result = await segment!;
        if (result.error) throw result.error;
        if (result.overBudget) throw responseTooLarge();
        outcomes = result.outcomes;
      }
      const parts = outcomes.map((outcome, i) =>
        JSON.stringify(resultBody(outcome, request.queries[i]!.arrayMode ?? arrayMode, rawText)),
      );
      const json = batchOptions ? `{"results":[${parts.join(",")}]}` : parts[0]!;
      if (Buffer.byteLength(json) > MAX_RESPONSE_BYTES) throw responseTooLarge();
      if (batchOptions) {
        const [commit, reset] = session.wire.pipeline([simpleQuery("COMMIT"), RESET_SESSION], 2);
        session.pendingReset = reset!;
        reset!.catch(() => {});
        const committed = await commit!;
        if (committed.error) throw committed.error;
      }
      healthy = true;
      options.onQuery?.(request.queries);
      send(res, 200, json, batchOptions?.echo);
    } finally {
      res.off("close", cancelOnDisconnect);
      pool.release(session, healthy);
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof EndpointError) return sendError(res, error.status, error);
      // PostgreSQL's own errors (bad SQL, failed authentication) are the user's: 400, as on Neon.
      if (isPostgresError(error)) return sendError(res, 400, error);
      sendError(res, 500, error);
    });
  });
  server.keepAliveTimeout = 60_000;
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  let closing = false;
  const failed = new Promise<Error>((done) => {
    server.once("error", (error) => done(error));
    server.once("close", () => {
      if (!closing) done(new Error("the server closed"));
    });
  });
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}/sql`,
    port,
    failed,
    setDelayMs(ms: number) {
      delayMs = ms;
    },
    async close() {
      closing = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
    },
  };
}
