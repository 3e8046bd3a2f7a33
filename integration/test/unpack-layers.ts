/**
 * Layers and image archives for the unpack tests: a small tar writer (ustar + PAX for long names and xattrs;
 * files, dirs, symlinks, hard links, devices, fifos; owners and modes), gzip, and one-platform OCI layout
 * archives whose config lists the layers' diffIDs (or wrong ones, on purpose).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";

export interface LayerEntry {
  readonly name: string;
  readonly type?: "file" | "dir" | "symlink" | "link" | "char" | "block" | "fifo";
  readonly data?: Uint8Array | string;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly linkname?: string;
  readonly devmajor?: number;
  readonly devminor?: number;
  /** Extended attributes, as PAX `SCHILY.xattr.<name>` records. */
  readonly xattrs?: Readonly<Record<string, string>>;
  /** Declared size when it must differ from the data (a truncated entry). */
  readonly size?: number;
}

const MTIME = 1_700_000_000;
const TYPEFLAG = { file: "0", link: "1", symlink: "2", char: "3", block: "4", dir: "5", fifo: "6" } as const;

const octal = (n: number, width: number): string => `${n.toString(8).padStart(width - 1, "0")}\0`;

function header(name: string, typeflag: string, f: Partial<LayerEntry> & { size: number }): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(octal((f.mode ?? 0o644) & 0o7777, 8), 100, "ascii");
  h.write(octal(f.uid ?? 0, 8), 108, "ascii");
  h.write(octal(f.gid ?? 0, 8), 116, "ascii");
  h.write(octal(f.size, 12), 124, "ascii");
  h.write(octal(MTIME, 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(typeflag, 156, "ascii");
  if (f.linkname) h.write(f.linkname, 157, 100, "utf8");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write(octal(f.devmajor ?? 0, 8), 329, "ascii");
  h.write(octal(f.devminor ?? 0, 8), 337, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (`${len}${body}`.length !== len) len = Buffer.byteLength(`${len}${body}`);
  return `${len}${body}`;
}

const pad = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512);

/** An uncompressed tar of the entries, with the end-of-archive marker unless `end` is false. */
export function layerTar(entries: readonly LayerEntry[], { end = true } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = type === "file" ? Buffer.from(e.data ?? "") : Buffer.alloc(0);
    const records: string[] = [];
    if (Buffer.byteLength(e.name) >= 100) records.push(paxRecord("path", e.name));
    if (e.linkname && Buffer.byteLength(e.linkname) >= 100) records.push(paxRecord("linkpath", e.linkname));
    for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
    if (records.length > 0) {
      const pax = Buffer.from(records.join(""));
      parts.push(header("PaxHeaders/entry", "x", { size: pax.length }), pax, pad(pax.length));
    }
    const size = e.size ?? data.length;
    parts.push(header(e.name.slice(0, 99), TYPEFLAG[type], { ...e, size }), data, pad(data.length));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export const sha256 = (b: Uint8Array | string): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** The busybox-static layer: `bin/busybox` and `bin/sh` → busybox. */
export function busyboxLayer(): Buffer {
  return layerTar([
    { name: "bin/", type: "dir", mode: 0o755 },
    { name: "bin/busybox", mode: 0o755, data: readFileSync("/bin/busybox") },
    { name: "bin/sh", type: "symlink", mode: 0o777, linkname: "busybox" },
  ]);
}

export interface Layer {
  /** The blob as stored (gzip unless `raw`). */
  readonly blob: Buffer;
  readonly mediaType: string;
  /** What the config lists for it. */
  readonly diffID: string;
}

/** A gzip layer of a tar; `diffID` overrides the config's entry (a mismatch on purpose). */
export function gzipLayer(tar: Buffer, diffID?: string): Layer {
  return {
    blob: gzipSync(tar, { level: 6 }),
    mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
    diffID: diffID ?? sha256(tar),
  };
}

/** A layer blob given as is (e.g. a truncated gzip stream) with the diffID the config claims. */
export function rawLayer(blob: Buffer, diffID: string): Layer {
  return { blob, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", diffID };
}

export interface ImageArchive {
  readonly path: string;
  readonly name: string;
  readonly manifest: string;
  readonly config: string;
  readonly diffIDs: string[];
}

/** Writes a one-platform (linux/amd64) OCI layout archive of the layers, named `name`. */
export async function writeImageArchive(path: string, name: string, layers: readonly Layer[]): Promise<ImageArchive> {
  const json = (v: unknown) => Buffer.from(JSON.stringify(v));
  const config = json({
    architecture: "amd64",
    os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffID) },
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: sha256(l.blob), size: l.blob.length })),
  });
  const index = json({
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: sha256(manifest),
        size: manifest.length,
        platform: { architecture: "amd64", os: "linux" },
        annotations: { "io.containerd.image.name": name },
      },
    ],
  });
  const blobs = new Map<string, Buffer>();
  for (const b of [...layers.map((l) => l.blob), config, manifest]) blobs.set(sha256(b).slice(7), b);
  const files: LayerEntry[] = [
    { name: "oci-layout", data: json({ imageLayoutVersion: "1.0.0" }) },
    { name: "index.json", data: index },
    { name: "blobs/", type: "dir", mode: 0o755 },
    { name: "blobs/sha256/", type: "dir", mode: 0o755 },
    ...[...blobs].map(([hex, data]) => ({ name: `blobs/sha256/${hex}`, data })),
  ];
  await writeFile(path, layerTar(files));
  return { path, name, manifest: sha256(manifest), config: sha256(config), diffIDs: layers.map((l) => l.diffID) };
}

