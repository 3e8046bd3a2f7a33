// The walking differ and the Diff service through its gRPC client (in-memory Connect), applying into plain
// directories given as writable bind mounts (applied in place: no mount(8), no root needed).
import fs from "node:fs";
import path from "node:path";
import {
  isFailedPrecondition,
  isInvalidArgument,
  isNotFound,
  isNotImplemented,
  isResourceExhausted,
} from "@berth/errdefs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MEDIA_TYPE_LAYER, MEDIA_TYPE_LAYER_GZIP } from "../src/differ.js";
import { createDiffClient } from "../src/proxy/index.js";
import { type Env, makeEnv, putBlob, serveDiff } from "./differ-helpers.js";
import { gzip, makeTar, sha256 } from "./helpers.js";

const ctx = { namespace: "default" };

describe("walking differ through the Diff service", () => {
  let env: Env;
  beforeEach(async () => {
    env = await makeEnv();
  });
  afterEach(() => env.cleanup());

  const target = (name: string) => {
    const dir = path.join(env.dir, name);
    fs.mkdirSync(dir);
    return dir;
  };

  it("applies a gzip layer onto a writable bind mount and returns the diffID", async () => {
    const tar = await makeTar([
      { name: "bin/", type: "directory" },
      { name: "bin/tool", body: "#!/bin/sh\n", mode: 0o755 },
      { name: "bin/alias", type: "symlink", linkname: "tool" },
    ]);
    const blob = gzip(tar);
    await putBlob(env.store, blob, sha256(blob));
    const client = createDiffClient(serveDiff(env.differ));
    const root = target("root");
    const applied = await client.apply(
      ctx,
      { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(blob), size: blob.length },
      [{ type: "bind", source: root, options: ["rw", "rbind"] }],
    );
    expect(applied).toEqual({ mediaType: MEDIA_TYPE_LAYER, digest: sha256(tar), size: tar.length });
    expect(fs.readFileSync(path.join(root, "bin/tool"), "utf8")).toBe("#!/bin/sh\n");
    expect(fs.statSync(path.join(root, "bin/tool")).mode & 0o777).toBe(0o755);
    expect(fs.readlinkSync(path.join(root, "bin/alias"))).toBe("tool");
  });

  it("maps failures to error kinds: bad digest, missing blob, no mounts, not a layer, corrupt data, no namespace", async () => {
    const client = createDiffClient(serveDiff(env.differ));
    const mounts = [{ type: "bind", source: target("root"), options: ["rw", "rbind"] }];
    const desc = (digest: string, mediaType = MEDIA_TYPE_LAYER_GZIP) => ({ mediaType, digest, size: 10 });

    const bad = await client.apply(ctx, desc("sha256:nothex"), mounts).catch((e: unknown) => e);
    expect(isInvalidArgument(bad), String(bad)).toBe(true);

    const missing = await client.apply(ctx, desc(sha256(Buffer.from("absent"))), mounts).catch((e: unknown) => e);
    expect(isNotFound(missing), String(missing)).toBe(true);

    const blob = gzip(await makeTar([{ name: "a", body: "a" }]));
    await putBlob(env.store, blob, sha256(blob));
    const none = await client.apply(ctx, desc(sha256(blob)), []).catch((e: unknown) => e);
    expect(isInvalidArgument(none), String(none)).toBe(true);

    const config = await client
      .apply(ctx, desc(sha256(blob), "application/vnd.oci.image.config.v1+json"), mounts)
      .catch((e: unknown) => e);
    expect(isNotImplemented(config), String(config)).toBe(true);

    const corrupt = Buffer.from(blob);
    corrupt[corrupt.length - 6] = corrupt[corrupt.length - 6]! ^ 0xff;
    await putBlob(env.store, corrupt, sha256(corrupt));
    const lost = await client.apply(ctx, desc(sha256(corrupt)), mounts).catch((e: unknown) => e);
    expect((lost as Error).message).toMatch(/layer stream corrupt|truncated|checksum/);

    const noNs = await client.apply({ namespace: "" }, desc(sha256(blob)), mounts).catch((e: unknown) => e);
    expect(isFailedPrecondition(noNs), String(noNs)).toBe(true);
  });

  it("stops a decompression bomb at the expansion cap", async () => {
    const small = createDiffClient(
      serveDiff(
        (await import("../src/walking/index.js")).createWalkingDiffer({
          content: env.store,
          maxExpansion: { floor: 1 << 20, ratio: 4 },
        }),
      ),
    );
    const blob = gzip(await makeTar([{ name: "zeros", body: Buffer.alloc(8 << 20) }]));
    await putBlob(env.store, blob, sha256(blob));
    const err = await small
      .apply(ctx, { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(blob), size: blob.length }, [
        { type: "bind", source: target("root"), options: ["rw"] },
      ])
      .catch((e: unknown) => e);
    expect(isResourceExhausted(err), String(err)).toBe(true);
  });

  it("applies on a worker thread (streamed, or reading the blob file) with the same results and error kinds", async () => {
    const { createWalkingDiffer } = await import("../src/walking/index.js");
    const tar = await makeTar([
      { name: "d/", type: "directory" },
      { name: "d/f", body: Buffer.alloc(300_000, 3) },
      { name: "d/l", type: "symlink", linkname: "f" },
    ]);
    const blob = gzip(tar);
    await putBlob(env.store, blob, sha256(blob));
    const bad = gzip(await makeTar([{ name: "x".repeat(300), body: "long" }]));
    await putBlob(env.store, bad, sha256(bad));
    const blobFile = (digest: string) => path.join(env.dir, "content", "blobs", "sha256", digest.slice(7));
    for (const [what, differ] of [
      ["streamed", createWalkingDiffer({ content: env.store, workerMinSize: 0, worker: true })],
      ["file", createWalkingDiffer({ content: env.store, workerMinSize: 0, worker: true, blobFile })],
    ] as const) {
      const client = createDiffClient(serveDiff(differ));
      const root = target(`root-${what}`);
      const mounts = [{ type: "bind", source: root, options: ["rw"] }];
      const applied = await client.apply(
        ctx,
        { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(blob), size: blob.length },
        mounts,
      );
      expect(applied, what).toEqual({ mediaType: MEDIA_TYPE_LAYER, digest: sha256(tar), size: tar.length });
      expect(fs.statSync(path.join(root, "d/f")).size).toBe(300_000);
      expect(fs.readlinkSync(path.join(root, "d/l"))).toBe("f");
      const err = await client
        .apply(ctx, { mediaType: MEDIA_TYPE_LAYER_GZIP, digest: sha256(bad), size: bad.length }, mounts)
        .catch((e: unknown) => e);
      expect(isInvalidArgument(err), `${what}: ${String(err)}`).toBe(true);
      expect((err as Error).message).toMatch(/name too long/);
    }
  });

  it("rejects an unsupported media type for Diff with NotImplemented", async () => {
    const client = createDiffClient(serveDiff(env.differ));
    const err = await client
      .compare(ctx, [], [], { mediaType: "application/vnd.oci.image.layer.v1.tar+zstd" })
      .catch((e: unknown) => e);
    expect(isNotImplemented(err), String(err)).toBe(true);
  });
});
