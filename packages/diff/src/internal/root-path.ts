// Paths scoped to a root: a name from a layer is evaluated as if the root were "/" (continuity's fs.RootPath,
// used by containerd's archive.Apply). ".." stops at the root, absolute names start at the root, and every
// symlink met on the way is read and evaluated inside the root, so the result never leaves it.
import fs from "node:fs";
import { InvalidArgumentError } from "@berth/errdefs";

const MAX_LINKS = 255;

/** Components of a slash-separated name after lexical cleaning against "/" ("..", "." and "" dropped). */
export function cleanParts(name: string): string[] {
  const out: string[] = [];
  for (const c of name.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out;
}

export class RootPath {
  private readonly cache = new Map<string, string>();

  constructor(readonly root: string) {}

  /** Forgets cached resolutions (call after anything is removed or a symlink is created). */
  invalidate(): void {
    this.cache.clear();
  }

  /** Resolves a name inside the root, following symlinks in every component (the last one included). */
  resolve(name: string): string {
    const key = cleanParts(name).join("/");
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const resolved = this.walk(key);
    this.cache.set(key, resolved);
    return resolved;
  }

  private walk(name: string): string {
    const pending = name === "" ? [] : name.split("/").reverse(); // a stack: next component on top
    const done: string[] = [];
    let links = 0;
    let missing = false;
    while (pending.length > 0) {
      const c = pending.pop()!;
      if (c === "" || c === ".") continue;
      if (c === "..") {
        done.pop();
        continue;
      }
      if (missing) {
        done.push(c);
        continue;
      }
      const candidate = this.join(done, c);
      let st: fs.Stats;
      try {
        st = fs.lstatSync(candidate);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
        missing = true; // nothing below exists: the rest is taken as written
        done.push(c);
        continue;
      }
      if (!st.isSymbolicLink()) {
        done.push(c);
        continue;
      }
      if (++links > MAX_LINKS) {
        throw new InvalidArgumentError(`path ${JSON.stringify(name)}: too many levels of symbolic links`);
      }
      const target = fs.readlinkSync(candidate);
      if (target.startsWith("/")) done.length = 0;
      const parts = target.split("/");
      for (let i = parts.length - 1; i >= 0; i--) pending.push(parts[i]!);
    }
    return this.join(done);
  }

  private join(parts: string[], last?: string): string {
    let p = this.root;
    for (const c of parts) p += `/${c}`;
    if (last !== undefined) p += `/${last}`;
    return p;
  }

  /** True when p is the root or below it (p already clean and absolute). */
  contains(p: string): boolean {
    return p === this.root || p.startsWith(`${this.root}/`);
  }
}
