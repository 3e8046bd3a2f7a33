// Image archives for the import scenarios, built once per run in the bench temp dir (removed at the end):
//   busyboxArchive(): Debian's /bin/busybox (busybox-static) as a one-layer linux/amd64 image, OCI layout archive
//   largeArchive():   ~180 MiB, 6 gzip layers of generated file trees (many files of mixed sizes, part
//                     incompressible "binaries", part text), OCI layout archive
// Both are deterministic (pseudo-random bytes from AES-CTR with a fixed key), so digests are the same every run.
// Also: removing an image from a daemon until its blobs are really collected (`ctr images rm --sync`, then wait
// for the files to go), so that each sample really imports every byte.
import { createCipheriv, createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import { BERTH_CLI, blobFile, MiB, mibPerS, syncDisks, timed } from "./content.mjs";
import { makeTempDir } from "./daemon.mjs";
import { onCleanup, processTree, run, waitFor } from "./proc.mjs";

const gzip = promisify(gzipCb);

export const BUSYBOX_BIN = "/bin/busybox";
const MTIME = 1_700_000_000;

// ---- a small ustar writer (names < 100 bytes), as in integration/src/busybox.ts ----

const octal = (n, width) => `${n.toString(8).padStart(width - 1, "0")}\0`;

function tarHeader(name, { type = "file", mode = 0o644, size = 0, linkname } = {}) {
  if (Buffer.byteLength(name) >= 100) throw new Error(`tar name too long: ${name}`);
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(octal(mode, 8), 100, "ascii");
  h.write(octal(0, 8), 108, "ascii");
  h.write(octal(0, 8), 116, "ascii");
  h.write(octal(type === "file" ? size : 0, 12), 124, "ascii");
  h.write(octal(MTIME, 12), 136, "ascii");
  h.write("        ", 148, "ascii");
  h.write(type === "file" ? "0" : type === "dir" ? "5" : "2", 156, "ascii");
  if (linkname) h.write(linkname, 157, 100, "utf8");
  h.write("ustar\0", 257, "ascii");
  h.write("00", 263, "ascii");
  h.write("root", 265, "ascii");
  h.write("root", 297, "ascii");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return h;
}

const padOf = (n) => (512 - (n % 512)) % 512;

/** An in-memory tar of [{ name, type, mode, data, linkname }], with the two zero blocks at the end. */
function tarBytes(files) {
  const parts = [];
  for (const f of files) {
    const data = f.type === "file" || f.type === undefined ? (f.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    parts.push(tarHeader(f.name, { ...f, size: data.length }), data, Buffer.alloc(padOf(data.length)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Streams tar entries into a file (outer archives: blobs are written as they are made). */
class TarFileWriter {
  constructor(path) {
    this.fd = openSync(path, "w");
  }
  #write(buf) {
    for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off);
  }
  add(name, data, opts = {}) {
    this.#write(tarHeader(name, { ...opts, size: data?.length ?? 0 }));
    if (data?.length) {
      this.#write(data);
      this.#write(Buffer.alloc(padOf(data.length)));
    }
  }
  close() {
    this.#write(Buffer.alloc(1024));
    closeSync(this.fd);
  }
}

// ---- deterministic content ----

/** A deterministic pseudo-random byte stream (AES-256-CTR over zeros), seeded by a string. */
function prng(seed) {
  const key = createHash("sha256").update(`berth-bench ${seed}`).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(1 << 20);
  const bytes = (n) => Buffer.from(cipher.update(n <= zeros.length ? zeros.subarray(0, n) : Buffer.alloc(n)));
  let words = new Uint32Array(0);
  let pos = 0;
  const u32 = () => {
    if (pos === words.length) {
      const b = cipher.update(zeros.subarray(0, 1 << 16));
      words = new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
      pos = 0;
    }
    return words[pos++];
  };
  return {
    bytes,
    /** uniform in [0, 1) */
    float: () => u32() / 2 ** 32,
    int: (lo, hi) => lo + Math.floor((u32() / 2 ** 32) * (hi - lo)),
  };
}

const WORDS = `the of and to in is that for it as with was on be by this are or from at which an not but have
  function return const let var if else while for import export default class extends new this null undefined true
  false async await yield static public private interface type string number boolean void error config value data
  buffer stream socket server client request response header body status message handler context options result
  path file directory mount layer image container content digest manifest index platform snapshot namespace lease
  include define struct int char unsigned long size_t static inline volatile extern typedef enum union sizeof goto
  usr lib bin share local etc var opt proc sys dev tmp run home root debian ubuntu alpine python3 perl ruby node`
  .split(/\s+/)
  .filter(Boolean);

/** ~`size` bytes of text-like content (lines of words and numbers): gzip gets ~3-4×. */
function textBytes(rng, size) {
  const parts = [];
  let n = 0;
  while (n < size) {
    const words = [];
    const count = rng.int(3, 14);
    for (let i = 0; i < count; i++) {
      const r = rng.int(0, 10);
      words.push(r === 0 ? String(rng.int(0, 100_000)) : WORDS[rng.int(0, WORDS.length)]);
    }
    const line = `${"  ".repeat(rng.int(0, 4))}${words.join(" ")}\n`;
    parts.push(line);
    n += line.length;
  }
  return Buffer.from(parts.join("")).subarray(0, size);
}

/** File sizes: mostly small, a long tail up to a few MiB (log-uniform, 64 B .. 4 MiB). */
const fileSize = (rng) => Math.round(Math.exp(Math.log(64) + rng.float() * (Math.log(4 * MiB) - Math.log(64))));

/**
 * One layer's tar: a file tree under a few top-level dirs, files of mixed sizes until `target` bytes of data;
 * `binaryShare` of the bytes are incompressible (binaries, compressed assets), the rest text.
 */
function layerTree(seed, target, binaryShare) {
  const rng = prng(seed);
  const tops = ["usr/lib", "usr/share", "usr/bin", "opt/app", "etc", "var/lib"];
  const files = [];
  const dirs = new Set();
  const addDir = (d) => {
    const parts = d.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join("/");
      if (!dirs.has(p)) {
        dirs.add(p);
        files.push({ name: `${p}/`, type: "dir", mode: 0o755 });
      }
    }
  };
  // text files are slices of one generated corpus per layer (cheaper than generating every byte)
  const corpus = textBytes(rng, 4 * MiB);
  const text = (size) => {
    const parts = [];
    for (let left = size; left > 0; ) {
      const off = rng.int(0, corpus.length - Math.min(left, corpus.length));
      const part = corpus.subarray(off, off + Math.min(left, corpus.length));
      parts.push(part);
      left -= part.length;
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  };
  let total = 0;
  let i = 0;
  let dir = "";
  while (total < target) {
    if (i % 25 === 0) {
      dir = `${tops[rng.int(0, tops.length)]}/${seed}-pkg${Math.floor(i / 25)}/${["lib", "share", "doc", "bin", "src"][rng.int(0, 5)]}`;
      addDir(dir);
    }
    const size = Math.min(fileSize(rng), target - total + 64);
    const binary = rng.float() < binaryShare;
    const data = binary ? rng.bytes(size) : text(size);
    files.push({ name: `${dir}/f${i}${binary ? ".so" : ".txt"}`, type: "file", mode: binary ? 0o755 : 0o644, data });
    if (i % 40 === 7) files.push({ name: `${dir}/l${i}`, type: "symlink", mode: 0o777, linkname: `f${i}` });
    total += size;
    i++;
  }
  return { tar: tarBytes(files), files: i };
}

// ---- OCI image layout archives ----

const sha256 = (b) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const json = (v) => Buffer.from(JSON.stringify(v));

/**
 * Writes an OCI layout archive of one linux/amd64 image named `name` whose layers are the given tars
 * (gzip-compressed here, in parallel on the thread pool). Blobs first, then index.json and oci-layout (as
 * containerd's exporter orders them). Resolves { path, name, size, blobs: [digest], layers, bytesUncompressed }.
 */
async function writeOciImage(path, name, layerTars) {
  const out = new TarFileWriter(path);
  const blobs = [];
  const layers = [];
  const diffIds = [];
  let uncompressed = 0;
  try {
    out.add("blobs/", undefined, { type: "dir", mode: 0o755 });
    out.add("blobs/sha256/", undefined, { type: "dir", mode: 0o755 });
    const gz = layerTars.map(async (t) => {
      const tar = await t;
      return { diffId: sha256(tar), size: tar.length, gz: await gzip(tar) };
    });
    for (const p of gz) {
      const { diffId, size, gz: bytes } = await p;
      uncompressed += size;
      const digest = sha256(bytes);
      diffIds.push(diffId);
      layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest, size: bytes.length });
      out.add(`blobs/sha256/${digest.slice(7)}`, bytes);
      blobs.push(digest);
    }
    const config = json({
      architecture: "amd64",
      os: "linux",
      created: "2023-11-14T22:13:20Z",
      config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created: "2023-11-14T22:13:20Z", created_by: "berth bench" })),
    });
    const configDesc = {
      mediaType: "application/vnd.oci.image.config.v1+json",
      digest: sha256(config),
      size: config.length,
    };
    const manifest = json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: configDesc,
      layers,
    });
    const manifestDigest = sha256(manifest);
    out.add(`blobs/sha256/${configDesc.digest.slice(7)}`, config);
    out.add(`blobs/sha256/${manifestDigest.slice(7)}`, manifest);
    blobs.push(configDesc.digest, manifestDigest);
    const index = json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: manifestDigest,
          size: manifest.length,
          platform: { architecture: "amd64", os: "linux" },
          annotations: {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.slice(name.lastIndexOf(":") + 1),
          },
        },
      ],
    });
    out.add("index.json", index);
    out.add("oci-layout", json({ imageLayoutVersion: "1.0.0" }));
  } finally {
    out.close();
  }
  const { size } = await import("node:fs").then((fs) => fs.statSync(path));
  return { path, name, size, blobs, layers: layers.length, bytesUncompressed: uncompressed };
}

