// A streaming tar reader (ustar, GNU long names, PAX) written for layer apply. Unlike general-purpose readers it
// keeps PAX values as bytes (SCHILY.xattr values such as security.capability are binary), applies PAX global
// headers to nothing (as Go's archive/tar), bounds every header it buffers, and reports a stream that ends
// without the end-of-archive marker as truncated.
import { DataLossError, InvalidArgumentError, NotImplementedError } from "@berth/errdefs";
import type { ByteSource } from "./byte-source.js";

export type EntryType = "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo" | "global";

export interface TarEntry {
  name: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow the header (0 for header-only types). */
  size: number;
  /** Seconds since the epoch, fractional when PAX gives sub-second precision. */
  mtime: number;
  atime: number | undefined;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records, name without the prefix, value as bytes. */
  xattrs: Map<string, Buffer>;
}

const BLOCK = 512;
/** Largest PAX or GNU long-name header accepted (Go's archive/tar uses the same bound). */
export const MAX_SPECIAL_HEADER = 1 << 20;
const XATTR_PREFIX = "SCHILY.xattr.";

function cstring(b: Buffer, start: number, end: number): string {
  let e = start;
  while (e < end && b[e] !== 0) e++;
  return b.toString("utf8", start, e);
}

function numeric(b: Buffer, start: number, end: number, field: string): number {
  const first = b[start]!;
  if (first & 0x80) {
    // base-256 (GNU): big-endian two's complement with the top bit of the first byte as a marker
    const negative = (first & 0x40) !== 0;
    let v = 0n;
    for (let i = start; i < end; i++) {
      let byte = b[i]!;
      if (i === start) byte &= 0x7f;
      if (negative) byte ^= 0xff;
      v = (v << 8n) | BigInt(byte);
    }
    if (negative) v = -(v + 1n);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidArgumentError(`invalid tar header: ${field} out of range`);
    }
    return Number(v);
  }
  let s = start;
  while (s < end && (b[s] === 0x20 || b[s] === 0)) s++;
  let v = 0;
  let any = false;
  for (let i = s; i < end; i++) {
    const c = b[i]!;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new InvalidArgumentError(`invalid tar header: bad octal in ${field}`);
    v = v * 8 + (c - 0x30);
    any = true;
  }
  return any ? v : 0;
}

