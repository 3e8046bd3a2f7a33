// Pulls from a local registry (Debian's docker-registry on 127.0.0.1, private config and storage, started once
// per run and stopped by PID at the end) of the busybox image and of the large image (the archives of scenarios
// 09 and 10, uploaded blob by blob through the distribution API). Per sample and daemon: the image is removed
// and its blobs and snapshots collected, then `ctr images pull --plain-http` (whole ctr process: resolve, fetch,
// Content.Write, unpack through Diff + Snapshots). Against berthd also `berth images pull --plain-http`
// (start-up included), whose containerd column is ctr → containerd: berthd has the Pull service
// (berth.services.pull.v1), so this is the daemon-side pull — berthd fetches into its own content store and
// unpacks with its own differ while later layers download; the CLI only renders the streamed progress. The
// info row `berth images pull --local` is the client-side pull (the CLI fetches and writes through
// Content.Write, unpacks through Diff, as ctr does), for comparison.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { join } from "node:path";
import { BERTH_CLI, syncDisks, timed } from "../lib/content.mjs";
import { makeTempDir } from "../lib/daemon.mjs";
import { busyboxArchive, largeArchive, removeImage } from "../lib/images.mjs";
import { onCleanup, run, runOk, stopPid, waitFor } from "../lib/proc.mjs";

const REGISTRY_BIN = "/usr/bin/docker-registry";

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function httpOk(url) {
  return new Promise((resolve) => {
    const req = http.get(url, (res) => {
      res.resume();
      resolve(true);
    });
    req.on("error", () => resolve(false));
  });
}

let registryP;
/** docker-registry on 127.0.0.1:<free port>; its host:port. */
export function registry() {
  registryP ??= (async () => {
    const dir = makeTempDir("registry");
    const port = await freePort();
    const cfg = join(dir, "config.yml");
    writeFileSync(
      cfg,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${join(dir, "storage")}`,
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const child = spawn(REGISTRY_BIN, ["serve", cfg], { stdio: "ignore" });
    onCleanup(() => stopPid(child.pid, { child, graceMs: 5000 }));
    await waitFor(() => httpOk(`http://127.0.0.1:${port}/v2/`), {
      timeoutMs: 15_000,
      intervalMs: 20,
      what: "docker-registry",
    });
    return `127.0.0.1:${port}`;
  })();
  return registryP;
}

