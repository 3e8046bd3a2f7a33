import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import tar from "tar-stream";

export interface Entry {
  name: string;
  type?: "file" | "directory" | "symlink" | "link" | "character-device" | "block-device" | "fifo";
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** An uncompressed tar built with tar-stream. */
export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const out: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack) out.push(c as Buffer);
  })();
  for (const e of entries) {
    const body = Buffer.from(e.body ?? "");
    await new Promise<void>((resolve, reject) => {
      pack.entry(
        {
          name: e.name,
          type: e.type ?? "file",
          mode: e.mode ?? (e.type === "directory" ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime: e.mtime ?? new Date("2024-01-02T03:04:05Z"),
          linkname: e.linkname,
          devmajor: e.devmajor,
          devminor: e.devminor,
          pax: e.pax,
          size: body.length,
        } as Parameters<ReturnType<typeof tar.pack>["entry"]>[0],
        body,
        (err) => (err ? reject(err) : resolve()),
      );
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(out);
}

export const gzip = (b: Buffer) => zlib.gzipSync(b);
export const zstd = (b: Buffer) => execFileSync("zstd", ["-q", "-c"], { input: b });
export const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

/** Feeds a buffer in small chunks, as a network stream would. */
export async function* chunks(b: Buffer, size = 7919): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

export interface Sandbox {
  dir: string;
  root: string;
  sentinel: string;
  /** Everything under dir but root: names, types, modes, sizes, mtimes and contents. */
  outside(): string;
  cleanup(): void;
}

function describe(p: string, rel: string, out: string[]): void {
  const st = fs.lstatSync(p);
  let extra = "";
  if (st.isFile()) extra = createHash("sha256").update(fs.readFileSync(p)).digest("hex");
  else if (st.isSymbolicLink()) extra = fs.readlinkSync(p);
  out.push(`${rel} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.nlink} ${extra}`);
  if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) describe(path.join(p, n), `${rel}/${n}`, out);
}

/** A temp dir holding the apply root and, next to it, a sentinel dir that no layer may touch. */
export function sandbox(): Sandbox {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "berth-diff-"));
  const root = path.join(dir, "root");
  const sentinel = path.join(dir, "sentinel");
  fs.mkdirSync(root);
  fs.mkdirSync(path.join(sentinel, "sub"), { recursive: true });
  fs.writeFileSync(path.join(sentinel, "secret"), "do not touch\n");
  fs.writeFileSync(path.join(sentinel, "sub", "file"), "nor this\n");
  const outside = () => {
    const out: string[] = [];
    for (const n of fs.readdirSync(dir).sort()) if (n !== "root") describe(path.join(dir, n), n, out);
    return out.join("\n");
  };
  return { dir, root, sentinel, outside, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** A gzip stream of a tar holding one file of `size` zero bytes, produced lazily (never held in memory). */
export function gzipBomb(size: number): Readable {
  const pack = tar.pack();
  const entry = pack.entry({ name: "bomb", size, mode: 0o644, mtime: new Date(0) });
  const zeros = Buffer.alloc(1 << 20);
  void pipeline(
    Readable.from(
      (function* () {
        for (let left = size; left > 0; left -= zeros.length)
          yield left >= zeros.length ? zeros : zeros.subarray(0, left);
      })(),
    ),
    entry,
  )
    .then(() => pack.finalize())
    .catch(() => {});
  const gz = zlib.createGzip({ level: 9 });
  // the apply under test stops reading at its cap and closes gz: the pack side then reports a premature close
  pack.on("error", () => {});
  pack.pipe(gz);
  return gz;
}