let dataDir;
function benchDataDir() {
  if (dataDir === undefined) {
    const dir = makeTempDir("images");
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    dataDir = dir;
  }
  return dataDir;
}

const archives = new Map();
function once(key, make) {
  let p = archives.get(key);
  if (p === undefined) {
    p = make();
    archives.set(key, p);
  }
  return p;
}

/** busybox-static's /bin/busybox as a one-layer image (`bin/busybox`, `bin/sh` → busybox), OCI archive. */
export function busyboxArchive() {
  return once("busybox", async () => {
    if (!existsSync(BUSYBOX_BIN)) throw new Error(`${BUSYBOX_BIN} missing (apt-get install -y busybox-static)`);
    const tar = tarBytes([
      { name: "bin/", type: "dir", mode: 0o755 },
      { name: "bin/busybox", type: "file", mode: 0o755, data: readFileSync(BUSYBOX_BIN) },
      { name: "bin/sh", type: "symlink", mode: 0o777, linkname: "busybox" },
    ]);
    return writeOciImage(join(benchDataDir(), "busybox.tar"), "docker.io/library/bench-busybox:latest", [tar]);
  });
}

/** The large image: 6 gzip layers, ~180 MiB archive (~240 MiB of file data, ~55 % incompressible). */
export function largeArchive() {
  return once("large", async () => {
    const sizes = [61, 51, 42, 35, 31, 26].map((m) => m * MiB);
    const tars = sizes.map((s, i) => Promise.resolve().then(() => layerTree(`layer${i}`, s, 0.55).tar));
    return writeOciImage(join(benchDataDir(), "large.tar"), "docker.io/library/bench-large:latest", tars);
  });
}

