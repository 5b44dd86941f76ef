// `npm run dev` (tsx scripts/dev.ts) as a user runs it, from an empty scratch folder, for the e2e
// tests of its modes (test/e2e/dev.e2e.test.ts, dev-hyperdrive.e2e.test.ts), and what they ask of it.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { expect } from "vitest";
import { getByHost } from "../../scripts/local/http.ts";
import { freePort } from "../../scripts/local/postgres.ts";

export const get = (port: number, host: string, path: string, headers: Record<string, string> = {}) => getByHost(port, host, path, { headers });

/** A JSON POST to the local Worker with a tenant's Host header (and `extra` headers). */
export function postJson(port: number, host: string, path: string, body: unknown, extra: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const data = JSON.stringify(body);
    const req = request(
      { host: "127.0.0.1", port, path, method: "POST", headers: { Host: `${host}:${port}`, "content-type": "application/json", "content-length": Buffer.byteLength(data), ...extra } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => done({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", fail);
    req.end(data);
  });
}

/** The demo tenant admin's bearer token (the demo users' password is local demo data). */
export async function adminAuth(port: number, host: string, email: string): Promise<Record<string, string>> {
  const res = await postJson(port, host, "/auth/token", { email, password: "demo-password" });
  if (res.status !== 200) throw new Error(`POST /auth/token answered ${res.status}: ${res.body}`);
  return { Authorization: `Bearer ${JSON.parse(res.body).token}` };
}

/** Lines of `ps` that mention `text` (a scratch folder, a port, a password): what runs, or shows it on its command line. */
export function processesMentioning(text: string): string[] {
  // -ww: whole command lines, however wide the terminal (COLUMNS) says it is.
  const out = execFileSync("ps", ["-eo", "pid,args", "-ww"], { encoding: "utf8" });
  return out.split("\n").filter((line) => line.includes(text) && !line.includes("ps -eo"));
}

export interface DevRun {
  child: ChildProcess;
  /** The folder under which its data folders are, postgres/ and citus/ (removing it is the caller's). */
  scratch: string;
  workerPort: number;
  /** Its output so far, stdout and stderr together. */
  output(): string;
}

/**
 * Starts `npm run dev -- ...args` on free ports, its data folders in a new scratch folder, with
 * DATABASE_URL unset; settles once the Worker serves acme (or fails with the output).
 */
export async function startDev(args: string[], env: Record<string, string> = {}): Promise<DevRun> {
  const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-dev-"));
  const workerPort = await freePort();
  const command = ["npm run dev", ...(args.length ? ["--", ...args] : [])].join(" ");
  const child = spawn(resolve("node_modules/.bin/tsx"), ["scripts/dev.ts", ...args], {
    env: {
      ...process.env,
      DATABASE_URL: "",
      LOCAL_DATA_DIR: join(scratch, "postgres"),
      LOCAL_CITUS_DATA_DIR: join(scratch, "citus"),
      LOCAL_PG_PORT: String(await freePort()),
      LOCAL_SQL_PORT: String(await freePort()),
      WORKER_PORT: String(workerPort),
      ...env,
    },
    cwd: resolve("."),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${command} exited early:\n${output}`);
    try {
      if ((await get(workerPort, "acme.localhost", "/tenant")).status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${command} did not serve acme in time:\n${output}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return { child, scratch, workerPort, output: () => output };
}

/** The demo tenants are served their own users by host; no sign-in is 401, an unknown host 403. */
export async function expectDemoTenantsServed(workerPort: number): Promise<void> {
  expect((await get(workerPort, "acme.localhost", "/users")).status).toBe(401);
  const acme = await get(workerPort, "acme.localhost", "/users", await adminAuth(workerPort, "acme.localhost", "wile@acme.test"));
  const globex = await get(workerPort, "globex.localhost", "/users", await adminAuth(workerPort, "globex.localhost", "hank@globex.test"));
  expect(acme.status).toBe(200);
  expect(JSON.parse(acme.body).map((u: { email: string }) => u.email)).toEqual(["wile@acme.test", "road@acme.test"]);
  expect(JSON.parse(globex.body).map((u: { email: string }) => u.email)).toEqual(["hank@globex.test"]);
  expect((await get(workerPort, "localhost", "/health")).status).toBe(200);
  expect((await get(workerPort, "nobody.localhost", "/users")).status).toBe(403);
}
