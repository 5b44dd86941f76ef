// Debian's Chromium, driven by playwright-core (which cannot download a browser here). CI installs
// it and sets REQUIRE_BROWSER, so there the browser tests run instead of being skipped.
import { existsSync } from "node:fs";

const CHROMIUM = "/usr/bin/chromium";

/** Whether the browser tests run: Chromium is installed, or CI requires them. */
export const browserAvailable = existsSync(CHROMIUM) || Boolean(process.env.REQUIRE_BROWSER);

export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}