function checksumOk(b: Buffer): boolean {
  const stored = numeric(b, 148, 156, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return stored === unsigned || stored === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parses "%d key=value\n" records; values stay bytes. */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    if (buf[off] === 0) break; // padding
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) throw new InvalidArgumentError("invalid tar header: malformed PAX record");
    const len = Number.parseInt(buf.toString("latin1", off, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - off + 1 || off + len > buf.length || buf[off + len - 1] !== 0x0a) {
      throw new InvalidArgumentError("invalid tar header: malformed PAX record");
    }
    const rec = buf.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw new InvalidArgumentError("invalid tar header: malformed PAX record");
    out.set(rec.toString("utf8", 0, eq), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

function paxNumber(v: Buffer | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const s = v.toString("latin1");
  if (!/^-?\d+(\.\d+)?$/.test(s))
    throw new InvalidArgumentError(`invalid tar header: bad PAX ${key} ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`invalid tar header: bad PAX ${key}`);
  return n;
}

const TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
  g: "global",
};

export class TarReader {
  private remaining = 0; // unread data bytes of the current entry
  private padding = 0;
  private ended = false;

  constructor(private readonly src: ByteSource) {}

  private async readSpecial(size: number, what: string): Promise<Buffer> {
    if (size > MAX_SPECIAL_HEADER) {
      throw new InvalidArgumentError(`invalid tar header: ${what} of ${size} bytes exceeds ${MAX_SPECIAL_HEADER}`);
    }
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const buf = await this.src.readExact(padded, what);
    if (buf === null) throw new InvalidArgumentError(`invalid tar header: ${what} at end of stream`);
    return Buffer.from(buf.subarray(0, size));
  }

  /** Skips what is left of the current entry's data. */
  private async finishEntry(): Promise<void> {
    if (this.remaining + this.padding > 0) {
      await this.src.skip(this.remaining + this.padding, "entry data");
      this.remaining = 0;
      this.padding = 0;
    }
  }

  /** Data of the current entry; read it before calling next() again, or next() skips it. */
  async *body(): AsyncGenerator<Buffer> {
    const n = this.remaining;
    this.remaining = 0;
    yield* this.src.take(n, "entry data");
    if (this.padding > 0) {
      const p = this.padding;
      this.padding = 0;
      await this.src.skip(p, "entry padding");
    }
  }

  async next(): Promise<TarEntry | null> {
    if (this.ended) return null;
    await this.finishEntry();
    let pax: Map<string, Buffer> | undefined;
    let longName: string | undefined;
    let longLink: string | undefined;
    for (;;) {
      const hdr = await this.src.readExact(BLOCK, "tar header");
      if (hdr === null) {
        // Go's reader accepts this; a layer without its end-of-archive marker is most often cut short.
        throw new DataLossError("layer stream truncated: tar stream ended without its end-of-archive marker");
      }
      if (isZeroBlock(hdr)) {
        if (pax || longName !== undefined || longLink !== undefined) {
          throw new InvalidArgumentError("invalid tar header: extended header without an entry");
        }
        this.ended = true;
        return null;
      }
      if (!checksumOk(hdr)) throw new InvalidArgumentError("invalid tar header: checksum mismatch");
      const flag = String.fromCharCode(hdr[156]!);
      const size = numeric(hdr, 124, 136, "size");
      if (size < 0) throw new InvalidArgumentError("invalid tar header: negative size");
      if (flag === "x") {
        pax = parsePax(await this.readSpecial(size, "PAX header"));
        continue;
      }
      if (flag === "L") {
        longName = cstring(await this.readSpecial(size, "GNU long name"), 0, size);
        continue;
      }
      if (flag === "K") {
        longLink = cstring(await this.readSpecial(size, "GNU long link name"), 0, size);
        continue;
      }
      let type = TYPES[flag];
      const magic = hdr.toString("latin1", 257, 263);
      let name = cstring(hdr, 0, 100);
      if (magic === "ustar\0") {
        const prefix = cstring(hdr, 345, 500);
        if (prefix) name = `${prefix}/${name}`;
      }
      if (longName !== undefined) name = longName;
      let linkname = longLink ?? cstring(hdr, 157, 257);
      if (type === undefined) {
        if (flag === "S" || pax?.has("GNU.sparse.major") || pax?.has("GNU.sparse.size")) {
          throw new NotImplementedError(`tar entry ${JSON.stringify(name)}: sparse files`);
        }
        throw new InvalidArgumentError(
          `tar entry ${JSON.stringify(name)}: unhandled tar header type ${JSON.stringify(flag)}`,
        );
      }
      // Old-style regular files with a trailing slash are directories (as Go's archive/tar).
      if (flag === "\0" && name.endsWith("/")) type = "directory";
      let uid = numeric(hdr, 108, 116, "uid");
      let gid = numeric(hdr, 116, 124, "gid");
      let mtime = numeric(hdr, 136, 148, "mtime");
      let atime: number | undefined;
      let dataSize = size;
      const xattrs = new Map<string, Buffer>();
      if (pax) {
        const p = pax.get("path");
        if (p !== undefined) name = p.toString("utf8");
        const l = pax.get("linkpath");
        if (l !== undefined) linkname = l.toString("utf8");
        dataSize = paxNumber(pax.get("size"), "size") ?? dataSize;
        uid = paxNumber(pax.get("uid"), "uid") ?? uid;
        gid = paxNumber(pax.get("gid"), "gid") ?? gid;
        mtime = paxNumber(pax.get("mtime"), "mtime") ?? mtime;
        atime = paxNumber(pax.get("atime"), "atime");
        for (const [k, v] of pax) {
          if (k.startsWith(XATTR_PREFIX)) xattrs.set(k.slice(XATTR_PREFIX.length), v);
        }
      }
      if (!Number.isSafeInteger(dataSize) || dataSize < 0)
        throw new InvalidArgumentError("invalid tar header: bad size");
      if (!Number.isSafeInteger(uid) || uid < 0 || !Number.isSafeInteger(gid) || gid < 0) {
        throw new InvalidArgumentError(`tar entry ${JSON.stringify(name)}: invalid uid/gid`);
      }
      if (name.includes("\0") || linkname.includes("\0")) {
        throw new InvalidArgumentError("invalid tar header: NUL in name");
      }
      // Header-only types carry no data whatever their size field says (Go's archive/tar).
      const headerOnly = type !== "file" && type !== "global";
      this.remaining = headerOnly ? 0 : dataSize;
      this.padding = headerOnly ? 0 : (BLOCK - (dataSize % BLOCK)) % BLOCK;
      return {
        name,
        type,
        mode: numeric(hdr, 100, 108, "mode") & 0o7777,
        uid,
        gid,
        size: this.remaining,
        mtime,
        atime,
        linkname,
        devmajor: type === "char" || type === "block" ? numeric(hdr, 329, 337, "devmajor") : 0,
        devminor: type === "char" || type === "block" ? numeric(hdr, 337, 345, "devminor") : 0,
        xattrs,
      };
    }
  }
}
