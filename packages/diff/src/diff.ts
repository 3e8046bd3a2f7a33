// diffDirs: the OCI layer that turns lower into upper (containerd's archive.WriteDiff over continuity's naive
// fs.Changes): added and modified entries in path order with their parent directories, deletions as ".wh."
// whiteouts, hard links kept, security.capability carried as a PAX xattr, times truncated to seconds.
import { createHash } from "node:crypto";
import fs from "node:fs";
import zlib from "node:zlib";
import { CanceledError, InvalidArgumentError } from "@berth/errdefs";
import { WHITEOUT_PREFIX } from "./apply.js";
import { throughTransform } from "./compression.js";
import { lgetxattr } from "./internal/sys.js";
import { END_OF_ARCHIVE, type WriteHeader, dataPadding, encodeHeader } from "./internal/tar-writer.js";

export interface DiffOptions {
  /** "gzip" (default) or "none". */
  readonly compression?: "gzip" | "none";
  /** Clamp entry mtimes to this time (seconds since the epoch), as containerd's SourceDateEpoch. */
  readonly sourceDateEpoch?: number;
  readonly signal?: AbortSignal;
}

export interface DiffResult {
  /** sha256 of the uncompressed tar. */
  readonly diffID: string;
  /** sha256 of the stream as produced (compressed or not): the layer blob's digest. */
  readonly digest: string;
  /** Bytes of the stream as produced. */
  readonly size: number;
  readonly uncompressedSize: number;
  readonly mediaType: string;
}

export interface DiffStream {
  /** The layer bytes; read it to the end, then `result` resolves. */
  readonly stream: AsyncIterable<Buffer>;
  readonly result: Promise<DiffResult>;
}

const SMALL_FILE = 1 << 20;

function lstatOrNull(p: string): fs.BigIntStats | null {
  return fs.lstatSync(p, { bigint: true, throwIfNoEntry: false }) ?? null;
}

