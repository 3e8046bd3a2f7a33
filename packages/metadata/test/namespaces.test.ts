import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isAlreadyExists, isFailedPrecondition, isInvalidArgument, isNotFound } from "@berth/errdefs";
import { afterEach, describe, expect, it } from "vitest";
import { openMetadataDb } from "../src/index.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe("NamespaceStore", () => {
  it("creates, lists in key order, labels and deletes", () => {
    const { namespaces } = openMetadataDb(":memory:");
    namespaces.create("zeta");
    namespaces.create("alpha", { a: "1" });
    expect(namespaces.list()).toEqual(["alpha", "zeta"]);
    namespaces.setLabel("alpha", "b", "2");
    namespaces.setLabel("alpha", "a", "");
    expect(namespaces.labels("alpha")).toEqual({ b: "2" });
    namespaces.replaceLabels("alpha", { c: "3" });
    expect(namespaces.labels("alpha")).toEqual({ c: "3" });
    namespaces.delete("zeta");
    expect(namespaces.list()).toEqual(["alpha"]);
  });

  it("answers unknown namespaces with no labels, and errors with containerd's kinds", () => {
    const { namespaces } = openMetadataDb(":memory:");
    expect(namespaces.labels("nope")).toEqual({});
    namespaces.create("a");
    expect(() => namespaces.create("a")).toThrow(expect.objectContaining({ message: 'namespace "a": already exists' }));
    expect(() => namespaces.create("a")).toSatisfy((fn: () => void) => {
      try {
        fn();
        return false;
      } catch (e) {
        return isAlreadyExists(e);
      }
    });
    for (const bad of ["", "A/B", "-x", "a".repeat(77), "a..b"]) {
      let err: unknown;
      try {
        namespaces.create(bad);
      } catch (e) {
        err = e;
      }
      expect(isInvalidArgument(err), bad).toBe(true);
    }
    let missing: unknown;
    try {
      namespaces.delete("nope");
    } catch (e) {
      missing = e;
    }
    expect(isNotFound(missing)).toBe(true);
    let big: unknown;
    try {
      namespaces.setLabel("a", "k", "v".repeat(5000));
    } catch (e) {
      big = e;
    }
    expect(isInvalidArgument(big)).toBe(true);
    expect(namespaces.labels("a")).toEqual({});
  });

  it("refuses to delete a namespace that still holds objects", () => {
    const { namespaces } = openMetadataDb(":memory:");
    namespaces.create("busy");
    namespaces.addContentProbe((ns) => (ns === "busy" ? "images" : undefined));
    let err: unknown;
    try {
      namespaces.delete("busy");
    } catch (e) {
      err = e;
    }
    expect(isFailedPrecondition(err)).toBe(true);
    expect((err as Error).message).toBe('namespace "busy" must be empty, but it still has images: failed precondition');
    expect(namespaces.list()).toEqual(["busy"]);
  });

  it("persists across reopen", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-meta-"));
    dirs.push(dir);
    const first = openMetadataDb(dir);
    first.namespaces.create("kept", { k: "v" });
    first.close();
    const second = openMetadataDb(dir);
    expect(second.namespaces.list()).toEqual(["kept"]);
    expect(second.namespaces.labels("kept")).toEqual({ k: "v" });
    second.close();
  });
});
