import { readdir } from "node:fs/promises";
import { PassThrough } from "node:stream";
import { gzipSync } from "node:zlib";
import { errorKind, isInvalidArgument, isNotImplemented } from "@berth/errdefs";
import {
  type Descriptor,
  MediaTypeDockerSchema2Layer,
  MediaTypeDockerSchema2LayerGzip,
  MediaTypeImageConfig,
  MediaTypeImageIndex,
  MediaTypeImageLayerGzip,
  MediaTypeImageManifest,
  digestOf,
} from "@berth/oci-spec";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { exportArchive, importImages } from "../src/archive/index.js";
import { check, diffIDs, imagePlatforms, imageSize, readBlob, resolveManifest } from "../src/index.js";
import { parse, only, onlyStrict } from "../src/platforms/index.js";
import { type TarInput, type TempStore, buildImage, chunked, ctx, makeTar, put, tempStore } from "./helpers.js";

let t: TempStore;
beforeEach(async () => {
  t = await tempStore();
});
afterEach(async () => {
  await t.cleanup();
});

const blobEntry = (data: Uint8Array | string): TarInput => {
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  return { name: `blobs/sha256/${digestOf(bytes).slice(7)}`, data: bytes };
};

/** A two-platform OCI layout archive: index.json → index → (amd64, arm64 manifests). */
async function ociArchive(options: { refName?: string; extra?: TarInput[] } = {}) {
  const entries: TarInput[] = [{ name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' }];
  const manifests: Descriptor[] = [];
  for (const arch of ["amd64", "arm64"]) {
    const img = await buildImage(arch, ["a", "b"]);
    const config = { mediaType: MediaTypeImageConfig, digest: digestOf(img.config), size: img.config.byteLength };
    const layers = img.layers.map((l) => ({
      mediaType: MediaTypeImageLayerGzip,
      digest: digestOf(l),
      size: l.byteLength,
    }));
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypeImageManifest, config, layers }));
    entries.push(blobEntry(img.config), ...img.layers.map(blobEntry), blobEntry(m));
    manifests.push({
      mediaType: MediaTypeImageManifest,
      digest: digestOf(m),
      size: m.byteLength,
      platform: { os: "linux", architecture: arch },
    });
  }
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypeImageIndex, manifests }));
  entries.push(blobEntry(idx));
  const top = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: MediaTypeImageIndex,
        digest: digestOf(idx),
        size: idx.byteLength,
        annotations: { "org.opencontainers.image.ref.name": options.refName ?? "latest" },
      },
    ],
  };
  entries.push({ name: "index.json", data: JSON.stringify(top) }, ...(options.extra ?? []));
  return { tar: await makeTar(entries), indexDigest: digestOf(idx), manifests };
}

async function dockerArchive(options: { gzip?: boolean } = {}) {
  const one = await buildImage("amd64", ["x", "y"], undefined, options.gzip ?? false);
  const two = await buildImage("arm64", ["z"], undefined, true);
  const entries: TarInput[] = [
    { name: `${digestOf(one.config).slice(7)}.json`, data: one.config },
    { name: "l1/layer.tar", data: one.layers[0] as Buffer },
    { name: "l2/layer.tar", data: one.layers[1] as Buffer },
    { name: `${digestOf(two.config).slice(7)}.json`, data: two.config },
    { name: "l3/layer.tar", data: two.layers[0] as Buffer },
    { name: "l4/layer.tar", type: "symlink", linkname: "../l1/layer.tar" },
    {
      name: "manifest.json",
      data: JSON.stringify([
        {
          Config: `${digestOf(one.config).slice(7)}.json`,
          RepoTags: ["busybox:latest", "example.com/bb:1"],
          Layers: ["l1/layer.tar", "l2/layer.tar"],
        },
        { Config: `${digestOf(two.config).slice(7)}.json`, RepoTags: null, Layers: ["l3/layer.tar", "l4/layer.tar"] },
      ]),
    },
    { name: "repositories", data: "{}" },
  ];
  return { tar: await makeTar(entries), one, two };
}

const linuxAmd64 = only(parse("linux/amd64"));

