// The API reference's assets (Swagger UI), copied from the pinned npm package swagger-ui-dist into
// public/vendor/swagger-ui/, which wrangler serves as static assets: /docs loads nothing from a CDN.
//   npm run assets:vendor            copy (after changing swagger-ui-dist's pinned version)
//   npm run assets:vendor -- --check  exit 1 when the committed copy differs from the package
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const VENDOR_DIR = join(root, "public", "vendor", "swagger-ui");
export const SWAGGER_UI_FILES = ["swagger-ui.css", "swagger-ui-bundle.js", "LICENSE", "NOTICE"];
const packageDir = join(root, "node_modules", "swagger-ui-dist");

/** The files whose committed copy differs from the installed package. */
export function staleFiles(): string[] {
  return SWAGGER_UI_FILES.filter((file) => {
    const copy = join(VENDOR_DIR, file);
    return !existsSync(copy) || !readFileSync(copy).equals(readFileSync(join(packageDir, file)));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (!existsSync(packageDir)) {
    console.error("error: node_modules/swagger-ui-dist is missing: run `npm ci` first");
    process.exit(1);
  }
  const version = (JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string }).version;
  if (process.argv.includes("--check")) {
    const stale = staleFiles();
    if (stale.length) {
      console.error(`error: public/vendor/swagger-ui differs from swagger-ui-dist ${version} (${stale.join(", ")}): run \`npm run assets:vendor\``);
      process.exit(1);
    }
    console.log(`public/vendor/swagger-ui matches swagger-ui-dist ${version}`);
  } else {
    mkdirSync(VENDOR_DIR, { recursive: true });
    for (const file of SWAGGER_UI_FILES) copyFileSync(join(packageDir, file), join(VENDOR_DIR, file));
    console.log(`copied swagger-ui-dist ${version} to public/vendor/swagger-ui (${SWAGGER_UI_FILES.join(", ")})`);
  }
}
