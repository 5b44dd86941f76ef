// The published API description, checked in Node: GET /openapi.json must be a valid OpenAPI 3
// document listing every tenant route, and GET /docs must render it. Neither route touches the
// database, so the only binding given is a well-formed DATABASE_URL (the config middleware needs it).
import { Validator } from "@seriousme/openapi-schema-validator";
import { beforeAll, describe, expect, it } from "vitest";
import { ERROR_STATUS } from "../../src/errors/index.ts";
import { app } from "../../src/index.ts";

const bindings = { DATABASE_URL: "postgresql://u:p@localhost/db" };

type Operation = { responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }> };
type OpenApiDocument = {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

let res: Response;
let doc: OpenApiDocument;

beforeAll(async () => {
  res = await app.request("/openapi.json", {}, bindings);
  doc = (await res.clone().json()) as OpenApiDocument;
});

describe("GET /openapi.json", () => {
  it("answers 200 JSON without a tenant host", () => {
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toMatch(/application\/json/);
  });

  it("is a valid OpenAPI 3 document", async () => {
    expect(doc.openapi).toMatch(/^3\./);
    const result = await new Validator().validate(doc as unknown as Parameters<Validator["validate"]>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("lists every route with exactly its methods", () => {
    const routes = Object.fromEntries(
      Object.entries(doc.paths).map(([path, item]) => [path, Object.keys(item).filter((k) => HTTP_METHODS.includes(k)).sort()]),
    );
    expect(routes).toEqual({
      "/auth/token": ["post"],
      "/me": ["get"],
      "/users": ["get", "post"],
      "/users/{userId}": ["get"],
      "/users/{userId}/items": ["post"],
      "/items": ["get"],
      "/items/{itemId}": ["delete", "patch"],
      "/tenant": ["get"],
    });
  });

  it("documents, on every tenant route, each error status and code the request path can answer", () => {
    // Route-specific codes (404 user_not_found, 409 email_taken) are documented where they occur.
    // So are those of signing in: 401 and 403 forbidden where a route needs a user, CSRF on forms.
    const routeSpecific = new Set(["not_found", "user_not_found", "item_not_found", "email_taken", "unauthenticated", "invalid_credentials", "forbidden", "csrf_failed",
      // Sign-up on the apex (an HTML form, POST /signup, and GET /welcome: not API routes).
      "slug_taken", "host_taken", "signup_unavailable", "sign_in_link_invalid"]);
    const everywhere = Object.entries(ERROR_STATUS).filter(([code]) => !routeSpecific.has(code));
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        for (const [code, status] of everywhere) {
          const response = op.responses[String(status)] as { description?: string } | undefined;
          expect(response, `${method} ${path}: ${status}`).toBeDefined();
          expect(response!.description, `${method} ${path}: ${code}`).toContain(code);
        }
      }
    }
  });

  it("documents the userId path parameter and the paging query parameters", () => {
    type Param = { name: string; in: string; required?: boolean };
    const params = (path: string, method: string) =>
      ((doc.paths[path]![method] as unknown as { parameters?: Param[] }).parameters ?? []).map((p) => `${p.in}:${p.name}`).sort();
    expect(params("/users/{userId}", "get")).toEqual(["path:userId"]);
    expect(params("/users/{userId}/items", "post")).toEqual(["path:userId"]);
    expect(params("/users", "get")).toEqual(["query:limit", "query:skip"]);
    expect(params("/items", "get")).toEqual(["query:limit", "query:skip"]);
  });

  it("describes 400, 404 and 409 responses with the Error schema", () => {
    const errorRef = "#/components/schemas/Error";
    expect(doc.components.schemas.Error).toBeDefined();
    const expected: [path: string, method: string, statuses: string[]][] = [
      ["/users", "post", ["400", "409"]],
      ["/users", "get", ["400"]],
      ["/users/{userId}", "get", ["400", "404"]],
      ["/users/{userId}/items", "post", ["400", "404"]],
      ["/items", "get", ["400"]],
      ["/tenant", "get", ["400"]],
    ];
    for (const [path, method, statuses] of expected) {
      const responses = doc.paths[path]![method]!.responses;
      for (const status of statuses) {
        expect(responses[status], `${method.toUpperCase()} ${path} ${status}`).toBeDefined();
        expect(responses[status]!.content?.["application/json"]?.schema?.$ref, `${method.toUpperCase()} ${path} ${status}`).toBe(
          errorRef,
        );
      }
      // Every 4xx/5xx documented anywhere is the one error shape.
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) >= 400) expect(response.content?.["application/json"]?.schema?.$ref).toBe(errorRef);
      }
    }
  });

  it("declares the Error schema with code, message and requestId", () => {
    const error = doc.components.schemas.Error as { properties: { error: { properties: Record<string, unknown>; required: string[] } } };
    expect(Object.keys(error.properties.error.properties)).toEqual(expect.arrayContaining(["code", "message", "requestId", "details"]));
    expect(error.properties.error.required).toEqual(expect.arrayContaining(["code", "message", "requestId"]));
  });

  it("does not leak the password into any response schema", () => {
    const user = doc.components.schemas.User as { properties: Record<string, unknown> };
    expect(Object.keys(user.properties)).not.toContain("password");
    expect(Object.keys(user.properties)).not.toContain("hashedPassword");
  });
});