/** chainIDs of diffIDs (image-spec). */
export function chainIDs(diffIDs: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

/**
 * Three layers over busybox exercising what unpack must get right: directories with modes and owners,
 * files with xattrs, symlinks, hard links, a fifo and a char device, then removals: a plain whiteout, a whiteout
 * of a directory, an opaque directory, a replaced file, a file written below a dir only named implicitly.
 */
export function featureLayers(): Layer[] {
  const l1 = busyboxLayer();
  const l2 = layerTar([
    { name: "etc/", type: "dir", mode: 0o755 },
    { name: "etc/motd", data: "hello\n", mode: 0o644 },
    { name: "etc/secret", data: "s3cret\n", mode: 0o600, uid: 1000, gid: 1000 },
    { name: "opt/", type: "dir", mode: 0o750, uid: 1000, gid: 100 },
    { name: "opt/app/", type: "dir", mode: 0o755 },
    { name: "opt/app/run.sh", data: "#!/bin/sh\necho hi\n", mode: 0o755 },
    { name: "opt/app/data.bin", data: Buffer.alloc(70_000, 7), mode: 0o644 },
    { name: "opt/app/hard", type: "link", linkname: "opt/app/run.sh" },
    { name: "opt/app/link", type: "symlink", linkname: "../app/run.sh" },
    { name: "opt/app/abs", type: "symlink", linkname: "/etc/motd" },
    { name: "opt/app/cap", data: "x", mode: 0o755, xattrs: { "user.berth.test": "value-1" } },
    { name: "var/", type: "dir", mode: 0o755 },
    { name: "var/gone/", type: "dir", mode: 0o755 },
    { name: "var/gone/file", data: "bye" },
    { name: "var/opaque/", type: "dir", mode: 0o755 },
    { name: "var/opaque/old", data: "old" },
    { name: "var/fifo", type: "fifo", mode: 0o600 },
    { name: "dev/", type: "dir", mode: 0o755 },
    { name: "dev/null2", type: "char", mode: 0o666, devmajor: 1, devminor: 3 },
    { name: "tmp/", type: "dir", mode: 0o1777 },
    { name: `long/${"n".repeat(150)}`, data: "long name" },
  ]);
  const l3 = layerTar([
    { name: "etc/.wh.secret" },
    { name: "var/.wh.gone" },
    { name: "var/opaque/.wh..wh..opq" },
    { name: "var/opaque/new", data: "new" },
    { name: "etc/motd", data: "replaced\n", mode: 0o640 },
    { name: "opt/app/deep/nested/file", data: "implicit parents" },
    { name: "usr/local/bin/", type: "dir", mode: 0o700 },
  ]);
  return [gzipLayer(l1), gzipLayer(l2), gzipLayer(l3)];
}
