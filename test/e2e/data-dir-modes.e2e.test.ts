// Starting the embedded PostgreSQL as root makes the data folder's parents searchable by the
// `postgres` user, and nothing more: a parent's own mode (the sticky, world-writable /tmp above
// all) is kept. Setting 0755 outright once left /tmp at 0755, and apt then failed to write there.
import { mkdir, mkdtemp, rm, stat, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { prepareDataDir } from "../../scripts/local/postgres.ts";

const asRoot = process.getuid?.() === 0;
const scratch = await mkdtemp(join(tmpdir(), "edge-tenants-modes-"));
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe.skipIf(!asRoot)("data folder parents (as root)", () => {
  it("keeps a sticky, world-writable parent's mode", async () => {
    const parent = join(scratch, "shared-tmp");
    await mkdir(parent);
    await chmod(parent, 0o1777);
    await prepareDataDir(join(parent, "app", "pgdata"));
    expect(((await stat(parent)).mode & 0o7777).toString(8)).toBe("1777");
  });

  it("adds only the search bit to a private parent", async () => {
    const parent = join(scratch, "private");
    await mkdir(parent);
    await chmod(parent, 0o700);
    await prepareDataDir(join(parent, "pgdata"));
    expect(((await stat(parent)).mode & 0o7777).toString(8)).toBe("701");
  });
});
