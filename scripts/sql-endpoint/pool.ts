// Upstream PostgreSQL sessions for the local SQL endpoint, pooled per (database, user, password).
// PostgreSQL authenticates every new session itself; a pooled session is only reused for the same
// password, so a wrong password can never ride on someone else's connection.
import pg from "pg";
import type { Credentials } from "./protocol.ts";
import { simpleQuery, Wire, type SegmentResult } from "./wire.ts";

/**
 * Neon's proxy runs `ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; DEALLOCATE
 * ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES` when a
 * connection goes back to its pool. `DISCARD ALL` is documented as exactly that list plus DISCARD
 * PLANS, in one statement. It refuses to run inside a transaction block, so a request that left a
 * transaction open (a lone `BEGIN`) makes it fail, and that session is discarded instead: closing
 * it rolls the transaction back. The endpoint sends it in the same write as the request's own
 * statements (see wire.ts).
 */
export const RESET_SESSION = simpleQuery("DISCARD ALL");

export interface Upstream {
  host: string;
  port: number;
}

export interface SessionPoolOptions {
  upstream: Upstream;
  /** Sessions per (database, user, password); further requests wait for one. */
  maxPerKey: number;
  idleTimeoutMs: number;
}

export interface Session {
  client: pg.Client;
  key: string;
  config: pg.ClientConfig;
  wire: Wire;
  broken: boolean;
  /** The reset already sent behind the request's statements; release waits for it. */
  pendingReset?: Promise<SegmentResult>;
}

interface KeyPool {
  idle: Session[];
  open: number;
  waiters: Array<(session: Session | Error) => void>;
  credentials: Credentials;
}

export class SessionPool {
  private readonly pools = new Map<string, KeyPool>();
  private readonly idleTimers = new Map<Session, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: SessionPoolOptions) {}

  async acquire(credentials: Credentials): Promise<Session> {
    if (this.closed) throw new Error("the SQL endpoint is shutting down");
    const key = JSON.stringify([credentials.database, credentials.user, credentials.password]);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = { idle: [], open: 0, waiters: [], credentials };
      this.pools.set(key, pool);
    }
    const idle = pool.idle.pop();
    if (idle) {
      clearTimeout(this.idleTimers.get(idle));
      this.idleTimers.delete(idle);
      return idle;
    }
    if (pool.open < this.options.maxPerKey) return this.connect(key, pool);
    const waited = await new Promise<Session | Error>((resolve) => pool.waiters.push(resolve));
    if (waited instanceof Error) throw waited;
    return waited;
  }

  /** Healthy sessions are reset and pooled again; a session that saw an error is discarded. */
  release(session: Session, healthy: boolean): void {
    const reset = session.pendingReset;
    session.pendingReset = undefined;
    if (!healthy || session.broken || this.closed) {
      this.discard(session);
      return;
    }
    (reset ?? session.wire.pipeline([RESET_SESSION], 1)[0]!).then(
      (result) => (result.error || result.status !== "I" ? this.discard(session) : this.handOver(session)),
      () => this.discard(session),
    );
  }

  /** Asks PostgreSQL to cancel whatever the session is running (the HTTP client went away). */
  async cancel(session: Session): Promise<void> {
    const pid = (session.client as unknown as { processID?: number }).processID;
    if (!pid) return;
    const canceller = new pg.Client(session.config);
    canceller.on("error", () => {});
    try {
      await canceller.connect();
      await canceller.query("SELECT pg_cancel_backend($1)", [pid]);
    } catch {
      // Best effort: the session is discarded afterwards anyway.
    } finally {
      await canceller.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const ends: Promise<void>[] = [];
    for (const pool of this.pools.values()) {
      for (const waiter of pool.waiters) waiter(new Error("the SQL endpoint is shutting down"));
      pool.waiters = [];
      for (const session of pool.idle) ends.push(session.client.end().catch(() => {}));
      pool.idle = [];
    }
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    this.idleTimers.clear();
    await Promise.all(ends);
  }

  private async connect(key: string, pool: KeyPool): Promise<Session> {
    pool.open++;
    const { user, password, database } = pool.credentials;
    const config: pg.ClientConfig = {
      host: this.options.upstream.host,
      port: this.options.upstream.port,
      user,
      password,
      database,
      // Neon's defaults: drizzle's neon-http passes date/time text through unparsed.
      options: "-c TimeZone=UTC -c DateStyle=ISO,MDY -c IntervalStyle=postgres",
    };
    const client = new pg.Client(config);
    let session: Session | undefined;
    client.on("error", () => {
      if (session) session.broken = true;
    });
    try {
      await client.connect();
      session = { client, key, config, wire: new Wire(client), broken: false };
      return session;
    } catch (error) {
      pool.open--;
      this.wakeWaiter(key, pool);
      client.end().catch(() => {});
      throw error;
    }
  }

  private handOver(session: Session): void {
    const pool = this.pools.get(session.key)!;
    const waiter = pool.waiters.shift();
    if (waiter) return waiter(session);
    pool.idle.push(session);
    const timer = setTimeout(() => {
      pool.idle = pool.idle.filter((s) => s !== session);
      this.idleTimers.delete(session);
      this.discard(session);
    }, this.options.idleTimeoutMs);
    timer.unref();
    this.idleTimers.set(session, timer);
  }

  private discard(session: Session): void {
    const pool = this.pools.get(session.key)!;
    pool.open--;
    session.client.end().catch(() => {});
    this.wakeWaiter(session.key, pool);
  }

  private wakeWaiter(key: string, pool: KeyPool): void {
    if (this.closed || pool.waiters.length === 0 || pool.open >= this.options.maxPerKey) return;
    const waiter = pool.waiters.shift()!;
    this.connect(key, pool).then(waiter, waiter);
  }
}
