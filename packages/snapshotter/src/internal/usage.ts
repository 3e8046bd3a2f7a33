import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Usage } from "../snapshotter.js";

/**
 * Disk usage of a tree, as du(1) counts it: allocated blocks (512-byte units) and inodes, each inode (hard
 * links) counted once, the root included. Mount points below the root are not crossed.
 */
export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const top = await lstat(root, { bigint: true });
  const visit = async (path: string, st: Awaited<ReturnType<typeof lstat>> & { ino: bigint }): Promise<void> => {
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) return;
    seen.add(id);
    size += Number(st.blocks) * 512;
    if (!st.isDirectory()) return;
    const names = await readdir(path);
    for (const name of names) {
      const child = join(path, name);
      const cst = await lstat(child, { bigint: true });
      if (cst.dev !== top.dev) continue;
      await visit(child, cst);
    }
  };
  await visit(root, top);
  return { size, inodes: seen.size };
}
