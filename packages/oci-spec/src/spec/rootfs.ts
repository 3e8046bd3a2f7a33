/**
 * Reading files of a container's root filesystem without mounting it: from a directory, or from the layer
 * directories of an overlay (upper first). Paths are resolved inside the root: `..` and symlinks never leave it,
 * as containerd's `fs.RootPath` guarantees.
 */
import { lstat, readFile, readlink } from "node:fs/promises";
import { posix } from "node:path";

/** Read access to files inside a root filesystem. */
export interface RootfsFiles {
  /** The file's text, or undefined when it does not exist (or is not a regular file). */
  readText(path: string): Promise<string | undefined>;
}

/** Where a path lives: in which layer directory, and what it is. */
interface Found {
  readonly hostPath: string;
  readonly kind: "file" | "dir" | "symlink" | "other";
}

const MAX_SYMLINKS = 40;

/**
 * A root made of stacked directories, topmost first (an overlay's upperdir then its lowerdirs, or a single
 * directory). A character device 0/0 in an upper layer is an overlay whiteout: the name is absent below it.
 */
export function layeredRootfs(layers: readonly string[]): RootfsFiles {
  const find = async (rel: string): Promise<Found | undefined> => {
    for (const layer of layers) {
      const hostPath = posix.join(layer, rel);
      const st = await lstat(hostPath).catch(() => undefined);
      if (st === undefined) continue;
      if (st.isCharacterDevice() && st.rdev === 0) return undefined;
      const kind = st.isFile() ? "file" : st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : "other";
      return { hostPath, kind };
    }
    return undefined;
  };

  /** Resolves `path` component by component, following symlinks relative to the root. */
  const resolve = async (path: string): Promise<Found | undefined> => {
    let pending = path.split("/").filter((c) => c !== "" && c !== ".");
    let current: string[] = [];
    let links = 0;
    let found: Found | undefined = { hostPath: layers[0] ?? "/", kind: "dir" };
    while (pending.length > 0) {
      const name = pending.shift() as string;
      if (name === "..") {
        current.pop();
        continue;
      }
      const candidate = [...current, name];
      found = await find(candidate.join("/"));
      if (found === undefined) return undefined;
      if (found.kind === "symlink") {
        if (++links > MAX_SYMLINKS) return undefined;
        const target = await readlink(found.hostPath);
        if (target.startsWith("/")) current = [];
        pending = [...target.split("/").filter((c) => c !== "" && c !== "."), ...pending];
        found = { hostPath: "", kind: "dir" };
        continue;
      }
      current = candidate;
    }
    return found;
  };

  return {
    async readText(path) {
      const found = await resolve(path);
      if (found === undefined || found.kind !== "file") return undefined;
      return readFile(found.hostPath, "utf8").catch(() => undefined);
    },
  };
}

/** A root filesystem that is one directory on this host. */
export function directoryRootfs(root: string): RootfsFiles {
  return layeredRootfs([root]);
}
