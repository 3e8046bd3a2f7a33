/**
 * A directory tree as comparable text: per path its type, mode, owner, link target or device numbers, file
 * content hash, and every extended attribute (overlay whiteout marks included). Times are left out: implicit
 * parent directories get the time of their creation on either side.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { REPO_ROOT } from "../src/harness.js";

interface XattrBinding {
  getAttributeSync(path: string, name: string): Buffer | null;
  listAttributesSync(path: string): string[];
}

// the diff package's binding (the integration package has no native dependency of its own)
const xattr = createRequire(join(REPO_ROOT, "packages/diff/package.json"))("@napi-rs/xattr") as XattrBinding;

function xattrsOf(p: string): string {
  let names: string[];
  try {
    names = xattr.listAttributesSync(p).sort();
  } catch {
    return "";
  }
  return names
    .map((n) => {
      let v: Buffer | null = null;
      try {
        v = xattr.getAttributeSync(p, n);
      } catch {}
      return `${n}=${v === null ? "" : JSON.stringify(v.toString("latin1"))}`;
    })
    .join(",");
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return "dir";
  if (st.isFile()) return "file";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  return "other";
}

/** One line per entry below `root` (the root itself included as "."), sorted by path. */
export function describeTree(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    const p = rel === "." ? root : join(root, rel);
    const st = fs.lstatSync(p);
    const kind = kindOf(st);
    let extra = "";
    if (kind === "file")
      extra = ` sha256=${createHash("sha256").update(fs.readFileSync(p)).digest("hex").slice(0, 16)}`;
    else if (kind === "symlink") extra = ` -> ${fs.readlinkSync(p)}`;
    else if (kind === "char" || kind === "block") extra = ` dev=${Math.floor(st.rdev / 256)},${st.rdev % 256}`;
    const links = kind === "file" && st.nlink > 1 ? ` nlink=${st.nlink}` : "";
    const xa = kind === "symlink" ? "" : xattrsOf(p);
    out.push(
      `${rel} ${kind} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${extra}${links}${xa ? ` xattrs[${xa}]` : ""}`,
    );
    if (kind === "dir") for (const name of fs.readdirSync(p).sort()) walk(rel === "." ? name : `${rel}/${name}`);
  };
  walk(".");
  return out.sort();
}
