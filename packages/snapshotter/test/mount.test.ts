import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compactLowerdir, isMounted, mountAll, unmountAll } from "../src/mount.js";
import { mountUnsupportedReason } from "../src/testsuite/index.js";

describe("compactLowerdir", () => {
  it("leaves short options alone", () => {
    const options = ["index=off", "lowerdir=/a/1/fs:/a/2/fs"];
    expect(compactLowerdir(options)).toEqual({ options });
  });

  it("makes long lowerdirs relative to their common directory", () => {
    const dirs = Array.from({ length: 200 }, (_, i) => `/var/lib/berth/snapshots/${i + 1}/fs`);
    const options = ["index=off", "workdir=/w", "upperdir=/u", `lowerdir=${dirs.join(":")}`];
    const out = compactLowerdir(options);
    expect(out.cwd).toBe("/var/lib/berth/snapshots");
    expect(out.options.slice(0, 3)).toEqual(options.slice(0, 3));
    expect(out.options[3]).toBe(`lowerdir=${dirs.map((_, i) => `${i + 1}/fs`).join(":")}`);
  });
});

describe("mountAll / unmountAll", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-mount-"));
  });
  afterEach(async () => {
    await unmountAll(join(dir, "target"), { detach: true }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  });

  it("unmountAll is a no-op when nothing is mounted or the target is missing", async () => {
    await unmountAll(join(dir, "nothing"));
    await mkdir(join(dir, "target"));
    await unmountAll(join(dir, "target"));
    expect(await isMounted(join(dir, "target"))).toBe(false);
  });

  it("mounts stacked mounts and sub-targets, and unmounts them all", async (t) => {
    const reason = await mountUnsupportedReason();
    if (reason !== undefined) t.skip(reason);
    const src = join(dir, "src");
    const target = join(dir, "target");
    await mkdir(join(src, "sub"), { recursive: true });
    await mkdir(target);
    await writeFile(join(src, "f"), "f");
    await mountAll(
      [
        { type: "bind", source: src, options: ["ro", "rbind"] },
        { type: "tmpfs", source: "tmpfs", target: "sub", options: ["size=1m"] },
      ],
      target,
    );
    expect(await isMounted(target)).toBe(true);
    expect(await readFile(join(target, "f"), "utf8")).toBe("f");
    expect(await isMounted(join(target, "sub"))).toBe(true);
    await expect(writeFile(join(target, "g"), "g")).rejects.toMatchObject({ code: "EROFS" });
    await unmountAll(target);
    expect(await isMounted(target)).toBe(false);
    expect(await isMounted(join(target, "sub"))).toBe(false);
  });

  it("undoes earlier mounts when a later one fails", async (t) => {
    const reason = await mountUnsupportedReason();
    if (reason !== undefined) t.skip(reason);
    const target = join(dir, "target");
    await mkdir(target);
    await expect(
      mountAll(
        [
          { type: "tmpfs", source: "tmpfs", options: [] },
          { type: "bind", source: join(dir, "missing"), options: ["rbind"] },
        ],
        target,
      ),
    ).rejects.toThrow(/mount bind/);
    expect(await isMounted(target)).toBe(false);
  });
});
