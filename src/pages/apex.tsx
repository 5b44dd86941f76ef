/** @jsxImportSource hono/jsx */
// The public apex site (the bare domain, APEX_HOST): a landing page with nothing private on it, and
// self-service sign-up (GET /sign-up, POST /signup: src/pages/signup.tsx). Any other path on the
// apex, and every other host, goes on to the tenant routes.
import { Hono } from "hono";
import type { AppEnv } from "../env.ts";
import { normalizeHost } from "../tenancy/naming.ts";
import { Layout } from "./layout.tsx";
import { signUp, signUpPage } from "./signup.tsx";

export const apexRoutes = new Hono<AppEnv>()
  .use(async (c, next) => {
    const apex = c.var.config.APEX_HOST;
    if (!apex || normalizeHost(new URL(c.req.url).host) !== apex) return next();
    const page = c.req.method === "GET" || c.req.method === "HEAD" ? c.req.path : undefined;
    if (page === "/") {
      return c.html(
        <Layout title="edge-tenants">
          <h1>edge-tenants</h1>
          <p>Each organisation using this service has its own site, at its own address (for example acme.{apex}).</p>
          <p>
            <a href="/sign-up">Sign up a new organisation</a> · <a href="/docs">API reference</a>
          </p>
        </Layout>,
      );
    }
    if (page === "/sign-up") return signUpPage(c, apex);
    if (c.req.method === "POST" && c.req.path === "/signup") return signUp(c, apex);
    return next();
  });
