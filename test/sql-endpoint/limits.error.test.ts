// Neon's 10 MiB limits: a larger request body is refused with 413, a larger response with 507;
// both reach the driver as NeonDbError with the status, and the endpoint keeps serving.
import { NeonDbError } from "@neondatabase/serverless";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { driver, endpointUrl, protocolHeaders, useScratchSchema } from "./helpers.ts";

const SCHEMA = "limits_test";
const MAX = 10 * 1024 * 1024;
const sql = driver();
let client: pg.Client;

useScratchSchema(SCHEMA, (c) => (client = c), async () => {
  await client.query(`CREATE TABLE ${SCHEMA}.writes (note text)`);
});

const SHELL = JSON.stringify({ query: "SELECT length($1) AS n", params: [""] });

/** A single-query body of exactly `size` bytes whose one param is a long string of "x". */
function bodyOfSize(size: number): string {
  return SHELL.replace('[""]', `["${"x".repeat(size - SHELL.length)}"]`);
}

describe("request size limit", () => {
  it("accepts a body of exactly 10 MiB", async () => {
    const body = bodyOfSize(MAX);
    expect(Buffer.byteLength(body)).toBe(MAX);
    const res = await fetch(endpointUrl(), { method: "POST", headers: protocolHeaders(), body });
    expect(res.status).toBe(200);
    expect((await res.json()).rows).toEqual([[String(MAX - SHELL.length)]]);
  });

  it("refuses a body one byte over with 413 and Neon's message", async () => {
    const res = await fetch(endpointUrl(), { method: "POST", headers: protocolHeaders(), body: bodyOfSize(MAX + 1) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ message: "request is too large (max is 10485760 bytes)" });
  });

  it("refuses an oversized body sent without Content-Length (chunked)", async () => {
    const chunk = new TextEncoder().encode("x".repeat(1024 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent === 0) controller.enqueue(new TextEncoder().encode('{"query":"SELECT 1","params":["'));
        if (sent >= 12) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(endpointUrl(), {
      method: "POST",
      headers: protocolHeaders(),
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await res.json()).message).toBe("request is too large (max is 10485760 bytes)");

    // The endpoint (and the client's pooled keep-alive connections) still answer promptly.
    for (let i = 0; i < 4; i++) {
      const next = await fetch(endpointUrl(), {
        method: "POST",
        headers: protocolHeaders(),
        body: JSON.stringify({ query: "SELECT $1::int AS i", params: [String(i)] }),
        signal: AbortSignal.timeout(5_000),
      });
      expect((await next.json()).rows).toEqual([[String(i)]]);
    }
  });

  it("refuses an oversized query through the driver with the status in the error", async () => {
    const error = await sql.query("SELECT length($1) AS n", ["é".repeat(MAX / 2 + 1)]).then(
      () => expect.unreachable("an 11 MiB request must be refused"),
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NeonDbError);
    expect((error as Error).message).toMatch(/^Server error \(HTTP status 413\): /);
    expect((error as Error).message).toContain("request is too large (max is 10485760 bytes)");
    await expect(sql`SELECT 1 AS alive`).resolves.toEqual([{ alive: 1 }]);
  });
});

describe("response size limit", () => {
  it("refuses a response over 10 MiB with 507 and Neon's message", async () => {
    const res = await fetch(endpointUrl(), {
      method: "POST",
      headers: protocolHeaders(),
      body: JSON.stringify({ query: "SELECT repeat('x', $1::int) AS big", params: [String(MAX)] }),
    });
    expect(res.status).toBe(507);
    expect(await res.json()).toMatchObject({ message: "response is too large (max is 10485760 bytes)" });
  });

  it("refuses a large result through the driver, many rows or one, and keeps serving", async () => {
    for (const query of [
      "SELECT repeat('y', 11 * 1024 * 1024) AS big",
      "SELECT g, repeat('z', 1000) FROM generate_series(1, 12000) g",
    ]) {
      const error = await sql.query(query).then(
        () => expect.unreachable("an oversized response must be refused"),
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(NeonDbError);
      expect((error as Error).message).toMatch(/^Server error \(HTTP status 507\): /);
      expect((error as Error).message).toContain("response is too large (max is 10485760 bytes)");
    }
    await expect(sql`SELECT 1 AS alive`).resolves.toEqual([{ alive: 1 }]);
  });

  it("serves a response just under the limit", async () => {
    const [row] = await sql.query("SELECT repeat('w', $1::int) AS big", [MAX - 1000]);
    expect((row!.big as string).length).toBe(MAX - 1000);
  });

  it("refuses an oversized batch as a whole and commits nothing", async () => {
    const error = await sql
      .transaction((tx) => [
        tx`INSERT INTO ${tx.unsafe(SCHEMA)}.writes VALUES ('from the refused batch')`,
        tx`SELECT repeat('v', 6 * 1024 * 1024) AS a`,
        tx`SELECT repeat('v', 6 * 1024 * 1024) AS b`,
      ])
      .then(
        () => expect.unreachable("a 12 MiB batch response must be refused"),
        (e: unknown) => e,
      );
    expect((error as Error).message).toMatch(/^Server error \(HTTP status 507\)/);
    // The client was told the batch failed, so none of it may have been committed.
    expect((await client.query(`SELECT note FROM ${SCHEMA}.writes`)).rows).toEqual([]);
  });
});
