// Tar headers for layers Berth writes: ustar, with a PAX header (as Go's archive/tar in FormatPAX) when a name,
// link name or id does not fit, or when there are xattrs (PAX values are bytes).
export interface WriteHeader {
  name: string;
  type: "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Whole seconds. */
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

const FLAGS: Record<WriteHeader["type"], string> = {
  file: "0",
  link: "1",
  symlink: "2",
  char: "3",
  block: "4",
  directory: "5",
  fifo: "6",
};
const MAX_OCTAL_8 = 0o7777777;
const MAX_OCTAL_12 = 0o77777777777;

function octal(buf: Buffer, off: number, len: number, v: number): void {
  buf.write(`${v.toString(8).padStart(len - 1, "0")}\0`, off, len, "latin1");
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

/** Splits a long name into ustar prefix and name, or returns null when it does not fit. */
function splitUstar(name: string): [string, string] | null {
  if (Buffer.byteLength(name) <= 100) return ["", name];
  for (let i = name.indexOf("/"); i >= 0; i = name.indexOf("/", i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== "") return [prefix, rest];
  }
  return null;
}

function block(h: WriteHeader, name: string, prefix: string, linkname: string, flag: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100, "utf8");
  octal(b, 100, 8, h.mode & 0o7777);
  octal(b, 108, 8, Math.min(h.uid, MAX_OCTAL_8));
  octal(b, 116, 8, Math.min(h.gid, MAX_OCTAL_8));
  octal(b, 124, 12, size);
  octal(b, 136, 12, Math.min(Math.max(0, h.mtime), MAX_OCTAL_12));
  b.fill(0x20, 148, 156);
  b.write(flag, 156, 1, "latin1");
  b.write(linkname, 157, 100, "utf8");
  b.write("ustar\x0000", 257, 8, "latin1");
  octal(b, 329, 8, h.devmajor ?? 0);
  octal(b, 337, 8, h.devminor ?? 0);
  b.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return b;
}

function pad(n: number): Buffer {
  return Buffer.alloc((512 - (n % 512)) % 512);
}

/** The header blocks (a PAX header first when needed) for one entry; the caller writes the data and padding. */
export function encodeHeader(h: WriteHeader): Buffer {
  const records: Buffer[] = [];
  const linkname = h.linkname ?? "";
  let split = splitUstar(h.name);
  if (!split) {
    records.push(paxRecord("path", Buffer.from(h.name)));
    split = ["", h.name.slice(0, 99)];
  }
  let ustarLink = linkname;
  if (Buffer.byteLength(linkname) > 100) {
    records.push(paxRecord("linkpath", Buffer.from(linkname)));
    ustarLink = linkname.slice(0, 99);
  }
  if (h.uid > MAX_OCTAL_8) records.push(paxRecord("uid", Buffer.from(String(h.uid))));
  if (h.gid > MAX_OCTAL_8) records.push(paxRecord("gid", Buffer.from(String(h.gid))));
  for (const [k, v] of [...(h.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : 1))) {
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const main = block(h, split[1], split[0], ustarLink, FLAGS[h.type], h.type === "file" ? h.size : 0);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxName = `PaxHeaders.0/${split[1]}`.slice(0, 100);
  const paxHdr = block({ ...h, uid: 0, gid: 0 }, paxName, "", "", "x", pax.length);
  return Buffer.concat([paxHdr, pax, pad(pax.length), main]);
}

export function dataPadding(size: number): Buffer {
  return pad(size);
}

/** Two zero blocks: the end-of-archive marker. */
export const END_OF_ARCHIVE = Buffer.alloc(1024);
