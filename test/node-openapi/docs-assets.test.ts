// /docs works offline: its Swagger UI files are committed under public/vendor/swagger-ui (served as
// Workers static assets) and are exactly those of the swagger-ui-dist version package.json pins.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SWAGGER_UI_FILES, staleFiles } from "../../scripts/vendor-assets.ts";

describe("the API reference's assets", () => {
  it("pins swagger-ui-dist to one exact version", () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { dependencies: Record<string, string> };
    expect(pkg.dependencies["swagger-ui-dist"]).toMatch(/^\d+\.\d+\.\d+$/);
    const installed = JSON.parse(readFileSync("node_modules/swagger-ui-dist/package.json", "utf8")) as { version: string };
    expect(installed.version).toBe(pkg.dependencies["swagger-ui-dist"]);
  });

  it("are committed exactly as the pinned package ships them", () => {
    expect(SWAGGER_UI_FILES).toEqual(expect.arrayContaining(["swagger-ui.css", "swagger-ui-bundle.js"]));
    expect(staleFiles()).toEqual([]);
    const check = spawnSync(process.execPath, ["scripts/vendor-assets.ts", "--check"], { encoding: "utf8" });
    expect(check.status, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^public\/vendor\/swagger-ui matches swagger-ui-dist \d+\.\d+\.\d+\n$/);
  });

  it("are served by wrangler from the [assets] directory", () => {
    expect(readFileSync("wrangler.toml", "utf8")).toMatch(/\[assets\]\ndirectory = "\.\/public"/);
  });
});
