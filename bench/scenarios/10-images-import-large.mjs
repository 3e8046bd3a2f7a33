// `ctr images import --no-unpack` of a ~180 MiB OCI archive with 6 gzip layers of generated file trees: the whole
// ctr process, streaming every blob through Content.Write (with --no-unpack nothing is decompressed: the
// layers are hashed and stored), then labels and Images.Create. Against berthd also
// `berth images import --no-unpack` (start-up included); its containerd column is ctr → containerd. The image
// is removed (`ctr images rm --sync`), its blobs collected and the disks synced before every import.
import { importSample, largeArchive } from "../lib/images.mjs";

export default {
  name: "images-import-large",
  title: "ctr images import --no-unpack, ~180 MiB, 6 gzip layers",
  repeats: 3,
  warmup: 1,
  metrics: [
    {
      key: "import_ms",
      label: "`ctr images import --no-unpack` ~180 MiB",
      unit: "ms",
      better: "lower",
      target: { max: 1 },
    },
    { key: "mib_per_s", label: "`ctr images import` throughput", unit: "MiB/s", better: "higher" },
    {
      key: "daemon_cpu_ms",
      label: "daemon CPU (user+sys) during the ctr import, ~180 MiB",
      unit: "ms",
      better: "lower",
    },
    {
      key: "cli_ms",
      label: "`berth images import --no-unpack` ~180 MiB (containerd: ctr)",
      unit: "ms",
      better: "lower",
    },
  ],
  sample: (target) => importSample(target, largeArchive()),
};
