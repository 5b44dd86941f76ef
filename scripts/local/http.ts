// A GET to the local Worker with a tenant's Host header. Node does not resolve `*.localhost` the
// way browsers do, so the request goes to loopback and the Host header names the tenant.
import { request, type Agent } from "node:http";

export function getByHost(
  port: number,
  host: string,
  path: string,
  options: { headers?: Record<string, string>; agent?: Agent } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((done, fail) => {
    const headers = { Host: `${host}:${port}`, ...options.headers };
    const req = request({ host: "127.0.0.1", port, path, agent: options.agent, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", fail);
    req.end();
  });
}