function readdirSorted(p: string): string[] {
  return fs.readdirSync(p).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function sameContent(a: string, b: string): boolean {
  const fa = fs.openSync(a, "r");
  const fb = fs.openSync(b, "r");
  try {
    const ba = Buffer.alloc(64 * 1024);
    const bb = Buffer.alloc(64 * 1024);
    for (;;) {
      const na = fs.readSync(fa, ba);
      const nb = fs.readSync(fb, bb);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** continuity's sameFile: metadata first, contents only when mtimes may have been truncated. */
function sameFile(lp: string, ls: fs.BigIntStats, up: string, us: fs.BigIntStats): boolean {
  if (ls.mode !== us.mode || ls.uid !== us.uid || ls.gid !== us.gid) return false;
  if ((us.isCharacterDevice() || us.isBlockDevice()) && ls.rdev !== us.rdev) return false;
  if (us.isDirectory()) {
    if (ls.mtimeNs !== us.mtimeNs) return false;
  } else {
    if (ls.size !== us.size || ls.mtimeNs !== us.mtimeNs) return false;
  }
  const lc = lgetxattr(lp, "security.capability");
  const uc = lgetxattr(up, "security.capability");
  if ((lc === null) !== (uc === null) || (lc && uc && !lc.equals(uc))) return false;
  if (us.isSymbolicLink()) return fs.readlinkSync(lp) === fs.readlinkSync(up);
  if (us.isFile() && us.mtimeNs % 1_000_000_000n === 0n) return sameContent(lp, up);
  return true;
}

function entryType(st: fs.BigIntStats): WriteHeader["type"] | null {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return null; // sockets are left out, as containerd does
}

class DiffWriter {
  private readonly addedDirs = new Set<string>();
  private readonly inodes = new Map<string, string>();

  constructor(
    private readonly lower: string,
    private readonly upper: string,
    private readonly opts: DiffOptions,
  ) {}

  private mtime(st: fs.BigIntStats): number {
    const t = Number(st.mtimeNs / 1_000_000_000n);
    const epoch = this.opts.sourceDateEpoch;
    return epoch !== undefined && t > epoch ? epoch : t;
  }

  /** Header for rel (no leading slash) as it is in upper. */
  private header(rel: string, st: fs.BigIntStats): WriteHeader | null {
    const type = entryType(st);
    if (!type) return null;
    const h: WriteHeader = {
      name: type === "directory" ? `${rel}/` : rel,
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === "file" ? Number(st.size) : 0,
      mtime: this.mtime(st),
    };
    const abs = `${this.upper}/${rel}`;
    if (type === "symlink") h.linkname = fs.readlinkSync(abs);
    if (type === "char" || type === "block") {
      const rdev = st.rdev;
      h.devmajor = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
      h.devminor = Number((rdev & 0xffn) | ((rdev >> 12n) & 0xfff00n));
    }
    if (type === "file" && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = this.inodes.get(key);
      if (first !== undefined) {
        h.type = "link";
        h.linkname = first;
        h.size = 0;
      } else {
        this.inodes.set(key, rel);
      }
    }
    const cap = lgetxattr(abs, "security.capability");
    if (cap) h.xattrs = new Map([["security.capability", cap]]);
    return h;
  }

  /** Parent directories of rel not yet written (containerd's includeParents). */
  private *parents(rel: string): Generator<Buffer> {
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (this.addedDirs.has(dir)) continue;
      this.addedDirs.add(dir);
      const st = fs.lstatSync(`${this.upper}/${dir}`, { bigint: true });
      const h = this.header(dir, st);
      if (h) yield encodeHeader(h);
    }
  }

  private async *emit(rel: string, st: fs.BigIntStats): AsyncGenerator<Buffer> {
    const h = this.header(rel, st);
    if (!h) return;
    yield* this.parents(rel);
    if (h.type === "directory") this.addedDirs.add(rel);
    yield encodeHeader(h);
    if (h.type !== "file" || h.size === 0) return;
    const abs = `${this.upper}/${rel}`;
    let n = 0;
    if (h.size <= SMALL_FILE) {
      const data = fs.readFileSync(abs);
      n = data.length;
      if (n === h.size) yield data;
    } else {
      for await (const chunk of fs.createReadStream(abs, { highWaterMark: 1 << 20, end: h.size - 1 })) {
        n += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    if (n !== h.size) throw new InvalidArgumentError(`diff: ${rel} changed size while being read`);
    yield dataPadding(h.size);
  }

  private *whiteout(rel: string): Generator<Buffer> {
    const slash = rel.lastIndexOf("/");
    const name =
      slash < 0 ? `${WHITEOUT_PREFIX}${rel}` : `${rel.slice(0, slash)}/${WHITEOUT_PREFIX}${rel.slice(slash + 1)}`;
    yield* this.parents(name);
    yield encodeHeader({ name, type: "file", mode: 0, uid: 0, gid: 0, size: 0, mtime: 0 });
  }

  /** Walks lower and upper together in name order. */
  async *walk(rel: string, lowerExists: boolean): AsyncGenerator<Buffer> {
    if (this.opts.signal?.aborted) throw new CanceledError("diff", { cause: this.opts.signal.reason });
    const join = (root: string, name: string) => (rel ? `${root}/${rel}/${name}` : `${root}/${name}`);
    const up = readdirSorted(rel ? `${this.upper}/${rel}` : this.upper);
    const low = lowerExists ? readdirSorted(rel ? `${this.lower}/${rel}` : this.lower) : [];
    let i = 0;
    let j = 0;
    while (i < low.length || j < up.length) {
      const l = low[i];
      const u = up[j];
      if (u === undefined || (l !== undefined && l < u)) {
        yield* this.whiteout(rel ? `${rel}/${l}` : l!);
        i++;
        continue;
      }
      const name = u;
      const childRel = rel ? `${rel}/${name}` : name;
      const us = fs.lstatSync(join(this.upper, name), { bigint: true });
      let ls: fs.BigIntStats | null = null;
      if (l === u) {
        ls = lstatOrNull(join(this.lower, name));
        i++;
      }
      j++;
      if (!ls || !sameFile(join(this.lower, name), ls, join(this.upper, name), us)) {
        yield* this.emit(childRel, us);
      }
      if (us.isDirectory()) yield* this.walk(childRel, ls?.isDirectory() ?? false);
    }
  }
}

/**
 * Computes the layer between two directories. The layer is produced as it is read (never held whole); its
 * diffID, digest and size are known once the stream has been read to the end.
 */
export function diffDirs(lower: string, upper: string, options: DiffOptions = {}): DiffStream {
  for (const [what, dir] of [
    ["lower", lower],
    ["upper", upper],
  ] as const) {
    if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
      throw new InvalidArgumentError(`diff: ${what} ${dir} is not a directory`);
    }
  }
  const compression = options.compression ?? "gzip";
  const diffHash = createHash("sha256");
  const blobHash = createHash("sha256");
  let uncompressedSize = 0;
  let size = 0;
  let resolve!: (r: DiffResult) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<DiffResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  result.catch(() => {}); // the stream's consumer sees the error too

  async function* tarBytes(): AsyncGenerator<Buffer> {
    const w = new DiffWriter(lower, upper, options);
    for await (const b of w.walk("", true)) {
      uncompressedSize += b.length;
      diffHash.update(b);
      yield b;
    }
    uncompressedSize += END_OF_ARCHIVE.length;
    diffHash.update(END_OF_ARCHIVE);
    yield END_OF_ARCHIVE;
  }

  async function* out(): AsyncGenerator<Buffer> {
    try {
      const source =
        compression === "gzip" ? throughTransform(tarBytes(), zlib.createGzip({ level: 6 }), "gzip") : tarBytes();
      for await (const b of source) {
        size += b.length;
        blobHash.update(b);
        yield b;
      }
      resolve({
        diffID: `sha256:${diffHash.digest("hex")}`,
        digest: `sha256:${blobHash.digest("hex")}`,
        size,
        uncompressedSize,
        mediaType:
          compression === "gzip"
            ? "application/vnd.oci.image.layer.v1.tar+gzip"
            : "application/vnd.oci.image.layer.v1.tar",
      });
    } catch (err) {
      reject(err);
      throw err;
    }
  }

  return { stream: out(), result };
}