/** The blobs and index.json of an (uncompressed) OCI layout tar, read entry by entry. */
function* tarEntries(path) {
  const fd = openSync(path, "r");
  try {
    const header = Buffer.alloc(512);
    let pos = 0;
    for (;;) {
      if (readSync(fd, header, 0, 512, pos) < 512 || header[0] === 0) return;
      const name = header.toString("utf8", 0, 100).replace(/\0.*$/s, "");
      const size = Number.parseInt(header.toString("ascii", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
      pos += 512;
      if (header[156] === 0x30 || header[156] === 0) {
        const data = Buffer.alloc(size);
        readSync(fd, data, 0, size, pos);
        yield { name, data };
      }
      pos += size + ((512 - (size % 512)) % 512);
    }
  } finally {
    closeSync(fd);
  }
}

async function upload(host, repo, data) {
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  const head = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  if (head.status === 200) return digest;
  const start = await fetch(`http://${host}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`registry upload start: ${start.status}`);
  const loc = new URL(start.headers.get("location"), `http://${host}`);
  loc.searchParams.set("digest", digest);
  const put = await fetch(loc, { method: "PUT", body: data, headers: { "content-type": "application/octet-stream" } });
  if (put.status !== 201) throw new Error(`registry upload: ${put.status}`);
  return digest;
}

const pushed = new Map();
/** Uploads an archive's image to the registry as `bench/<name>:latest`; resolves { name (the ref), blobs }. */
export function pushArchive(archiveP, repoName) {
  let p = pushed.get(repoName);
  if (p === undefined) {
    p = (async () => {
      const [host, archive] = await Promise.all([registry(), archiveP]);
      const repo = `bench/${repoName}`;
      const blobs = new Map();
      let index;
      for (const e of tarEntries(archive.path)) {
        if (e.name.startsWith("blobs/sha256/")) blobs.set(`sha256:${e.name.slice(13)}`, e.data);
        else if (e.name === "index.json") index = JSON.parse(e.data.toString());
      }
      const manifestDesc = index.manifests[0];
      const manifest = blobs.get(manifestDesc.digest);
      for (const [digest, data] of blobs) if (digest !== manifestDesc.digest) await upload(host, repo, data);
      const ref = `${host}/${repo}:latest`;
      const put = await fetch(`http://${host}/v2/${repo}/manifests/latest`, {
        method: "PUT",
        body: manifest,
        headers: { "content-type": manifestDesc.mediaType },
      });
      if (put.status !== 201) throw new Error(`registry manifest put: ${put.status}`);
      return { name: ref, blobs: archive.blobs };
    })();
    pushed.set(repoName, p);
  }
  return p;
}

/** Removes the images and waits until their blobs and every snapshot are collected. */
async function clean(d, ...images) {
  // Other scenarios on the shared daemon may have left images with the same layers (busybox): remove every
  // image first, or the blobs this scenario waits for would never be collected.
  const ls = await run("ctr", ["-a", d.sock, "images", "ls", "-q"], { timeoutMs: 30_000 });
  for (const name of ls.stdout.split("\n").filter(Boolean)) {
    await run("ctr", ["-a", d.sock, "images", "rm", "--sync", name], { timeoutMs: 60_000 });
  }
  for (const image of images) await removeImage(d, image);
  await waitFor(
    async () => {
      const r = await run("ctr", ["-a", d.sock, "snapshots", "ls"], { timeoutMs: 30_000 });
      return r.code === 0 && r.stdout.trim().split("\n").length <= 1;
    },
    { timeoutMs: 60_000, intervalMs: 50, what: `${d.kind} to collect the snapshots` },
  );
  await syncDisks();
}

const ctrPull = (d, image) =>
  timed("ctr", ["-a", d.sock, "images", "pull", "--plain-http", image.name], { discardStdout: true });

async function berthPull(d, image, ...flags) {
  const t0 = performance.now();
  const r = await runOk(
    process.execPath,
    [BERTH_CLI, "-a", d.sock, "images", "pull", "--plain-http", "--no-progress", ...flags, image.name],
    {
      timeoutMs: 600_000,
    },
  );
  const ms = performance.now() - t0;
  if (!/layers applied/.test(r.stdout) || /\(0 layers applied\)/.test(r.stdout)) {
    throw new Error(`berth images pull did not unpack:\n${r.stdout}`);
  }
  return ms;
}

export default {
  name: "pull-registry",
  title: "pull from a local docker-registry, with unpack: busybox and the large image",
  repeats: 3,
  warmup: 1,
  metrics: [
    {
      key: "busybox_ctr_ms",
      label: "`ctr images pull --plain-http` busybox (unpack included)",
      unit: "ms",
      better: "lower",
    },
    {
      key: "large_ctr_ms",
      label: "`ctr images pull --plain-http` large ~180 MiB (unpack included)",
      unit: "ms",
      better: "lower",
    },
    {
      key: "busybox_cli_ms",
      label: "`berth images pull --plain-http` busybox (containerd: ctr)",
      unit: "ms",
      better: "lower",
    },
    {
      key: "large_cli_ms",
      label: "`berth images pull --plain-http` large ~180 MiB (containerd: ctr)",
      unit: "ms",
      better: "lower",
      target: { max: 0.8 },
    },
    {
      key: "large_cli_local_ms",
      label: "`berth images pull --local --plain-http` large ~180 MiB, client-side (containerd: ctr)",
      unit: "ms",
      better: "lower",
    },
  ],
  async sample(target) {
    const [d, busybox, large] = await Promise.all([
      target.shared(),
      pushArchive(busyboxArchive(), "busybox"),
      pushArchive(largeArchive(), "large"),
    ]);
    const out = {};
    await clean(d, busybox, large);
    out.busybox_ctr_ms = await ctrPull(d, busybox);
    await clean(d, busybox, large);
    out.large_ctr_ms = await ctrPull(d, large);
    if (d.kind !== "berth") {
      return {
        ...out,
        busybox_cli_ms: out.busybox_ctr_ms,
        large_cli_ms: out.large_ctr_ms,
        large_cli_local_ms: out.large_ctr_ms,
      };
    }
    await clean(d, busybox, large);
    out.busybox_cli_ms = await berthPull(d, busybox);
    await clean(d, busybox, large);
    out.large_cli_ms = await berthPull(d, large);
    await clean(d, busybox, large);
    out.large_cli_local_ms = await berthPull(d, large, "--local");
    return out;
  },
};
