// applyLayer: an OCI layer (tar, gzip or zstd) applied to a directory, streamed, with containerd's archive.Apply
// semantics (pkg/archive/tar.go) and its safety: every name is evaluated inside the root (RootPath), the last
// component of an entry is never followed, hard links resolve inside the root, and whiteouts cannot name the
// parent directory or escape it.
//
// Filesystem calls are synchronous on purpose: a layer is mostly small files, a synchronous metadata call costs
// microseconds where a thread-pool round trip costs tens, and the event loop still runs between stream chunks.
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable } from "node:stream";
import {
  BerthError,
  CanceledError,
  FailedPreconditionError,
  InvalidArgumentError,
  PermissionDeniedError,
  ResourceExhaustedError,
  fromNodeError,
} from "@berth/errdefs";
import { type Compression, compressionOfMediaType, decompress } from "./compression.js";
import { ByteSource } from "./internal/byte-source.js";
import { RootPath, cleanParts } from "./internal/root-path.js";
import { lgetxattr, llistxattr, lsetxattr, mknod } from "./internal/sys.js";
import { type TarEntry, TarReader } from "./internal/tar-reader.js";

/** Structural logger (see the style guide, §10). */
export interface Logger {
  debug(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export const WHITEOUT_PREFIX = ".wh.";
export const WHITEOUT_OPAQUE = ".wh..wh..opq";

export interface ApplyOptions {
  /** Layer media type; checked to be a layer type. Decompression still follows the magic bytes (as containerd). */
  readonly mediaType?: string;
  /** Force a decompressor instead of detecting it from the magic bytes. */
  readonly compression?: Compression;
  /** Expected diffID (`sha256:<hex>`): the apply fails, naming both digests, when the stream hashes otherwise. */
  readonly expectedDiffID?: string;
  /** Cap on the uncompressed stream in bytes (a gzip bomb fails with ResourceExhausted once past it). */
  readonly maxSize?: number;
  /**
   * "oci" (default) removes whiteout targets; "overlay" writes overlayfs whiteouts instead (a 0/0 character
   * device per removal, the `trusted.overlay.opaque` xattr for opaque dirs), for applying onto an overlay upper
   * dir (containerd's OverlayConvertWhiteout).
   */
  readonly whiteouts?: "oci" | "overlay";
  /** With whiteouts "overlay": mark opaque dirs with `user.overlay.opaque` (overlay mounted with userxattr). */
  readonly overlayUserXattr?: boolean;
  /**
   * Lower directories (top first) of an overlay upper dir being applied to: a parent directory the layer does
   * not name is created with the mode, owner, times and xattrs it has in the first lower that has it (as
   * containerd's WithParents), not with the default 0755 root:root.
   */
  readonly parents?: readonly string[];
  /** Do not chown entries to the uid/gid in the layer (containerd's WithNoSameOwner). */
  readonly noSameOwner?: boolean;
  readonly signal?: AbortSignal;
  readonly log?: Logger;
}

export interface ApplyResult {
  /** sha256 of the uncompressed tar stream, `sha256:<hex>`. */
  readonly diffID: string;
  /** Bytes in the uncompressed tar stream. */
  readonly size: number;
  readonly compression: Compression;
  /** Entries in the tar stream (whiteouts included, extended headers not). */
  readonly entries: number;
}

const O_CREATE_FILE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
/** containerd's boundTime: times outside what the kernel takes become the epoch. */
const MAX_TIME = 9_223_372_036; // seconds in 2^63 ns

function boundTime(t: number): number {
  return Number.isFinite(t) && t >= 0 && t <= MAX_TIME ? t : 0;
}

const SHA256_RE = /^sha256:[0-9a-f]{64}$/;

function quote(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 100)}…${name.slice(-60)}` : name);
}

class Applier {
  private readonly rp: RootPath;
  private readonly knownDirs = new Set<string>();
  private readonly unpacked = new Set<string>();
  /**
   * Directories this apply created (or found empty): a name in one of them that this apply has not written
   * does not exist, so its lstat can be skipped. A wrong guess only makes the O_EXCL create fail.
   */
  private readonly fresh = new Set<string>();
  private readonly dirs: { path: string; atime: number; mtime: number }[] = [];
  private readonly isRoot = process.geteuid?.() === 0;

  constructor(
    readonly root: string,
    private readonly opts: ApplyOptions,
  ) {
    this.rp = new RootPath(root);
    if (fs.readdirSync(root).length === 0) this.fresh.add(root);
  }

  private invalidate(): void {
    this.rp.invalidate();
    this.knownDirs.clear();
  }

  private removeAll(p: string): void {
    fs.rmSync(p, { recursive: true, force: true });
    this.invalidate();
  }

  /** Creates dir and its missing parents (0755) inside the root; a non-directory in the way is an error. */
  private mkparent(dir: string): void {
    if (dir === this.root || this.knownDirs.has(dir)) return;
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (st) {
      if (!st.isDirectory()) {
        const e = new Error(`ENOTDIR: not a directory, mkparent '${dir}'`) as NodeJS.ErrnoException;
        e.code = "ENOTDIR";
        throw e;
      }
      this.knownDirs.add(dir);
      return;
    }
    this.mkparent(path.dirname(dir));
    try {
      fs.mkdirSync(dir, 0o755);
      fs.chmodSync(dir, 0o755);
      this.fresh.add(dir);
    } catch (err) {
      if (!fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw err;
      this.knownDirs.add(dir);
      return;
    }
    this.knownDirs.add(dir);
    if (this.opts.parents?.length) this.copyParentDirInfo(dir);
  }

  /** Gives a directory created implicitly the attributes of the same directory in the first lower having it. */
  private copyParentDirInfo(dir: string): void {
    const rel = dir.slice(this.root.length);
    for (const lower of this.opts.parents ?? []) {
      const lp = new RootPath(lower).resolve(rel);
      const st = fs.lstatSync(lp, { throwIfNoEntry: false });
      if (st === undefined) continue;
      if (!st.isDirectory()) return; // replaced in a lower layer: keep the defaults
      fs.chmodSync(dir, st.mode & 0o7777);
      if (this.isRoot) fs.lchownSync(dir, st.uid, st.gid);
      for (const name of llistxattr(lp)) {
        const value = lgetxattr(lp, name);
        if (value !== null) {
          try {
            lsetxattr(dir, name, value);
          } catch (err) {
            this.opts.log?.debug({ dir, name, err: String(err) }, "parent xattr not copied");
          }
        }
      }
      fs.lutimesSync(dir, st.atime, st.mtime);
      return;
    }
  }

  async entry(e: TarEntry, tr: TarReader): Promise<void> {
    if (e.type === "global") {
      this.opts.log?.debug({ name: e.name }, "pax global header ignored");
      return;
    }
    const parts = cleanParts(e.name);
    if (parts.length === 0) {
      this.opts.log?.debug({ name: e.name }, "entry resolved to root ignored");
      return;
    }
    const base = parts[parts.length - 1]!;
    const ppath = this.rp.resolve(parts.slice(0, -1).join("/"));
    const p = `${ppath}/${base}`;
    if (ppath !== this.root) this.mkparent(ppath);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.whiteout(e, ppath, base);
      return;
    }

    const existing =
      this.fresh.has(ppath) && !this.unpacked.has(p) && !this.fresh.has(p)
        ? undefined
        : fs.lstatSync(p, { throwIfNoEntry: false });
    if (existing && !(existing.isDirectory() && e.type === "directory")) this.removeAll(p);

    const owner = !this.opts.noSameOwner;
    let chmod = true;
    switch (e.type) {
      case "directory":
        if (!existing?.isDirectory()) {
          fs.mkdirSync(p, e.mode);
          this.fresh.add(p);
        }
        break;
      case "file":
        await this.writeFile(p, e, tr);
        this.unpacked.add(p);
        return;
      case "symlink":
        fs.symlinkSync(e.linkname, p);
        this.invalidate();
        chmod = false;
        break;
      case "link": {
        const target = this.hardlinkTarget(e.linkname);
        try {
          fs.linkSync(target, p);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === "ENOENT") {
            throw new InvalidArgumentError(
              `hard link ${quote(e.name)} to ${quote(e.linkname)}: target does not exist inside the root`,
            );
          }
          if (code === "EPERM") {
            throw new InvalidArgumentError(
              `hard link ${quote(e.name)} to ${quote(e.linkname)}: target is a directory or the root`,
            );
          }
          throw err;
        }
        this.invalidate();
        // a hard link to a symlink is a symlink: never chmod through it
        chmod = !fs.lstatSync(p).isSymbolicLink();
        break;
      }
      case "char":
      case "block":
        if (!this.isRoot) {
          throw new PermissionDeniedError(`device node ${quote(e.name)}: creating device nodes needs root`);
        }
        mknod(p, e.type, e.mode, e.devmajor, e.devminor);
        break;
      case "fifo":
        mknod(p, "fifo", e.mode);
        break;
    }
    if (owner) fs.lchownSync(p, e.uid, e.gid);
    this.setXattrs(p, e);
    if (chmod) fs.chmodSync(p, e.mode);
    const mtime = boundTime(e.mtime);
    const atime = e.atime !== undefined && boundTime(e.atime) > mtime ? boundTime(e.atime) : mtime;
    fs.lutimesSync(p, atime, mtime);
    if (e.type === "directory") {
      this.dirs.push({ path: p, atime, mtime });
      this.knownDirs.add(p);
    }
    this.unpacked.add(p);
  }

  private async writeFile(p: string, e: TarEntry, tr: TarReader): Promise<void> {
    const fd = fs.openSync(p, O_CREATE_FILE, e.mode);
    try {
      for await (const chunk of tr.body()) {
        let off = 0;
        while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
      }
      if (!this.opts.noSameOwner) fs.fchownSync(fd, e.uid, e.gid);
      this.setXattrs(p, e);
      fs.fchmodSync(fd, e.mode);
      const mtime = boundTime(e.mtime);
      const atime = e.atime !== undefined && boundTime(e.atime) > mtime ? boundTime(e.atime) : mtime;
      fs.futimesSync(fd, atime, mtime);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** containerd's hardlinkRootPath: the link name's parent resolved inside the root, its last component not followed. */
  private hardlinkTarget(linkname: string): string {
    const parts = cleanParts(linkname);
    if (parts.length === 0) return this.root;
    const ppath = this.rp.resolve(parts.slice(0, -1).join("/"));
    const target = `${ppath}/${parts[parts.length - 1]}`;
    return this.rp.contains(target) ? target : this.root;
  }

  private setXattrs(p: string, e: TarEntry): void {
    for (const [key, value] of e.xattrs) {
      if (key.startsWith("trusted.")) {
        // containerd refuses admin attributes from archives (and then ignores the refusal)
        this.opts.log?.warn({ name: e.name, xattr: key }, "ignored xattr in archive: trusted attributes not supported");
        continue;
      }
      try {
        lsetxattr(p, key, value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const userOnSpecial =
          code === "EPERM" && key.startsWith("user.") && e.type !== "file" && e.type !== "directory";
        if (userOnSpecial || code === "ENOTSUP" || code === "EOPNOTSUPP") {
          this.opts.log?.warn({ name: e.name, xattr: key, err: code }, "ignored xattr in archive");
          continue;
        }
        throw err;
      }
    }
  }

  private whiteout(e: TarEntry, dir: string, base: string): void {
    const overlay = this.opts.whiteouts === "overlay";
    if (base === WHITEOUT_OPAQUE) {
      fs.lstatSync(dir);
      if (overlay) {
        lsetxattr(dir, this.opts.overlayUserXattr ? "user.overlay.opaque" : "trusted.overlay.opaque", "y");
      } else {
        this.removeNotUnpacked(dir);
      }
      return;
    }
    const original = base.slice(WHITEOUT_PREFIX.length);
    if (original === "" || original === "." || original === "..") {
      throw new InvalidArgumentError(
        `invalid whiteout name ${quote(e.name)}: names the directory itself or its parent`,
      );
    }
    const target = `${dir}/${original}`;
    if (overlay) {
      if (!this.isRoot) {
        throw new PermissionDeniedError(`whiteout ${quote(e.name)}: overlay whiteout devices need root`);
      }
      mknod(target, "char", 0, 0, 0);
      fs.lchownSync(target, e.uid, e.gid);
      this.unpacked.add(target);
      this.invalidate();
    } else {
      this.removeAll(target);
    }
  }

  /** An opaque marker: everything in dir not written by this layer goes (containerd walks and RemoveAlls). */
  private removeNotUnpacked(dir: string): void {
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    for (const name of names) {
      const c = `${dir}/${name}`;
      if (!this.unpacked.has(c)) this.removeAll(c);
      else if (fs.lstatSync(c).isDirectory()) this.removeNotUnpacked(c);
    }
  }

  /** Directory times last, so that creating their contents does not move them. */
  fixDirTimes(): void {
    for (const d of this.dirs) {
      if (fs.lstatSync(d.path, { throwIfNoEntry: false })?.isDirectory()) fs.lutimesSync(d.path, d.atime, d.mtime);
    }
  }
}

function wrapEntryError(err: unknown, name: string): BerthError {
  if (err instanceof BerthError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "ENAMETOOLONG") {
    return new InvalidArgumentError(`apply layer: entry ${quote(name)}: name too long`, { cause: err });
  }
  if (e?.code === "ENOTDIR") {
    return new InvalidArgumentError(`apply layer: entry ${quote(name)}: a parent is not a directory`, { cause: err });
  }
  if (e?.code === "ELOOP") {
    return new InvalidArgumentError(`apply layer: entry ${quote(name)}: too many symbolic links`, { cause: err });
  }
  return fromNodeError(err, `apply layer: entry ${quote(name)}: ${e?.message ?? String(err)}`);
}

/**
 * Applies a layer stream to the directory root and returns its diffID. The stream is read once, front to back,
 * and never held whole. On any error the call rejects; what was already written stays in root (the caller
 * discards the snapshot, as containerd's applier does), and nothing is ever written outside root.
 */
export async function applyLayer(
  root: string,
  stream: AsyncIterable<Uint8Array>,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  // A Node stream left early by `for await` is destroyed with an AbortError that, emitted after the iterator's
  // listener is gone, would crash the process: read it without destroy-on-return and close it quietly instead.
  if (stream instanceof Readable) {
    const readable = stream;
    try {
      return await applyLayerFrom(root, readable.iterator({ destroyOnReturn: false }), options);
    } finally {
      if (!readable.destroyed) readable.destroy();
    }
  }
  return applyLayerFrom(root, stream, options);
}

async function applyLayerFrom(
  root: string,
  stream: AsyncIterable<Uint8Array>,
  options: ApplyOptions,
): Promise<ApplyResult> {
  const dir = path.resolve(root);
  if (dir === "/") throw new InvalidArgumentError("apply layer: refusing to apply onto /");
  const st = fs.statSync(dir, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new InvalidArgumentError(`apply layer: root ${dir} is not a directory`);
  if (options.expectedDiffID !== undefined && !SHA256_RE.test(options.expectedDiffID)) {
    throw new InvalidArgumentError(
      `apply layer: expected diffID ${quote(options.expectedDiffID)} is not a sha256 digest`,
    );
  }
  if (options.mediaType !== undefined) compressionOfMediaType(options.mediaType);
  if (options.signal?.aborted) throw new CanceledError("apply layer", { cause: options.signal.reason });

  const { compression, stream: tarStream } = await decompress(stream, options.compression);
  const hash = createHash("sha256");
  let size = 0;
  const max = options.maxSize;
  const src = new ByteSource(tarStream, (chunk) => {
    size += chunk.length;
    if (max !== undefined && size > max) {
      throw new ResourceExhaustedError(`apply layer: uncompressed stream exceeds the ${max}-byte limit`);
    }
    hash.update(chunk);
  });
  const tr = new TarReader(src);
  const applier = new Applier(dir, options);
  let entries = 0;
  try {
    for (;;) {
      if (options.signal?.aborted) throw new CanceledError("apply layer", { cause: options.signal.reason });
      const e = await tr.next();
      if (e === null) break;
      entries++;
      try {
        await applier.entry(e, tr);
      } catch (err) {
        throw wrapEntryError(err, e.name);
      }
    }
    await src.drain();
    applier.fixDirTimes();
  } finally {
    await src.close();
  }
  const diffID = `sha256:${hash.digest("hex")}`;
  if (options.expectedDiffID !== undefined && options.expectedDiffID !== diffID) {
    throw new FailedPreconditionError(
      `apply layer: diffID mismatch: expected ${options.expectedDiffID}, got ${diffID}`,
    );
  }
  return { diffID, size, compression, entries };
}
