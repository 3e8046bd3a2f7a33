// `ctr images import --no-unpack` of a one-layer busybox image (Debian's busybox-static /bin/busybox, ~1 MiB OCI
// archive): the whole ctr process, mostly per-call overhead (lease, 3 content writes, index/manifest labels,
// Images.Create). Against berthd also `berth images import --no-unpack` (start-up included); its containerd
// column is ctr → containerd. The image is removed (`ctr images rm --sync`) and its blobs collected before
// every import.
import { busyboxArchive, importSample } from "../lib/images.mjs";

export default {
  name: "images-import-busybox",
  title: "ctr images import --no-unpack, busybox (1 layer)",
  repeats: 5,
  warmup: 1,
  metrics: [
    { key: "import_ms", label: "`ctr images import --no-unpack` busybox", unit: "ms", better: "lower" },
    {
      key: "daemon_cpu_ms",
      label: "daemon CPU (user+sys) during the ctr import, busybox",
      unit: "ms",
      better: "lower",
    },
    {
      key: "cli_ms",
      label: "`berth images import --no-unpack` busybox (containerd: ctr)",
      unit: "ms",
      better: "lower",
    },
  ],
  sample: (target) => importSample(target, busyboxArchive()),
};