describe("OCI layout import", () => {
  it("imports, names and labels", async () => {
    const { tar, indexDigest, manifests } = await ociArchive();
    const r = await importImages(ctx, t.store, chunked(tar), {
      baseName: "example.com/app",
      platform: linuxAmd64,
      indexName: "idx",
    });
    expect(r.format).toBe("oci");
    expect(r.images.map((i) => i.name)).toEqual(["idx", "example.com/app:latest"]);
    expect(r.images[1]?.target.digest).toBe(indexDigest);
    const idxInfo = await t.store.info(ctx, indexDigest);
    expect(idxInfo.labels).toEqual({ "containerd.io/gc.ref.content.m.0": manifests[0]?.digest });
    const mInfo = await t.store.info(ctx, manifests[0]?.digest as string);
    expect(Object.keys(mInfo.labels).sort()).toEqual([
      "containerd.io/gc.ref.content.config",
      "containerd.io/gc.ref.content.l.0",
      "containerd.io/gc.ref.content.l.1",
    ]);
    const top = await t.store.info(ctx, r.index.digest);
    expect(top.labels["containerd.io/gc.ref.content.0"]).toBe(indexDigest);

    const target = r.images[1]?.target as Descriptor;
    const resolved = await resolveManifest(ctx, t.store, target, linuxAmd64);
    expect(resolved.descriptor.digest).toBe(manifests[0]?.digest);
    expect(await diffIDs(ctx, t.store, target, only(parse("linux/arm64")))).toHaveLength(2);
    expect((await imagePlatforms(ctx, t.store, target)).map((p) => p.architecture)).toEqual(["amd64", "arm64"]);
    const size = await imageSize(ctx, t.store, target, linuxAmd64);
    const m = JSON.parse(Buffer.from(await readBlob(ctx, t.store, resolved.descriptor)).toString());
    expect(size).toBe(
      target.size +
        resolved.descriptor.size +
        m.config.size +
        m.layers.reduce((n: number, l: Descriptor) => n + l.size, 0),
    );
    expect((await check(ctx, t.store, target, linuxAmd64)).missing).toEqual([]);
  });

  it("names tag-only refs with the import-date prefix and adds digest names", async () => {
    const { tar, indexDigest } = await ociArchive();
    const r = await importImages(ctx, t.store, chunked(tar), {
      digests: true,
      now: new Date(2024, 0, 2),
      allPlatforms: true,
    });
    expect(r.images.map((i) => i.name)).toEqual(["import-2024-01-02:latest", `import-2024-01-02@${indexDigest}`]);
    expect(Object.keys((await t.store.info(ctx, indexDigest)).labels)).toHaveLength(2);
  });

  it("filters refs by base name", async () => {
    const { tar } = await ociArchive({ refName: "docker.io/library/other:1" });
    const r = await importImages(ctx, t.store, chunked(tar), { baseName: "example.com/app", platform: linuxAmd64 });
    // containerd registers a manifest whose ref is filtered out as "<none>" (client.Import).
    expect(r.images.map((i) => i.name)).toEqual(["<none>"]);
  });

  it("accepts gzip-compressed archives", async () => {
    const { tar } = await ociArchive();
    const r = await importImages(ctx, t.store, chunked(gzipSync(tar)), { platform: linuxAmd64 });
    expect(r.images).toHaveLength(1);
  });
});

describe("Docker archive import", () => {
  it("synthesises manifests and an index, with platforms and names", async () => {
    const { tar, one } = await dockerArchive();
    const r = await importImages(ctx, t.store, chunked(tar), { allPlatforms: true });
    expect(r.format).toBe("docker");
    expect(r.images.map((i) => i.name)).toEqual(["docker.io/library/busybox:latest", "example.com/bb:1", "<none>"]);
    const target = r.images[0]?.target as Descriptor;
    expect(target.platform).toEqual({ os: "linux", architecture: "amd64" });
    expect(target.annotations).toEqual({
      "io.containerd.image.name": "docker.io/library/busybox:latest",
      "org.opencontainers.image.ref.name": "latest",
    });
    const m = JSON.parse(Buffer.from(await readBlob(ctx, t.store, target)).toString());
    expect(Object.keys(m)).toEqual(["schemaVersion", "mediaType", "config", "layers"]);
    expect(m.layers.map((l: Descriptor) => l.mediaType)).toEqual([
      MediaTypeDockerSchema2Layer,
      MediaTypeDockerSchema2Layer,
    ]);
    expect(await diffIDs(ctx, t.store, target)).toEqual(one.diffIDs);
    const none = r.images[2]?.target as Descriptor;
    const m2 = JSON.parse(Buffer.from(await readBlob(ctx, t.store, none)).toString());
    expect(m2.layers.map((l: Descriptor) => l.mediaType)).toEqual([
      MediaTypeDockerSchema2LayerGzip,
      MediaTypeDockerSchema2Layer,
    ]);
    expect(m2.layers[1].digest).toBe(m.layers[0].digest); // the symlinked layer
  });

  it("is deterministic (same manifests and index digests on re-import)", async () => {
    const { tar } = await dockerArchive();
    const a = await importImages(ctx, t.store, chunked(tar), { allPlatforms: true });
    const b = await importImages(ctx, t.store, chunked(tar, 4096), { allPlatforms: true });
    expect(b.index.digest).toBe(a.index.digest);
  });
});

