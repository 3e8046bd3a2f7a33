// Temporary mounts for the walking differ (containerd's mount.WithTempMount / WithReadonlyTempMount): a fresh
// directory under the temp-mount root, the mounts stacked on it, always unmounted and removed afterwards.
import fs from "node:fs/promises";
import path from "node:path";
import { type Mount, mountAll, unmountAll } from "@berth/snapshotter";

/** The mounts made read-only: `ro` for binds, an overlay's upper dir turned into its top lower dir. */
export function readonlyMounts(mounts: readonly Mount[]): Mount[] {
  return mounts.map((m) => {
    if (m.type === "overlay") {
      const upper = m.options.find((o) => o.startsWith("upperdir="))?.slice("upperdir=".length);
      if (upper === undefined) return m;
      const rest = m.options.filter(
        (o) => !o.startsWith("upperdir=") && !o.startsWith("workdir=") && !o.startsWith("lowerdir="),
      );
      const lower = m.options.find((o) => o.startsWith("lowerdir="))?.slice("lowerdir=".length);
      const lowerdir = lower ? `${upper}:${lower}` : upper;
      // overlay needs two lower dirs without an upper dir; a single one is mounted as a read-only bind
      if (!lower) return { type: "bind", source: upper, options: ["ro", "rbind"] };
      return { ...m, options: [...rest.filter((o) => o !== "rw"), `lowerdir=${lowerdir}`] };
    }
    if (m.options.includes("ro")) return m;
    return { ...m, options: [...m.options.filter((o) => o !== "rw"), "ro"] };
  });
}

export async function withTempMount<T>(
  tempRoot: string,
  mounts: readonly Mount[],
  fn: (root: string) => Promise<T>,
): Promise<T> {
  await fs.mkdir(tempRoot, { recursive: true, mode: 0o700 });
  const dir = await fs.mkdtemp(path.join(tempRoot, "berth-mount"));
  let mounted = false;
  try {
    if (mounts.length > 0) {
      await mountAll(mounts, dir);
      mounted = true;
    }
    return await fn(dir);
  } finally {
    if (mounted) await unmountAll(dir, { detach: true });
    await fs.rmdir(dir).catch(() => {});
  }
}
