/**
 * Busybox images built by the tests themselves from Debian's `busybox-static` (/bin/busybox): one layer with
 * `bin/busybox` and a `bin/sh` link, as an OCI image layout archive (a multi-platform index) and as a Docker
 * `save` archive. A small ustar writer keeps the bytes (and so the digests) the same on every run.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";

export const BUSYBOX_BIN = "/bin/busybox";

/** Why the busybox archives cannot be built here, if they cannot. */
export function busyboxSkipReason(): string | undefined {
  return existsSync(BUSYBOX_BIN) ? undefined : `${BUSYBOX_BIN} missing (apt-get install busybox-static)`;
}

interface TarFile {
  readonly name: string;
  readonly type: "file" | "dir" | "symlink";
  readonly mode: number;
  readonly data?: Uint8Array;
  readonly linkname?: string;
}

const MTIME = 1_700_000_000;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

function header(f: TarFile, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(f.name, 0, 100, "utf8");
  h.write(octal(f.mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii");
  h.write(octal(0, 8), 116, "ascii");
  h.write(octal(size, 12), 124, "ascii");
  h.write(octal(MTIME, 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(f.type === "file" ? "0" : f.type === "dir" ? "5" : "2", 156, "ascii");
  if (f.linkname) h.write(f.linkname, 157, 100, "utf8");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write("root", 265, "ascii");
  h.write("root", 297, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

/** A tar stream of the files, in order, with the two zero blocks at the end. */
export function tarBytes(files: readonly TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const data = f.type === "file" ? Buffer.from(f.data ?? new Uint8Array()) : Buffer.alloc(0);
    parts.push(header(f, data.length), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha256Hex = (b: Uint8Array | string): string => createHash("sha256").update(b).digest("hex");

interface Blob {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly bytes: Buffer;
}

const blob = (mediaType: string, bytes: Buffer): Blob => ({
  mediaType,
  digest: `sha256:${sha256Hex(bytes)}`,
  size: bytes.length,
  bytes,
});
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const descOf = (b: Blob, extra: Record<string, unknown> = {}) => ({
  mediaType: b.mediaType,
  digest: b.digest,
  size: b.size,
  ...extra,
});

function layerTar(): Buffer {
  return tarBytes([
    { name: "bin/", type: "dir", mode: 0o755 },
    { name: "bin/busybox", type: "file", mode: 0o755, data: readFileSync(BUSYBOX_BIN) },
    { name: "bin/sh", type: "symlink", mode: 0o777, linkname: "busybox" },
  ]);
}

function configFor(arch: string, diffID: string, variant?: string): Record<string, unknown> {
  return {
    architecture: arch,
    ...(variant ? { variant } : {}),
    os: "linux",
    created: "2023-11-14T22:13:20Z",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
    rootfs: { type: "layers", diff_ids: [diffID] },
    history: [{ created: "2023-11-14T22:13:20Z", created_by: "berth integration test: busybox-static" }],
  };
}

export interface BuiltArchive {
  /** The archive's path. */
  readonly path: string;
  /** The image name `ctr images import` gives it. */
  readonly name: string;
  /** The digest of the image's target (what `ctr images ls` shows). */
  readonly target: string;
  /** Digests of every blob in the archive. */
  readonly blobs: string[];
}

/**
 * An OCI image layout archive: index.json → an image index (named `name`) with a linux/amd64 and a linux/arm64
 * manifest (both over the same busybox layer, gzip-compressed).
 */
export async function writeOciArchive(path: string, name: string): Promise<BuiltArchive> {
  const tar = layerTar();
  const diffID = `sha256:${sha256Hex(tar)}`;
  const layer = blob("application/vnd.oci.image.layer.v1.tar+gzip", gzipSync(tar, { level: 9 }));
  const blobs: Blob[] = [layer];
  const manifests = [];
  for (const [arch, variant] of [
    ["amd64", undefined],
    ["arm64", "v8"],
  ] as const) {
    const config = blob("application/vnd.oci.image.config.v1+json", json(configFor(arch, diffID, variant)));
    const manifest = blob(
      "application/vnd.oci.image.manifest.v1+json",
      json({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: descOf(config),
        layers: [descOf(layer)],
      }),
    );
    blobs.push(config, manifest);
    manifests.push(
      descOf(manifest, { platform: { architecture: arch, os: "linux", ...(variant ? { variant } : {}) } }),
    );
  }
  const index = blob(
    "application/vnd.oci.image.index.v1+json",
    json({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }),
  );
  blobs.push(index);
  const top = json({
    schemaVersion: 2,
    manifests: [
      descOf(index, {
        annotations: {
          "io.containerd.image.name": name,
          "org.opencontainers.image.ref.name": name.slice(name.lastIndexOf(":") + 1),
        },
      }),
    ],
  });
  const files: TarFile[] = [
    { name: "oci-layout", type: "file", mode: 0o644, data: json({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", type: "file", mode: 0o644, data: top },
    { name: "blobs/", type: "dir", mode: 0o755 },
    { name: "blobs/sha256/", type: "dir", mode: 0o755 },
    ...blobs.map((b) => ({
      name: `blobs/sha256/${b.digest.slice(7)}`,
      type: "file" as const,
      mode: 0o644,
      data: b.bytes,
    })),
  ];
  await writeFile(path, tarBytes(files));
  return { path, name, target: index.digest, blobs: blobs.map((b) => b.digest) };
}

/**
 * A Docker `save` archive (manifest.json, repositories, `<config hex>.json`, `<id>/layer.tar`) of a linux/amd64
 * busybox tagged `tag` (e.g. `busybox:docker`); ctr names it `docker.io/library/<tag>`.
 */
export async function writeDockerArchive(path: string, tag: string): Promise<BuiltArchive> {
  const tar = layerTar();
  const diffID = `sha256:${sha256Hex(tar)}`;
  const config = json(configFor("amd64", diffID));
  const configHex = sha256Hex(config);
  const layerId = sha256Hex(`${diffID} layer`);
  const [repo, version] = tag.split(":") as [string, string];
  const files: TarFile[] = [
    { name: `${layerId}/`, type: "dir", mode: 0o755 },
    { name: `${layerId}/VERSION`, type: "file", mode: 0o644, data: Buffer.from("1.0") },
    { name: `${layerId}/json`, type: "file", mode: 0o644, data: json({ id: layerId }) },
    { name: `${layerId}/layer.tar`, type: "file", mode: 0o644, data: tar },
    { name: `${configHex}.json`, type: "file", mode: 0o644, data: config },
    {
      name: "manifest.json",
      type: "file",
      mode: 0o644,
      data: json([{ Config: `${configHex}.json`, RepoTags: [tag], Layers: [`${layerId}/layer.tar`] }]),
    },
    { name: "repositories", type: "file", mode: 0o644, data: json({ [repo]: { [version]: layerId } }) },
  ];
  await writeFile(path, tarBytes(files));
  return {
    path,
    name: `docker.io/library/${tag}`,
    target: "",
    blobs: [diffID, `sha256:${configHex}`],
  };
}
