// COPY ... TO STDOUT / FROM STDIN over the project's `pg` client, streamed, without another
// dependency: `pg` accepts any object with `submit(connection)` as a query and hands it the
// protocol messages of that query (CopyData, CommandComplete, ErrorResponse, ReadyForQuery). The
// socket is paused while the reader is behind (COPY TO) and writes wait for it to drain (COPY FROM),
// so neither direction holds more than a few chunks in memory.
import { once } from "node:events";
import { Readable } from "node:stream";
import type pg from "pg";

/** The parts of pg's internal Connection a COPY needs. */
interface Connection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
  stream: NodeJS.ReadableStream & NodeJS.WritableStream & { writableNeedDrain?: boolean };
}

function commandCount(text: string | undefined): number {
  const n = Number(/(\d+)$/.exec(text ?? "")?.[1]);
  return Number.isFinite(n) ? n : 0;
}

class CopyOutStream extends Readable {
  private connection?: Connection;
  rowCount = 0;
  private readonly text: string;
  constructor(text: string) {
    super({ highWaterMark: 1 << 20 });
    this.text = text;
  }
  submit(connection: Connection): void {
    this.connection = connection;
    connection.query(this.text);
  }
  override _read(): void {
    this.connection?.stream.resume();
  }
  handleCopyData(message: { chunk: Buffer }): void {
    // A copy: the parser reuses its buffer for the next messages.
    if (!this.push(Buffer.from(message.chunk))) this.connection?.stream.pause();
  }
  handleCommandComplete(message: { text?: string }): void {
    this.rowCount = commandCount(message.text);
  }
  handleReadyForQuery(): void {
    this.connection?.stream.resume();
    if (!this.destroyed) this.push(null);
  }
  handleError(error: Error): void {
    this.connection?.stream.resume();
    this.destroy(error);
  }
  handleEmptyQuery(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCopyInResponse(connection: Connection): void {
    connection.sendCopyFail("not a COPY FROM");
  }
}

/** `COPY ... TO STDOUT`: the server's CopyData chunks (one row each, in text format), streamed. */
export function copyOut(client: pg.ClientBase, text: string): Readable & { rowCount: number } {
  const stream = new CopyOutStream(text);
  void client.query(stream as never);
  return stream;
}

class CopyIn {
  private sourceError?: Error;
  private failed = false;
  private rowCount = 0;
  readonly done: Promise<number>;
  private resolve!: (n: number) => void;
  private reject!: (e: Error) => void;
  private readonly text: string;
  private readonly source: AsyncIterable<Buffer>;
  constructor(text: string, source: AsyncIterable<Buffer>) {
    this.text = text;
    this.source = source;
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
  submit(connection: Connection): void {
    connection.query(this.text);
  }
  handleCopyInResponse(connection: Connection): void {
    void this.pump(connection);
  }
  private async pump(connection: Connection): Promise<void> {
    try {
      for await (const chunk of this.source) {
        if (this.failed) return;
        connection.sendCopyFromChunk(chunk);
        if (connection.stream.writableNeedDrain) await once(connection.stream, "drain");
      }
      if (!this.failed) connection.endCopyFrom();
    } catch (error) {
      this.sourceError = error as Error;
      if (!this.failed) connection.sendCopyFail((error as Error).message.slice(0, 200));
    }
  }
  handleCommandComplete(message: { text?: string }): void {
    this.rowCount = commandCount(message.text);
  }
  handleReadyForQuery(): void {
    if (!this.failed) this.resolve(this.rowCount);
  }
  handleError(error: Error): void {
    this.failed = true;
    this.reject(this.sourceError ?? error);
  }
  handleEmptyQuery(): void {}
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleCopyData(): void {}
}

/** `COPY ... FROM STDIN` fed from `source`; resolves to the number of rows copied. */
export function copyIn(client: pg.ClientBase, text: string, source: AsyncIterable<Buffer>): Promise<number> {
  const copy = new CopyIn(text, source);
  void client.query(copy as never);
  return copy.done;
}
