// Pipelined statements on a session that pg.Client has connected and authenticated: the endpoint
// writes a request's statements AND the session reset that follows them in one write, and reads
// the results back by counting ReadyForQuery messages. On this kind of machine a syscall costs
// more than the SQL, so one write per request instead of three matters (see bench:sql-endpoint).
import type { EventEmitter } from "node:events";
import type { FieldDef } from "pg";
import type pg from "pg";
import { serialize, type DatabaseError } from "pg-protocol";

export interface StatementOutcome {
  fields: FieldDef[];
  rows: Array<Array<string | null>>;
  command: string;
  rowCount: number | null;
}

/** What one segment (the messages up to a Sync, or one simple query) produced. */
export interface SegmentResult {
  outcomes: StatementOutcome[];
  error?: DatabaseError;
  /** Transaction status after the segment: I idle, T in a transaction, E failed transaction. */
  status: string;
  /** The bytes of row data seen went past the budget; rows after that were dropped. */
  overBudget: boolean;
}

interface Pending {
  segments: Array<{ resolve: (r: SegmentResult) => void; reject: (e: Error) => void }>;
  current: SegmentResult;
  statement: StatementOutcome;
  rowBytes: number;
  budget: number;
}

const PG_CLIENT_HANDLERS = [
  "errorMessage", "readyForQuery", "notice", "rowDescription", "dataRow", "portalSuspended", "emptyQuery",
  "commandComplete", "parseComplete", "copyInResponse", "copyData", "notification",
];

function newStatement(): StatementOutcome {
  return { fields: [], rows: [], command: "", rowCount: null };
}

function newSegment(): SegmentResult {
  return { outcomes: [], status: "I", overBudget: false };
}

/** Command tag to command and row count, as pg does: `INSERT 0 3` -> INSERT, 3; `CREATE TABLE` -> CREATE, null. */
function parseTag(tag: string): { command: string; rowCount: number | null } {
  const match = /^([A-Za-z]+)(?: (\d+))?(?: (\d+))?/.exec(tag);
  if (!match) return { command: "", rowCount: null };
  const count = match[3] ?? match[2];
  return { command: match[1]!, rowCount: count === undefined ? null : Number(count) };
}

/** The messages for one statement in the extended protocol: Parse (no types), Bind (text), Describe, Execute. */
export function extendedStatement(text: string, values: Array<string | null>): Buffer[] {
  return [
    serialize.parse({ text, types: [] }),
    serialize.bind({ values }),
    serialize.describe({ type: "P" }),
    serialize.execute({}),
  ];
}

export const SYNC = serialize.sync();

export function simpleQuery(text: string): Buffer {
  return serialize.query(text);
}

/**
 * Takes over a connected pg.Client's connection for pipelined use. The client still owns the
 * socket (connect, TLS, authentication, `end()`); its query machinery is detached.
 */
export class Wire {
  private readonly connection: EventEmitter & { stream: NodeJS.WritableStream };
  private pending: Pending | undefined;
  private failure: Error | undefined;

  constructor(client: pg.Client) {
    this.connection = (client as unknown as { connection: Wire["connection"] }).connection;
    for (const event of PG_CLIENT_HANDLERS) this.connection.removeAllListeners(event);
    this.connection.on("rowDescription", (msg: { fields: FieldDef[] }) => {
      if (this.pending) this.pending.statement.fields = msg.fields;
    });
    this.connection.on("dataRow", (msg: { fields: Array<string | null> }) => {
      const p = this.pending;
      if (!p) return;
      for (const value of msg.fields) p.rowBytes += value === null ? 4 : value.length + 3;
      if (p.rowBytes > p.budget) p.current.overBudget = true;
      else p.statement.rows.push(msg.fields);
    });
    const finishStatement = (tag: string) => {
      const p = this.pending;
      if (!p) return;
      Object.assign(p.statement, parseTag(tag));
      p.current.outcomes.push(p.statement);
      p.statement = newStatement();
    };
    this.connection.on("commandComplete", (msg: { text: string }) => finishStatement(msg.text));
    this.connection.on("emptyQuery", () => finishStatement(""));
    this.connection.on("errorMessage", (error: DatabaseError) => {
      const p = this.pending;
      if (!p) return;
      p.current.error ??= error;
      p.statement = newStatement();
    });
    this.connection.on("readyForQuery", (msg: { status: string }) => {
      const p = this.pending;
      if (!p) return;
      p.current.status = msg.status;
      const segment = p.segments.shift()!;
      segment.resolve(p.current);
      p.current = newSegment();
      if (p.segments.length === 0) this.pending = undefined;
    });
    // COPY ... FROM STDIN waits for data that never comes over HTTP, and the messages pipelined
    // behind it break the protocol: answer it as an unsupported feature and drop the connection.
    this.connection.on("copyInResponse", () => {
      const error = Object.assign(new Error("COPY FROM STDIN is not supported over HTTP: send rows with INSERT"), {
        code: "0A000",
        severity: "ERROR",
      }) as unknown as DatabaseError;
      const p = this.pending;
      this.pending = undefined;
      this.failure = error;
      if (p) {
        p.current.error = error;
        p.current.status = "E";
        p.segments.shift()?.resolve(p.current);
        for (const segment of p.segments) segment.reject(error);
      }
      (this.connection.stream as unknown as { destroy(): void }).destroy();
    });
    const fail = (error: Error) => {
      this.failure ??= error;
      const p = this.pending;
      this.pending = undefined;
      for (const segment of p?.segments ?? []) segment.reject(error);
    };
    this.connection.on("error", fail);
    this.connection.on("end", () => fail(new Error("the PostgreSQL connection closed")));
  }

  /**
   * Writes `messages` in one go and returns one promise per segment (each ends with a
   * ReadyForQuery). `rowBudget` bounds the row bytes kept (the response size limit).
   */
  pipeline(messages: Buffer[], segments: number, rowBudget = Number.POSITIVE_INFINITY): Array<Promise<SegmentResult>> {
    if (this.failure) return Array.from({ length: segments }, () => Promise.reject(this.failure));
    if (this.pending) throw new Error("a pipeline is already running on this session");
    const promises: Array<Promise<SegmentResult>> = [];
    const pending: Pending = { segments: [], current: newSegment(), statement: newStatement(), rowBytes: 0, budget: rowBudget };
    for (let i = 0; i < segments; i++) {
      promises.push(new Promise((resolve, reject) => pending.segments.push({ resolve, reject })));
    }
    this.pending = pending;
    this.connection.stream.write(Buffer.concat(messages));
    return promises;
  }
}
