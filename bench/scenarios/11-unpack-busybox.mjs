// Unpacking, Berth against containerd, with the real ctr (which unpacks client-side: Diff.Apply and
// Snapshots.Prepare/Commit per layer). Two metrics per image:
//   unpack_ms:        unpack only: the image's blobs are in the store (`ctr images import --no-unpack`,
//                     untimed), then `ctr images mount` (unpack for the platform, a view, mount(8)); the
//                     mount is undone with `ctr images unmount --rm` after the sample
//   import_unpack_ms: `ctr images import` with unpack from an empty store
// Before each sample (and after it) the image is removed (`ctr images rm --sync`), its blobs and snapshots
// collected, and the disks synced. ctr runs in the daemon's mount namespace (the mount must see the daemon's
// directories). This file also holds the helpers of 11-unpack-large.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { busyboxArchive, checkImported, cpuMsOf, removeImage } from "../lib/images.mjs";
import { syncDisks } from "../lib/content.mjs";
import { runOk, waitFor } from "../lib/proc.mjs";

/** Removes the image and waits until its blobs and every snapshot of the default namespace are collected. */
async function removeAll(d, archive) {
  await removeImage(d, archive);
  await waitFor(
    async () => {
      const r = await runOk("ctr", ["-a", d.sock, "snapshots", "ls"], { timeoutMs: 30_000 });
      return r.stdout.trim().split("\n").length <= 1;
    },
    { timeoutMs: 60_000, intervalMs: 20, what: `${d.kind} to collect the snapshots of ${archive.name}` },
  );
}

/** One sample: unpack only (through `ctr images mount`), then import with unpack. */
export async function unpackSample(target, archiveP) {
  const [d, archive] = await Promise.all([target.shared(), archiveP]);
  const mnt = join(d.dir, "bench-unpack-mnt");
  mkdirSync(mnt, { recursive: true });

  await removeAll(d, archive);
  await runOk("ctr", ["-a", d.sock, "images", "import", "--no-unpack", archive.path], { timeoutMs: 600_000 });
  await syncDisks();
  let cpu0 = cpuMsOf(d.pid);
  const mount = await d.exec("ctr", ["-a", d.sock, "images", "mount", archive.name, mnt], { timeoutMs: 600_000 });
  if (mount.code !== 0) throw new Error(`${d.kind}: ctr images mount exited ${mount.code}: ${mount.stderr.trim()}`);
  const unpackCpu = cpuMsOf(d.pid) - cpu0;
  const umount = await d.exec("ctr", ["-a", d.sock, "images", "unmount", "--rm", mnt], { timeoutMs: 60_000 });
  if (umount.code !== 0) throw new Error(`${d.kind}: ctr images unmount exited ${umount.code}: ${umount.stderr}`);

  await removeAll(d, archive);
  await syncDisks();
  cpu0 = cpuMsOf(d.pid);
  const imp = await runOk("ctr", ["-a", d.sock, "images", "import", archive.path], {
    timeoutMs: 600_000,
    discardStdout: true,
  });
  const importCpu = cpuMsOf(d.pid) - cpu0;
  await checkImported(d, archive);
  // leave no snapshots behind: the next sample (or scenario) waits for an empty snapshot list
  await removeAll(d, archive);
  return {
    unpack_ms: mount.ms,
    unpack_daemon_cpu_ms: unpackCpu,
    import_unpack_ms: imp.ms,
    import_daemon_cpu_ms: importCpu,
  };
}

export function unpackMetrics(what, unpackTarget) {
  return [
    {
      key: "unpack_ms",
      label: `unpack only (\`ctr images mount\`), ${what}`,
      unit: "ms",
      better: "lower",
      ...(unpackTarget ? { target: unpackTarget } : {}),
    },
    {
      key: "unpack_daemon_cpu_ms",
      label: `daemon CPU (user+sys) during the unpack, ${what}`,
      unit: "ms",
      better: "lower",
    },
    { key: "import_unpack_ms", label: `\`ctr images import\` with unpack, ${what}`, unit: "ms", better: "lower" },
    {
      key: "import_daemon_cpu_ms",
      label: `daemon CPU (user+sys) during the import with unpack, ${what}`,
      unit: "ms",
      better: "lower",
    },
  ];
}

export default {
  name: "unpack-busybox",
  title: "unpack of busybox (1 layer): unpack only, and ctr images import with unpack",
  repeats: 5,
  warmup: 1,
  metrics: unpackMetrics("busybox"),
  sample: (target) => unpackSample(target, busyboxArchive()),
};
