// Tests only: what the local SQL endpoint received, grouped by the `tag` query parameter of the
// connection string, served on loopback to the Worker tests (they run inside workerd, which
// cannot see the endpoint's process memory).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { QueryItem } from "../../scripts/sql-endpoint/protocol.ts";

export interface StatementLog {
  record(queries: QueryItem[], tag: string | undefined): void;
  /** GET <url>?tag=<tag> answers the statements received with that tag, in order. */
  url: string;
  close(): Promise<void>;
}

export async function startStatementLog(): Promise<StatementLog> {
  const byTag = new Map<string, string[]>();
  const server: Server = createServer((req, res) => {
    const tag = new URL(req.url ?? "/", "http://log").searchParams.get("tag") ?? "";
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(byTag.get(tag) ?? []));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/statements`,
    record(queries, tag) {
      if (!tag) return;
      const list = byTag.get(tag) ?? [];
      for (const q of queries) list.push(q.query);
      byTag.set(tag, list);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