describe("authentication in the document", () => {
  type Doc = { components: { securitySchemes?: Record<string, { type: string; scheme?: string; in?: string; name?: string }> } };
  type Op = { security?: Array<Record<string, string[]>>; responses: Record<string, { description?: string }> };
  const op = (path: string, method: string) => doc.paths[path]![method] as unknown as Op;

  it("declares the bearer token and the session cookie", () => {
    const schemes = (doc as unknown as Doc).components.securitySchemes;
    expect(schemes?.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    expect(schemes?.sessionCookie).toMatchObject({ type: "apiKey", in: "cookie", name: "session" });
  });

  it("marks the routes that need a user, with their 401 (and 403 forbidden); sign-up and sign-in need none", () => {
    for (const [path, method] of [["/users", "get"], ["/users/{userId}", "get"], ["/users/{userId}/items", "post"], ["/items", "get"], ["/items/{itemId}", "patch"], ["/items/{itemId}", "delete"], ["/me", "get"]]) {
      expect(op(path!, method!).security, `${method} ${path}`).toEqual([{ bearerAuth: [] }, { sessionCookie: [] }]);
      expect(op(path!, method!).responses["401"]?.description, `${method} ${path}`).toContain("unauthenticated");
    }
    expect(op("/users", "get").responses["403"]?.description).toContain("forbidden");
    expect(op("/users", "post").security).toBeUndefined();
    expect(op("/auth/token", "post").security).toBeUndefined();
    expect(op("/auth/token", "post").responses["401"]?.description).toContain("invalid_credentials");
    expect(op("/auth/token", "post").responses["429"]?.description).toContain("Retry-After");
  });
});

describe("GET /docs", () => {
  it("answers an HTML page that loads /openapi.json", async () => {
    const page = await app.request("/docs", {}, bindings);
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toMatch(/text\/html/);
    const html = await page.text();
    expect(html).toMatch(/<!doctype html>/i);
    expect(html).toMatch(/url:\s*['"]\/openapi\.json['"]/);
    expect(html).toContain('src="/vendor/swagger-ui/swagger-ui-bundle.js"');
    expect(html).not.toMatch(/https?:\/\//);
  });
});

describe("without configuration", () => {
  it("GET /openapi.json is 500 misconfigured when DATABASE_URL is missing", async () => {
    const bad = await app.request("/openapi.json", {}, {});
    expect(bad.status).toBe(500);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("misconfigured");
  });
});
