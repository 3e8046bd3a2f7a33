// System calls Node has no API for: mknod (through the mknod(1) binary: device nodes and fifos are rare in
// layers, and overlay whiteouts are one per removed file) and extended attributes (through @napi-rs/xattr,
// whose calls do not follow symlinks, like lsetxattr/lgetxattr).
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import os from "node:os";

interface XattrBinding {
  setAttributeSync(path: string, name: string, value: Uint8Array | string): void;
  getAttributeSync(path: string, name: string): Buffer | null;
  listAttributesSync(path: string): string[];
}

let binding: XattrBinding | null | undefined;

function xattrBinding(): XattrBinding | null {
  if (binding === undefined) {
    try {
      binding = createRequire(import.meta.url)("@napi-rs/xattr") as XattrBinding;
    } catch {
      binding = null;
    }
  }
  return binding;
}

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(os.constants.errno).map(([name, n]) => [n, name]),
);

/** Turns the binding's "… (os error N)" failures into errno-coded errors. */
function errnoError(err: unknown, syscall: string, path: string): NodeJS.ErrnoException {
  const m = /os error (\d+)/.exec(String((err as Error)?.message ?? err));
  const errno = m ? Number(m[1]) : 0;
  const code = ERRNO_NAMES[errno] ?? "EIO";
  const e = new Error(`${code}: ${syscall} ${path}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = syscall;
  e.path = path;
  e.cause = err;
  return e;
}

export function xattrSupported(): boolean {
  return xattrBinding() !== null;
}

/** lsetxattr: sets an extended attribute without following a symlink at path. */
export function lsetxattr(path: string, name: string, value: Uint8Array | string): void {
  const b = xattrBinding();
  if (!b) {
    const e = new Error(`ENOTSUP: lsetxattr ${path}: no xattr binding`) as NodeJS.ErrnoException;
    e.code = "ENOTSUP";
    throw e;
  }
  try {
    b.setAttributeSync(path, name, value);
  } catch (err) {
    throw errnoError(err, "lsetxattr", path);
  }
}

/** lgetxattr: null when the attribute is absent or xattrs are unsupported. */
export function lgetxattr(path: string, name: string): Buffer | null {
  const b = xattrBinding();
  if (!b) return null;
  try {
    return b.getAttributeSync(path, name);
  } catch (err) {
    const e = errnoError(err, "lgetxattr", path);
    if (e.code === "ENODATA" || e.code === "ENOTSUP" || e.code === "EOPNOTSUPP") return null;
    throw e;
  }
}

/** llistxattr: [] when xattrs are unsupported. */
export function llistxattr(path: string): string[] {
  const b = xattrBinding();
  if (!b) return [];
  try {
    return b.listAttributesSync(path);
  } catch (err) {
    const e = errnoError(err, "llistxattr", path);
    if (e.code === "ENOTSUP" || e.code === "EOPNOTSUPP") return [];
    throw e;
  }
}

export type NodeKind = "char" | "block" | "fifo";

/** mknod(2) through mknod(1); the parent of path must already be resolved inside the root. */
export function mknod(path: string, kind: NodeKind, mode: number, major = 0, minor = 0): void {
  const args = ["-m", (mode & 0o7777).toString(8), "--", path];
  if (kind === "fifo") args.push("p");
  else args.push(kind === "char" ? "c" : "b", String(major), String(minor));
  try {
    execFileSync("mknod", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
    const code = /File exists/i.test(stderr)
      ? "EEXIST"
      : /not permitted/i.test(stderr)
        ? "EPERM"
        : /No such file/i.test(stderr)
          ? "ENOENT"
          : /too long/i.test(stderr)
            ? "ENAMETOOLONG"
            : (err as NodeJS.ErrnoException).code === "ENOENT"
              ? "ENOSYS"
              : "EIO";
    const e = new Error(`${code}: mknod ${path}: ${stderr || (err as Error).message}`) as NodeJS.ErrnoException;
    e.code = code;
    e.path = path;
    e.syscall = "mknod";
    throw e;
  }
}
