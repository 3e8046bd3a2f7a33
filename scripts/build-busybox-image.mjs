#!/usr/bin/env node
// Builds a one-layer busybox image from the host's busybox-static binary (/bin/busybox) as an OCI image layout
// archive for the host's architecture, so that `berth images import` / `ctr images import` can load it without a
// registry. Usage: node scripts/build-busybox-image.mjs OUT.tar [NAME]  (NAME defaults to docker.io/library/busybox:latest)
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { arch as hostArch } from "node:os";
import { gzipSync } from "node:zlib";

const [out, name = "docker.io/library/busybox:latest"] = process.argv.slice(2);
if (!out) {
  process.stderr.write("usage: build-busybox-image.mjs OUT.tar [NAME]\n");
  process.exit(2);
}

// Fixed times and owners: the same busybox binary always gives the same digests.
const MTIME = 1_700_000_000;
const GOARCH = { x64: "amd64", arm64: "arm64", arm: "arm", s390x: "s390x", ppc64: "ppc64le", riscv64: "riscv64" };

function field(n, width) {
  return `${n.toString(8).padStart(width - 1, "0")}\0`;
}

/** ustar entries: regular files, directories and symlinks owned by root. */
function tar(entries) {
  const parts = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, "utf8");
    h.write(field(e.mode, 8), 100, "ascii");
    h.write(field(0, 8), 108, "ascii");
    h.write(field(0, 8), 116, "ascii");
    h.write(field(data.length, 12), 124, "ascii");
    h.write(field(MTIME, 12), 136, "ascii");
    h.write(" ".repeat(8), 148, "ascii");
    h.write({ file: "0", symlink: "2", dir: "5" }[e.type], 156, "ascii");
    if (e.link) h.write(e.link, 157, 100, "utf8");
    h.write("ustar\0" + "00", 257, "ascii");
    h.write("root", 265, "ascii");
    h.write("root", 297, "ascii");
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
    parts.push(h, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const sha = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const blobs = [];
function addBlob(mediaType, bytes) {
  const d = { mediaType, digest: sha(bytes), size: bytes.length };
  blobs.push({ ...d, bytes });
  return d;
}

// every applet (echo, ls, sleep, …) as a bin/ link to busybox, as the busybox image has them
const applets = execFileSync("/bin/busybox", ["--list"], { encoding: "utf8" })
  .split("\n")
  .filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox")
  .sort();
const layerTar = tar([
  { name: "bin/", type: "dir", mode: 0o755 },
  { name: "bin/busybox", type: "file", mode: 0o755, data: readFileSync("/bin/busybox") },
  ...applets.map((a) => ({ name: `bin/${a}`, type: "symlink", mode: 0o777, link: "busybox" })),
  { name: "etc/", type: "dir", mode: 0o755 },
  {
    name: "etc/passwd",
    type: "file",
    mode: 0o644,
    data: Buffer.from("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
  },
  { name: "etc/group", type: "file", mode: 0o644, data: Buffer.from("root:x:0:\nnogroup:x:65534:\n") },
  { name: "tmp/", type: "dir", mode: 0o1777 },
]);
const layer = addBlob("application/vnd.oci.image.layer.v1.tar+gzip", gzipSync(layerTar, { level: 9 }));
const architecture = GOARCH[hostArch()] ?? hostArch();
const config = addBlob(
  "application/vnd.oci.image.config.v1+json",
  Buffer.from(
    JSON.stringify({
      architecture,
      os: "linux",
      created: "2023-11-14T22:13:20Z",
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: [sha(layerTar)] },
      history: [{ created: "2023-11-14T22:13:20Z", created_by: "scripts/build-busybox-image.mjs" }],
    }),
  ),
);
const manifest = addBlob(
  "application/vnd.oci.image.manifest.v1+json",
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: [layer],
    }),
  ),
);
const index = {
  schemaVersion: 2,
  manifests: [
    {
      ...manifest,
      annotations: {
        "io.containerd.image.name": name,
        "org.opencontainers.image.ref.name": name.slice(name.lastIndexOf(":") + 1),
      },
    },
  ],
};
writeFileSync(
  out,
  tar([
    { name: "oci-layout", type: "file", mode: 0o644, data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: "index.json", type: "file", mode: 0o644, data: Buffer.from(JSON.stringify(index)) },
    { name: "blobs/", type: "dir", mode: 0o755 },
    { name: "blobs/sha256/", type: "dir", mode: 0o755 },
    ...blobs.map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, type: "file", mode: 0o644, data: b.bytes })),
  ]),
);
process.stdout.write(`${name} ${manifest.digest}\n`);
