import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { chainID, chainIDs, familiarizeReference, normalizeReference, ociReferenceName } from "../src/index.js";

const sha = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;

describe("chainID", () => {
  const a = `sha256:${"a".repeat(64)}`;
  const b = `sha256:${"b".repeat(64)}`;
  const c = `sha256:${"c".repeat(64)}`;

  it("is the diffID for one layer and chains sha256(parent + ' ' + diffID)", () => {
    expect(chainIDs([])).toEqual([]);
    expect(chainID([])).toBeUndefined();
    expect(chainID([a])).toBe(a);
    const ab = sha(`${a} ${b}`);
    expect(chainIDs([a, b, c])).toEqual([a, ab, sha(`${ab} ${c}`)]);
  });

  it("matches known values", () => {
    expect(chainIDs([a, b, c])).toEqual([
      a,
      "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c",
      "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588",
    ]);
  });

  it("rejects malformed diffIDs", () => {
    expect(() => chainIDs(["sha256:nothex"])).toThrow(/invalid digest/);
  });
});

describe("references", () => {
  it.each([
    ["alpine", "docker.io/library/alpine:latest", "alpine:latest"],
    ["alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"],
    ["library/alpine", "docker.io/library/alpine:latest", "alpine:latest"],
    ["foo/bar:1", "docker.io/foo/bar:1", "foo/bar:1"],
    ["index.docker.io/foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"],
    ["localhost:5000/x/y:t", "localhost:5000/x/y:t", "localhost:5000/x/y:t"],
    ["ghcr.io/a/b:v1", "ghcr.io/a/b:v1", "ghcr.io/a/b:v1"],
  ])("%s", (ref, normalized, familiar) => {
    expect(normalizeReference(ref)).toBe(normalized);
    expect(familiarizeReference(normalized)).toBe(familiar);
  });

  it("keeps only the digest when both tag and digest are given", () => {
    const d = `sha256:${"1".repeat(64)}`;
    expect(normalizeReference(`alpine:3@${d}`)).toBe(`docker.io/library/alpine@${d}`);
  });

  it("rejects bad references", () => {
    expect(() => normalizeReference("Alpine")).toThrow(/lowercase/);
    expect(() => normalizeReference("a".repeat(64).replace(/a/g, "f"))).toThrow(/64-byte/);
    expect(() => normalizeReference("foo:bad tag")).toThrow(/invalid/);
  });

  it("derives the OCI ref name", () => {
    expect(ociReferenceName("docker.io/library/alpine:latest")).toBe("latest");
    expect(ociReferenceName("localhost:5000/x:v1")).toBe("v1");
    expect(ociReferenceName(`docker.io/library/alpine@sha256:${"1".repeat(64)}`)).toBe(`@sha256:${"1".repeat(64)}`);
    expect(ociReferenceName("alpine:latest")).toBe("alpine:latest");
  });
});