describe("export", () => {
  it("round-trips an OCI archive with identical digests", async () => {
    const { tar, manifests } = await ociArchive();
    const first = await importImages(ctx, t.store, chunked(tar), { baseName: "example.com/app", allPlatforms: true });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on("data", (c: Buffer) => chunks.push(c));
    await exportArchive(ctx, t.store, first.images, out, {
      platform: onlyStrict(parse("linux/amd64")),
      allPlatforms: true,
    });
    const exported = Buffer.concat(chunks);

    const other = await tempStore();
    try {
      const again = await importImages(ctx, other.store, chunked(exported), { allPlatforms: true });
      expect(again.images.map((i) => [i.name, i.target.digest])).toEqual(
        first.images.map((i) => [i.name, i.target.digest]),
      );
      for (const m of manifests) expect((await other.store.info(ctx, m.digest)).size).toBe(m.size);
      // The Docker manifest.json names the platform's manifest.
      const { entries } = await listTar(exported);
      expect(entries).toContain("manifest.json");
      expect(entries.indexOf("oci-layout")).toBe(entries.length - 1);
    } finally {
      await other.cleanup();
    }
  });

  it("exports only the platform's blobs unless all platforms are asked for", async () => {
    const { tar, manifests } = await ociArchive();
    const first = await importImages(ctx, t.store, chunked(tar), { baseName: "x", allPlatforms: true });
    const out = new PassThrough();
    const chunks: Buffer[] = [];
    out.on("data", (c: Buffer) => chunks.push(c));
    await exportArchive(ctx, t.store, first.images, out, { platform: onlyStrict(parse("linux/arm64")) });
    const { entries } = await listTar(Buffer.concat(chunks));
    expect(entries).toContain(`blobs/sha256/${manifests[1]?.digest.slice(7)}`);
    expect(entries).not.toContain(`blobs/sha256/${manifests[0]?.digest.slice(7)}`);
  });

  it("rejects exporting a layer", async () => {
    const d = await put(t.store, "x", MediaTypeDockerSchema2Layer);
    await expect(exportArchive(ctx, t.store, [{ target: d }], new PassThrough())).rejects.toThrow(/only manifests/);
  });
});

async function listTar(buf: Buffer): Promise<{ entries: string[] }> {
  const tarStream = await import("tar-stream");
  const extract = tarStream.default.extract();
  const entries: string[] = [];
  const done = (async () => {
    for await (const e of extract) {
      entries.push(e.header.name);
      e.resume();
    }
  })();
  extract.end(buf);
  await done;
  return { entries };
}

async function expectImportError(entries: TarInput[] | Buffer, pattern: RegExp, kind = "InvalidArgument") {
  const tar = Buffer.isBuffer(entries) ? entries : await makeTar(entries);
  let err: unknown;
  try {
    await importImages(ctx, t.store, chunked(tar), { allPlatforms: true });
  } catch (e) {
    err = e;
  }
  expect(err, "import should fail").toBeInstanceOf(Error);
  expect((err as Error).message).toMatch(pattern);
  expect(errorKind(err)).toBe(kind);
}

