/**
 * Images with the real `ctr` on berthd and on a private real containerd 1.6: busybox images built here from
 * Debian's busybox-static as an OCI archive and as a Docker archive; import (--no-unpack), ls, export (and the
 * export imported into containerd), tag, label, check, rm and the garbage collection that follows.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { type BuiltArchive, busyboxSkipReason, writeDockerArchive, writeOciArchive } from "../src/busybox.js";
import {
  type Berthd,
  berthWith,
  type Containerd,
  containerdSkipReason,
  contentDigests,
  ctr,
  ctrWith,
  sha256,
  startBerthd,
  startContainerd,
  stopAll,
  stopClients,
  tempDir,
  triggerGc,
  waitUntil,
} from "../src/harness.js";

const reason = containerdSkipReason() ?? busyboxSkipReason();
const NS = "images-e2e";
const OCI_NAME = "docker.io/library/busybox:oci";
const DOCKER_NAME = "docker.io/library/busybox:docker";

/** ctr prints labels in Go's random map order: sort the comma-separated pairs of a `ctr images label` answer. */
const sortPairs = (line: string): string => line.trim().split(",").sort().join(",");

describe.skipIf(reason !== undefined)(
  reason ? `images with ctr (skipped: ${reason})` : "images with ctr on berthd and containerd",
  () => {
    let berthd: Berthd;
    let containerd: Containerd;
    let dir: string;
    let oci: BuiltArchive;
    let docker: BuiltArchive;

    beforeAll(async () => {
      [berthd, containerd, dir] = await Promise.all([startBerthd(), startContainerd(), tempDir()]);
      oci = await writeOciArchive(join(dir, "busybox-oci.tar"), OCI_NAME);
      docker = await writeDockerArchive(join(dir, "busybox-docker.tar"), "busybox:docker");
    }, 60_000);
    afterEach(stopClients);
    afterAll(stopAll);

    const daemons = () =>
      [
        ["berthd", berthd.socket],
        ["containerd", containerd.socket],
      ] as const;

    /** Runs the same ctr command on both daemons. */
    const both = async (...args: string[]) => {
      const [b, c] = await Promise.all(
        daemons().map(([, socket]) => ctrWith(socket, ["-n", NS, ...args], { timeoutMs: 60_000 })),
      );
      return { b: b!, c: c! };
    };

    test("ctr images import --no-unpack of an OCI and a Docker archive succeeds as on containerd", async () => {
      for (const archive of [oci, docker]) {
        const { b, c } = await both("images", "import", "--no-unpack", archive.path);
        expect({ code: b.code, stdout: b.stdout, stderr: b.stderr }).toEqual({
          code: c.code,
          stdout: c.stdout,
          stderr: c.stderr,
        });
        expect(b.code).toBe(0);
      }
      // the same blobs are kept: the OCI index, amd64 manifest, config and layer, and the Docker image's manifest
      // and uncompressed layer. Collected: the arm64 manifest and config (import labels only the host platform's
      // children) and, on both daemons, the blobs ctr writes for every other tar member (VERSION, json, …).
      const ls = await ctr(containerd.socket, "-n", NS, "images", "ls", `name==${DOCKER_NAME}`);
      const dockerManifest = ls.stdout.split("\n")[1]?.split(/\s+/)[2] ?? "";
      const [layer, config, manifest, , , index] = oci.blobs;
      const want = [layer, config, manifest, index, docker.blobs[0], dockerManifest].sort();
      for (const [name, socket] of daemons()) {
        await triggerGc(socket, NS);
        await waitUntil(
          `${name} to keep exactly the images' blobs`,
          async () => {
            const got = (await contentDigests(socket, NS)).sort();
            return JSON.stringify(got) === JSON.stringify(want) ? true : undefined;
          },
          10_000,
          100,
        );
      }
      expect(want).toContain(oci.target);
    });

    test.each([
      ["ls", ["images", "ls"]],
      ["ls -q", ["images", "ls", "-q"]],
      ["ls by name", ["images", "ls", `name==${OCI_NAME}`]],
      ["ls by target media type", ["images", "ls", "target.mediatype==application/vnd.oci.image.index.v1+json"]],
      ["ls by a bad filter", ["images", "ls", "name=="]],
      ["check", ["images", "check"]],
    ])("ctr images %s prints what containerd prints", async (_name, args) => {
      const { b, c } = await both(...args);
      expect(b.stdout).toBe(c.stdout);
      expect({ code: b.code, stderr: b.stderr }).toEqual({ code: c.code, stderr: c.stderr });
    });

    test("ctr images ls shows name, type, digest, size and platforms", async () => {
      const { b } = await both("images", "ls");
      const lines = b.stdout.split("\n").filter((l) => l !== "");
      expect(lines[0]?.split(/\s+/).filter((x) => x !== "")).toEqual([
        "REF",
        "TYPE",
        "DIGEST",
        "SIZE",
        "PLATFORMS",
        "LABELS",
      ]);
      const ociLine = lines.find((l) => l.startsWith(`${OCI_NAME} `))?.split(/\s+/);
      expect(ociLine?.slice(0, 3)).toEqual([OCI_NAME, "application/vnd.oci.image.index.v1+json", oci.target]);
      expect(ociLine?.slice(5, 6)).toEqual(["linux/amd64,linux/arm64/v8"]);
      const dockerLine = lines.find((l) => l.startsWith(`${DOCKER_NAME} `))?.split(/\s+/);
      expect(dockerLine?.[1]).toBe("application/vnd.docker.distribution.manifest.v2+json");
      expect(dockerLine?.[5]).toBe("linux/amd64");
    });

    test("ctr images export writes the bytes containerd writes, and containerd imports it with the same digests", async () => {
      for (const name of [OCI_NAME, DOCKER_NAME]) {
        const out = { b: join(dir, "b-out.tar"), c: join(dir, "c-out.tar") };
        const [b, c] = await Promise.all([
          ctrWith(berthd.socket, ["-n", NS, "images", "export", out.b, name], { timeoutMs: 60_000 }),
          ctrWith(containerd.socket, ["-n", NS, "images", "export", out.c, name], { timeoutMs: 60_000 }),
        ]);
        expect({ code: b.code, stderr: b.stderr }).toEqual({ code: c.code, stderr: c.stderr });
        expect(sha256(await readFile(out.b))).toBe(sha256(await readFile(out.c)));

        // berthd's archive into the real containerd, in a namespace of its own
        const imported = await ctrWith(
          containerd.socket,
          ["-n", "roundtrip", "images", "import", "--no-unpack", out.b],
          { timeoutMs: 60_000 },
        );
        expect({ code: imported.code, stderr: imported.stderr }).toEqual({ code: 0, stderr: "" });
        const want = await ctr(containerd.socket, "-n", NS, "images", "ls", `name==${name}`);
        const got = await ctr(containerd.socket, "-n", "roundtrip", "images", "ls", `name==${name}`);
        expect(got.stdout).toBe(want.stdout);
      }
    });

    test("ctr images tag", async () => {
      for (const args of [
        ["images", "tag", OCI_NAME, "busybox:tagged"],
        ["images", "tag", OCI_NAME, "busybox:tagged"],
        ["images", "tag", "--force", DOCKER_NAME, "busybox:tagged"],
        ["images", "tag", "busybox:missing", "busybox:other"],
      ]) {
        const { b, c } = await both(...args);
        expect({ code: b.code, stdout: b.stdout, stderr: b.stderr }).toEqual({
          code: c.code,
          stdout: c.stdout,
          stderr: c.stderr,
        });
      }
      const { b, c } = await both("images", "ls", "name==busybox:tagged");
      expect(b.stdout).toBe(c.stdout);
      expect(b.stdout).toContain("application/vnd.docker.distribution.manifest.v2+json");
    });

    test("ctr images label", async () => {
      for (const args of [
        ["images", "label", "busybox:tagged", "foo=bar", "baz=qux"],
        ["images", "label", "busybox:tagged", "foo="],
        ["images", "label", "busybox:missing", "foo=bar"],
      ]) {
        const { b, c } = await both(...args);
        expect({ code: b.code, stdout: sortPairs(b.stdout), stderr: b.stderr }).toEqual({
          code: c.code,
          stdout: sortPairs(c.stdout),
          stderr: c.stderr,
        });
      }
      const { b, c } = await both("images", "ls", "labels.baz==qux");
      expect(b.stdout).toBe(c.stdout);
      expect(b.stdout).toContain("baz=qux");
    });

    test("berth images import, ls, check and export agree with ctr", async () => {
      const ns = "images-berth-cli";
      for (const archive of [oci, docker]) {
        const r = await berthWith(berthd.socket, ["-n", ns, "images", "import", "--no-unpack", archive.path], {
          timeoutMs: 60_000,
        });
        expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: "" });
      }
      // berth's table for berth's import is ctr's table for ctr's import
      const mine = await berthWith(berthd.socket, ["-n", ns, "images", "ls"]);
      const theirs = await ctr(containerd.socket, "-n", NS, "images", "ls", "name~=^docker.io/");
      expect(mine.stdout).toBe(theirs.stdout);
      expect((await ctr(berthd.socket, "-n", ns, "images", "ls")).stdout).toBe(theirs.stdout);
      const check = await berthWith(berthd.socket, ["-n", ns, "images", "check"]);
      expect(check.code).toBe(0);
      expect(check.stdout).toContain("complete (2/2)");

      // berth's export imports into containerd as the same image
      const out = join(dir, "berth-export.tar");
      const exported = await berthWith(berthd.socket, ["-n", ns, "images", "export", out, OCI_NAME, DOCKER_NAME], {
        timeoutMs: 60_000,
      });
      expect({ code: exported.code, stderr: exported.stderr }).toEqual({ code: 0, stderr: "" });
      const imported = await ctrWith(
        containerd.socket,
        ["-n", "berth-export", "images", "import", "--no-unpack", out],
        {
          timeoutMs: 60_000,
        },
      );
      expect({ code: imported.code, stderr: imported.stderr }).toEqual({ code: 0, stderr: "" });
      const roundtrip = await ctr(containerd.socket, "-n", "berth-export", "images", "ls");
      expect(roundtrip.stdout).toBe(theirs.stdout);
    });

    test("a namespace with images cannot be removed", async () => {
      const { b, c } = await both("namespaces", "rm", NS);
      expect(b.code).toBe(c.code);
      expect(b.code).not.toBe(0);
      expect(b.stderr).toContain("images");
    });

    test("ctr images rm removes the images, and the blobs nothing else references are collected", async () => {
      const { b, c } = await both("images", "rm", "busybox:tagged", DOCKER_NAME, "busybox:nope");
      expect({ code: b.code, stdout: b.stdout }).toEqual({ code: c.code, stdout: c.stdout });
      // only the OCI image is left: its index, amd64 manifest, config (shared with the Docker image) and layer
      // stay; the Docker image's own manifest and uncompressed layer go, on both daemons
      const [layer, config, manifest, , , index] = oci.blobs;
      const ociBlobs = [layer, config, manifest, index].sort();
      for (const [name, socket] of daemons()) {
        await triggerGc(socket, NS);
        await waitUntil(
          `${name} to collect the Docker image's blobs`,
          async () => {
            const got = (await contentDigests(socket, NS)).sort();
            return JSON.stringify(got) === JSON.stringify(ociBlobs) ? true : undefined;
          },
          10_000,
          100,
        );
      }

      const last = await both("images", "rm", "--sync", OCI_NAME);
      expect({ code: last.b.code, stdout: last.b.stdout }).toEqual({ code: last.c.code, stdout: last.c.stdout });
      for (const [name, socket] of daemons()) {
        await waitUntil(
          `${name} to collect every blob`,
          async () => ((await contentDigests(socket, NS)).length === 0 ? true : undefined),
          10_000,
          100,
        );
      }
      const ls = await both("images", "ls", "-q");
      expect(ls.b.stdout).toBe("");
      expect(ls.c.stdout).toBe("");
      // and now the namespace can go
      const rm = await both("namespaces", "rm", NS);
      expect({ code: rm.b.code, stdout: rm.b.stdout }).toEqual({ code: rm.c.code, stdout: rm.c.stdout });
    });
  },
);
