// Unpacking the large image (~180 MiB OCI archive, 6 gzip layers of generated file trees), Berth against
// containerd with the real ctr; see 11-unpack-busybox for what one sample is. Target (issue 5): the unpack
// takes at most 0.8× containerd's time.
import { largeArchive } from "../lib/images.mjs";
import { unpackMetrics, unpackSample } from "./11-unpack-busybox.mjs";

export default {
  name: "unpack-large",
  title: "unpack of the large image (~180 MiB, 6 gzip layers): unpack only, and ctr images import with unpack",
  repeats: 3,
  warmup: 1,
  metrics: unpackMetrics("~180 MiB, 6 layers", { max: 0.8 }),
  sample: (target) => unpackSample(target, largeArchive()),
};