/**
 * `ctr images rm --sync NAME` (a missing image is fine), then wait until every blob of the archive has left the
 * daemon's content store, so the next import writes them all again.
 */
export async function removeImage(d, archive, { timeoutMs = 60_000 } = {}) {
  const r = await run("ctr", ["-a", d.sock, "images", "rm", "--sync", archive.name], { timeoutMs: 60_000 });
  if (r.code !== 0 && !/not found/i.test(r.stderr)) {
    throw new Error(`ctr images rm --sync ${archive.name} (${d.kind}) exited ${r.code}: ${r.stderr.trim()}`);
  }
  await waitFor(() => archive.blobs.every((b) => !existsSync(blobFile(d, b))), {
    timeoutMs,
    intervalMs: 20,
    what: `${d.kind} to collect the blobs of ${archive.name}`,
  });
}

/** Throws unless the daemon lists the image with the archive's manifest as its target. */
export async function checkImported(d, archive) {
  const r = await run("ctr", ["-a", d.sock, "images", "ls", `name==${archive.name}`], { timeoutMs: 30_000 });
  const manifest = archive.blobs.at(-1);
  if (r.code !== 0 || !r.stdout.includes(manifest)) {
    throw new Error(`${d.kind}: ${archive.name} not imported as ${manifest}:\n${r.stdout}${r.stderr}`);
  }
}

const CLK_TCK = 100; // Linux USER_HZ (`getconf CLK_TCK`)

/** CPU time (user + system, ms) used so far by the process and its descendants (/proc/PID/stat). */
export function cpuMsOf(pid) {
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
    } catch {}
  }
  return (ticks * 1000) / CLK_TCK;
}

/**
 * One sample of an import scenario. Against containerd: `ctr images import --no-unpack` (import_ms); the
 * berth-CLI metric (cli_ms) repeats that number, so its ratio is `berth images import` → berthd against
 * ctr → containerd. Against berthd: the same ctr import, then (after removing it again)
 * `berth images import --no-unpack`. daemon_cpu_ms: the daemon's CPU time (user + system, its process tree)
 * during the ctr import, which the machine's load disturbs much less than wall time. Before each import the
 * image is removed, its blobs collected, and the disks synced.
 */
export async function importSample(target, archiveP) {
  const [d, archive] = await Promise.all([target.shared(), archiveP]);
  const ctrImport = async () => {
    await removeImage(d, archive);
    await syncDisks();
    const cpu0 = cpuMsOf(d.pid);
    const ms = await timed("ctr", ["-a", d.sock, "images", "import", "--no-unpack", archive.path], {
      discardStdout: true,
    });
    const cpu = cpuMsOf(d.pid) - cpu0;
    await checkImported(d, archive);
    return { import_ms: ms, daemon_cpu_ms: cpu, mib_per_s: mibPerS(archive.size, ms) };
  };
  const ctrSample = await ctrImport();
  if (d.kind !== "berth") return { ...ctrSample, cli_ms: ctrSample.import_ms };
  await removeImage(d, archive);
  await syncDisks();
  const cliMs = await timed(
    process.execPath,
    [BERTH_CLI, "-a", d.sock, "images", "import", "--no-unpack", "--no-progress", archive.path],
    { discardStdout: true },
  );
  await checkImported(d, archive);
  return { ...ctrSample, cli_ms: cliMs };
}
