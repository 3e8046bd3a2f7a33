import { chmod, lstat, mkdtemp, readFile, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlreadyExists, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createBundle, deleteBundle, parseRuntimeConfig, resolveShimBinary, shimBinaryName } from "../src/index.js";

const catchErr = async (fn: () => unknown): Promise<unknown> => {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected an error");
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-runtime-v2-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("shim binary names", () => {
  it("maps runtime names as containerd does", () => {
    expect(shimBinaryName("io.containerd.runc.v2")).toBe("containerd-shim-runc-v2");
    expect(shimBinaryName("io.containerd.berth.v2")).toBe("containerd-shim-berth-v2");
    expect(shimBinaryName("runc.v1")).toBe("containerd-shim-runc-v1");
    expect(shimBinaryName("runc")).toBe("");
  });

  it("resolves on PATH, absolute paths as given; bad names and missing binaries are errors", async () => {
    const bin = join(dir, "containerd-shim-fake-v9");
    await writeFile(bin, "#!/bin/sh\n");
    await chmod(bin, 0o755);
    expect(resolveShimBinary("io.containerd.fake.v9", { path: `/nonexistent:${dir}` })).toBe(bin);
    expect(resolveShimBinary(bin)).toBe(bin);
    expect(isNotFound(await catchErr(() => resolveShimBinary("io.containerd.nope.v9", { path: dir })))).toBe(true);
    expect(isNotFound(await catchErr(() => resolveShimBinary(join(dir, "missing"))))).toBe(true);
    expect(isInvalidArgument(await catchErr(() => resolveShimBinary("runc")))).toBe(true);
    expect(isInvalidArgument(await catchErr(() => resolveShimBinary("")))).toBe(true);
    // a not-executable file is not a shim
    const plain = join(dir, "containerd-shim-plain-v1");
    await writeFile(plain, "");
    expect(isNotFound(await catchErr(() => resolveShimBinary("io.containerd.plain.v1", { path: dir })))).toBe(true);
  });
});

describe("bundles", () => {
  it("creates config.json, rootfs and the work link; deletes both dirs", async () => {
    const root = join(dir, "root");
    const state = join(dir, "state");
    const b = await createBundle(root, state, "ns", "t1", Buffer.from("{}"));
    expect(b.path).toBe(join(state, "ns", "t1"));
    expect(await readFile(join(b.path, "config.json"), "utf8")).toBe("{}");
    expect((await lstat(join(b.path, "rootfs"))).isDirectory()).toBe(true);
    expect(await readlink(join(b.path, "work"))).toBe(join(root, "ns", "t1"));
    expect(((await lstat(b.path)).mode & 0o777).toString(8)).toBe("700");
    expect(isAlreadyExists(await catchErr(() => createBundle(root, state, "ns", "t1", Buffer.from("{}"))))).toBe(true);
    // the failed second create left the first bundle alone
    expect(await readFile(join(b.path, "config.json"), "utf8")).toBe("{}");
    await deleteBundle(b);
    expect(await readdir(join(state, "ns"))).toEqual([]);
    expect(await readdir(join(root, "ns"))).toEqual([]);
    await deleteBundle(b); // twice is fine
  });

  it("refuses ids that are not identifiers (no traversal)", async () => {
    for (const id of ["../x", "a/b", "", ".hidden"]) {
      expect(isInvalidArgument(await catchErr(() => createBundle(dir, dir, "ns", id, Buffer.from("{}"))))).toBe(true);
    }
    expect(isInvalidArgument(await catchErr(() => createBundle(dir, dir, "../ns", "x", Buffer.from("{}"))))).toBe(true);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("runtime config", () => {
  it("reads runtime mappings with runc options", () => {
    const cfg = parseRuntimeConfig({
      runtimes: {
        "io.containerd.crun.v2": {
          binary: "/usr/bin/containerd-shim-runc-v2",
          options: { BinaryName: "/usr/bin/crun" },
        },
      },
      sched_core: false,
    });
    const m = cfg.runtimes["io.containerd.crun.v2"];
    expect(m?.binary).toBe("/usr/bin/containerd-shim-runc-v2");
    expect(m?.options?.typeUrl).toBe("containerd.runc.v1.Options");
    expect(Buffer.from(m?.options?.value ?? []).toString()).toContain("/usr/bin/crun");
    expect(parseRuntimeConfig(undefined).runtimes).toEqual({});
  });

  it("rejects bad tables", async () => {
    for (const raw of [
      5,
      { runtimes: 1 },
      { runtimes: { x: { binary: "relative" } } },
      { runtimes: { x: { options: { BinaryName: 1 } } } },
    ]) {
      expect(isInvalidArgument(await catchErr(() => parseRuntimeConfig(raw)))).toBe(true);
    }
  });
});