describe("hostile archives", () => {
  it("rejects traversal in entry names and links, writing nothing outside the store", async () => {
    const before = await readdir(t.dir);
    await expectImportError([{ name: "../../evil", data: "x" }], /traversal/);
    await expectImportError([{ name: "/etc/evil", data: "x" }], /absolute/);
    await expectImportError([{ name: "a", type: "symlink", linkname: "../../etc/passwd" }], /outside/);
    expect(await readdir(t.dir)).toEqual(before);
  });

  it("caps index.json and manifest.json", async () => {
    const big = "x".repeat(2048);
    const tar = await makeTar([{ name: "index.json", data: big }]);
    await expect(importImages(ctx, t.store, chunked(tar), { maxJSONSize: 1024 })).rejects.toThrow(
      /index.json: larger than/,
    );
    const tar2 = await makeTar([{ name: "manifest.json", data: big }]);
    await expect(importImages(ctx, t.store, chunked(tar2), { maxJSONSize: 1024 })).rejects.toSatisfy(isInvalidArgument);
  });

  it("rejects unknown media types at the top of an OCI index", async () => {
    await expectImportError(
      [
        { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
        {
          name: "index.json",
          data: JSON.stringify({
            schemaVersion: 2,
            manifests: [{ mediaType: "application/x-evil", digest: digestOf("x"), size: 1 }],
          }),
        },
      ],
      /unsupported media type application\/x-evil/,
    );
  });

  it("rejects truncated tars", async () => {
    const { tar } = await ociArchive();
    await expectImportError(tar.subarray(0, 1500), /invalid archive/);
  });

  it("rejects manifests that are not JSON", async () => {
    await expectImportError([{ name: "manifest.json", data: "{not json" }], /manifest.json: invalid JSON/);
    const junk = Buffer.from("not json at all");
    const junkDigest = digestOf(junk);
    await expectImportError(
      [
        { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
        blobEntry(junk),
        {
          name: "index.json",
          data: JSON.stringify({
            schemaVersion: 2,
            manifests: [
              {
                mediaType: MediaTypeImageManifest,
                digest: junkDigest,
                size: junk.byteLength,
                annotations: { "org.opencontainers.image.ref.name": "x" },
              },
            ],
          }),
        },
      ],
      new RegExp(`manifest ${junkDigest}: invalid JSON`),
    );
    await expectImportError(
      [
        { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
        { name: "index.json", data: "[" },
      ],
      /invalid JSON/,
    );
  });

  it("rejects schema 1 manifests", async () => {
    const s1 = Buffer.from(JSON.stringify({ schemaVersion: 1, fsLayers: [{ blobSum: digestOf("x") }] }));
    const tar = await makeTar([
      { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
      blobEntry(s1),
      {
        name: "index.json",
        data: JSON.stringify({
          schemaVersion: 2,
          manifests: [{ mediaType: MediaTypeImageManifest, digest: digestOf(s1), size: s1.byteLength }],
        }),
      },
    ]);
    await expect(importImages(ctx, t.store, chunked(tar), { allPlatforms: true })).rejects.toSatisfy(isNotImplemented);
  });

  it("fails naming a blob whose content does not match its name, and stores nothing under that name", async () => {
    const name = `blobs/sha256/${digestOf("expected").slice(7)}`;
    await expectImportError(
      [{ name, data: "something else" }],
      new RegExp(`blob ${name}: content digest ${digestOf("something else")} does not match`),
    );
    await expect(t.store.info(ctx, digestOf("expected"))).rejects.toThrow(/not found/);
    await expect(t.store.info(ctx, digestOf("something else"))).rejects.toThrow(/not found/);
    expect(await t.store.listStatuses(ctx)).toEqual([]);
  });

  it("rejects unknown formats and unsupported layout versions", async () => {
    await expectImportError([{ name: "hello.txt", data: "hi" }], /unrecognized image format/);
    await expectImportError([{ name: "oci-layout", data: '{"imageLayoutVersion":"9"}' }], /unsupported OCI version 9/);
    await expectImportError([{ name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' }], /missing index.json/);
  });

  it("reports missing manifest layers through check, as containerd does", async () => {
    const { tar, manifests } = await ociArchive();
    const r = await importImages(ctx, t.store, chunked(tar), { baseName: "x", allPlatforms: true });
    const m = JSON.parse(Buffer.from(await readBlob(ctx, t.store, manifests[0] as Descriptor)).toString());
    await t.store.delete(ctx, m.layers[1].digest);
    const c = await check(ctx, t.store, r.images[0]?.target as Descriptor, linuxAmd64);
    expect(c.available).toBe(true);
    expect(c.missing.map((d) => d.digest)).toEqual([m.layers[1].digest]);
  });
});
