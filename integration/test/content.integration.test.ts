/**
 * The content store as a user of the real `ctr` (and of raw gRPC) sees it, on berthd and on a private real
 * containerd 1.6: ingest, list, get, label, remove, active ingests, garbage collection of unreferenced blobs,
 * hostile requests. Where containerd is running, berthd must answer as it does.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, existsSync, readdirSync, statSync } from "node:fs";
import { open, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Content, WriteAction } from "@berth/api/services/content/v1";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { useDaemonPair } from "../src/daemon-pair.js";
import {
  WriteSession,
  berthWith,
  containerdSkipReason,
  contentDigests,
  ctr,
  ctrWith,
  grpcIngest,
  hashStdout,
  CTR_BIN,
  sha256,
  skipReason,
  sleep,
  spawnCtrFed,
  spawnCtrFromFile,
  startBerthd,
  stopAll,
  stopClients,
  tempDir,
  triggerGc,
  waitGone,
  waitUntil,
  withClient,
} from "../src/harness.js";

const reason = containerdSkipReason();

/** The gRPC code name of a call's failure, or "OK". */
async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return Code[ConnectError.from(err).code];
  }
}

/** Drains a server stream. */
async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** `ctr content ls` rows as [digest, size, labels as a sorted list]; AGE is left out (it ticks). */
function contentRows(stdout: string): [string, string, string[]][] {
  const [header, ...rows] = stdout.split("\n").filter((l) => l !== "");
  expect(header?.split(/\t+/)).toEqual(["DIGEST", "SIZE", "AGE", "LABELS"]);
  return rows.map((row) => {
    const cols = row.split(/\t+/);
    const labels = cols[cols.length - 1] ?? "";
    return [cols[0] ?? "", cols[1] ?? "", labels === "-" ? [] : labels.split(",").sort()];
  });
}

/** The set of labels ctr prints after `content label` (Go prints them in random map order). */
const labelSet = (stdout: string): string[] => stdout.trim().split(",").filter(Boolean).sort();

describe.skipIf(reason !== undefined)(
  reason ? `content with ctr (skipped: ${reason})` : "content with ctr on berthd and containerd",
  () => {
    const pair = useDaemonPair();
    const daemons = () => pair.daemons();

    /** A file in the test's temp dir with these bytes. */
    async function file(name: string, data: Uint8Array): Promise<string> {
      const path = join(pair.dir, name);
      await writeFile(path, data);
      return path;
    }

    test("ctr content ingest with expected digest and size accepts 6 B and 3 MiB; an unleased blob lasts until the next collection", async () => {
      const six = Buffer.from("hello\n");
      const three = randomBytes(3 << 20);
      const files = [
        { path: await file("six", six), digest: sha256(six), size: six.length, human: "6B" },
        { path: await file("three", three), digest: sha256(three), size: three.length, human: "3.146MB" },
      ];
      const listings: Record<string, unknown> = {};
      for (const [name, socket] of daemons()) {
        for (const f of files) {
          const res = await ctrWith(
            socket,
            ["content", "ingest", "--expected-digest", f.digest, "--expected-size", String(f.size), `ingest-${f.size}`],
            { stdinFile: f.path },
          );
          expect({ name, code: res.code, stderr: res.stderr }).toEqual({ name, code: 0, stderr: "" });
          // ctr 1.6 ingests without a lease: committed and listed right away
          expect(await contentDigests(socket)).toContain(f.digest);
        }
        const ls = await ctr(socket, "content", "ls");
        const rows = contentRows(ls.stdout).filter(([d]) => files.some((f) => f.digest === d));
        expect(rows).toEqual(
          files.map((f) => [f.digest, f.human, []]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
        );
        listings[name] = rows;
        const got = await hashStdout(CTR_BIN, ["-a", socket, "content", "get", files[1]?.digest ?? ""]);
        expect({ code: got.code, digest: got.digest, size: got.size }).toEqual({
          code: 0,
          digest: files[1]?.digest,
          size: three.length,
        });
      }
      expect(listings.berthd).toEqual(listings.containerd);

      // Nothing holds these blobs: the collection a deletion schedules removes them, on both daemons.
      for (const [name, socket] of daemons()) {
        await triggerGc(socket);
        for (const f of files) {
          await expect(waitGone(socket, f.digest), `${name}: ${f.digest}`).resolves.toBeLessThan(10_000);
        }
      }
    });

    test("a wrong expected digest fails with failed precondition and commits nothing", async () => {
      const data = Buffer.from("not what you expected\n");
      const path = await file("wrong", data);
      const wrong = sha256("something else");
      const results: Record<string, { code: number; stderr: string }> = {};
      for (const [name, socket] of daemons()) {
        const before = await contentDigests(socket);
        const res = await ctrWith(
          socket,
          ["content", "ingest", "--expected-digest", wrong, "--expected-size", String(data.length), "wrong-ref"],
          { stdinFile: path },
        );
        expect(res.code, name).not.toBe(0);
        expect(res.stderr, name).toMatch(/failed precondition/);
        expect(res.stderr, name).toContain(`unexpected commit digest ${sha256(data)}, expected ${wrong}`);
        expect(await contentDigests(socket), name).toEqual(before);
        expect(await contentDigests(socket), name).not.toContain(sha256(data));
        results[name] = { code: res.code, stderr: res.stderr };

        // a size that does not match fails too, and commits nothing
        const short = await ctrWith(
          socket,
          ["content", "ingest", "--expected-digest", sha256(data), "--expected-size", String(data.length + 1), "short"],
          { stdinFile: path },
        );
        expect(short.code, name).not.toBe(0);
        expect(await contentDigests(socket), name).toEqual(before);
        results[`${name} size`] = { code: short.code, stderr: short.stderr };
      }
      expect(results.berthd).toEqual(results.containerd);
      expect(results["berthd size"]?.code).toBe(results["containerd size"]?.code);
    });

    test("a blob ingested with a gc.root label survives collections; ls, get, label, rm and ingest again work as in containerd", async () => {
      const data = randomBytes(64 << 10);
      const path = await file("rooted", data);
      const digest = sha256(data);
      const loose = Buffer.from(`loose ${Date.now()}\n`);
      const loosePath = await file("loose", loose);
      const seen: Record<string, unknown[]> = {};
      for (const [name, socket] of daemons()) {
        const out: unknown[] = [];
        seen[name] = out;
        const ing = await berthWith(socket, ["content", "ingest", "--label", "containerd.io/gc.root=x", "rooted"], {
          stdinFile: path,
        });
        expect({ name, code: ing.code, stderr: ing.stderr }).toEqual({ name, code: 0, stderr: "" });

        // a collection runs (the unreferenced blob goes), the rooted one stays
        const res = await ctrWith(socket, ["content", "ingest", "loose"], { stdinFile: loosePath });
        expect(res.code, res.stderr).toBe(0);
        await triggerGc(socket);
        await waitGone(socket, sha256(loose));
        const rows = contentRows((await ctr(socket, "content", "ls")).stdout).filter(([d]) => d === digest);
        expect(rows, name).toEqual([[digest, "65.54kB", ["containerd.io/gc.root=x"]]]);

        const got = await hashStdout(CTR_BIN, ["-a", socket, "content", "get", digest]);
        expect({ code: got.code, digest: got.digest, size: got.size }).toEqual({ code: 0, digest, size: data.length });

        const label = await ctr(socket, "content", "label", digest, "k=v", "other=1");
        expect(label.code, label.stderr).toBe(0);
        expect(labelSet(label.stdout)).toEqual(["containerd.io/gc.root=x", "k=v", "other=1"]);
        const unlabel = await ctr(socket, "content", "label", digest, "other=");
        expect(labelSet(unlabel.stdout)).toEqual(["containerd.io/gc.root=x", "k=v"]);
        const after = contentRows((await ctr(socket, "content", "ls")).stdout).filter(([d]) => d === digest);
        expect(after).toEqual([[digest, "65.54kB", ["containerd.io/gc.root=x", "k=v"]]]);

        const rm = await ctr(socket, "content", "rm", digest);
        out.push({ rm: [rm.code, rm.stdout, rm.stderr] });
        expect(rm.code).toBe(0);
        expect(await contentDigests(socket)).not.toContain(digest);
        const rmAgain = await ctr(socket, "content", "rm", digest);
        out.push({ rmAgain: [rmAgain.code, rmAgain.stdout, rmAgain.stderr] });

        const again = await ctrWith(
          socket,
          ["content", "ingest", "--expected-digest", digest, "--expected-size", String(data.length), "rooted-again"],
          { stdinFile: path },
        );
        expect({ name, code: again.code, stderr: again.stderr }).toEqual({ name, code: 0, stderr: "" });
        const missing = await ctr(socket, "content", "get", sha256("never ingested"));
        out.push({ getMissing: [missing.code, missing.stderr] });
        const badLabel = await ctr(socket, "content", "label", sha256("never ingested"), "a=b");
        out.push({ labelMissing: [badLabel.code, badLabel.stderr] });
      }
      expect(seen.berthd).toEqual(seen.containerd);
    });

    test("ctr content active shows an ingest in progress with its offset", async () => {
      // ctr sends what it reads in 1 MiB pieces (it fills its copy buffer): 2.5 MiB in, 2 MiB written
      const data = randomBytes(4 << 20);
      const digest = sha256(data);
      const fed = (5 << 20) / 2;
      const seen: Record<string, unknown> = {};
      for (const [name, socket] of daemons()) {
        const feeding = spawnCtrFed(
          socket,
          "content",
          "ingest",
          "--expected-digest",
          digest,
          "--expected-size",
          String(data.length),
          "in-progress",
        );
        feeding.stdin.write(data.subarray(0, fed));
        const status = await waitUntil(`${name}: the ingest at offset 2 MiB`, () =>
          withClient(
            socket,
            Content,
            async (c) => {
              const { statuses } = await c.listStatuses({ filters: ["ref==in-progress"] });
              const s = statuses[0];
              return s !== undefined && s.offset === BigInt(2 << 20) ? s : undefined;
            },
            { namespace: "default" },
          ),
        );
        const active = await ctr(socket, "content", "active");
        expect(active.code, active.stderr).toBe(0);
        const lines = active.stdout.split("\n").filter(Boolean);
        expect(lines[0]?.split(/\t+/).filter(Boolean)).toEqual(["REF", "SIZE", "AGE"]);
        const row = lines.find((l) => l.startsWith("in-progress\t"))?.split(/\t+/);
        expect(row?.slice(0, 2), name).toEqual(["in-progress", "2.097MB"]);
        // the ingest is not content yet
        expect(await contentDigests(socket)).not.toContain(digest);
        // Known difference: containerd 1.6 leaves Status.expected empty; berthd reports the expected digest.
        expect(status.expected === "" || status.expected === digest, name).toBe(true);
        seen[name] = { ref: status.ref, offset: status.offset, total: status.total, row: row?.slice(0, 2) };

        feeding.stdin.end(data.subarray(fed));
        expect(await feeding.exited(20_000)).toEqual({ code: 0, signal: null });
        expect(await contentDigests(socket)).toContain(digest);
        const done = await ctr(socket, "content", "active");
        expect(done.stdout).not.toMatch(/in-progress/);
      }
      expect(seen.berthd).toEqual(seen.containerd);
    });

    test("blobs reachable from a gc.root through gc.ref.content labels survive a collection; an unreferenced one does not", async () => {
      const [a, b, c, d] = [0, 1, 2, 3].map((i) => Buffer.from(`chain ${i} ${Date.now()}\n`));
      const [da, db, dc, dd] = [a, b, c, d].map((x) => sha256(x as Buffer)) as [string, string, string, string];
      const paths = await Promise.all([a, b, c, d].map((x, i) => file(`chain-${i}`, x as Buffer)));
      for (const [name, socket] of daemons()) {
        // top-down, so that each blob is referenced from the moment it is committed
        const steps: [string, string[]][] = [
          [paths[0] as string, ["containerd.io/gc.root=x", `containerd.io/gc.ref.content.l0=${db}`]],
          [paths[1] as string, [`containerd.io/gc.ref.content.m.0=${dc}`, "unrelated=1"]],
          [paths[2] as string, []],
        ];
        for (const [i, [path, labels]] of steps.entries()) {
          const res = await berthWith(
            socket,
            ["content", "ingest", ...labels.flatMap((l) => ["--label", l]), `chain-${i}`],
            { stdinFile: path },
          );
          expect({ name, i, code: res.code, stderr: res.stderr }).toEqual({ name, i, code: 0, stderr: "" });
        }
        const res = await ctrWith(socket, ["content", "ingest", "chain-loose"], { stdinFile: paths[3] as string });
        expect(res.code, res.stderr).toBe(0);
        // (the loose blob may already be gone: the lease each `berth content ingest` drops schedules a collection)
        expect(await contentDigests(socket)).toEqual(expect.arrayContaining([da, db, dc]));
        await triggerGc(socket);
        await waitGone(socket, dd);
        expect(await contentDigests(socket), name).toEqual(expect.arrayContaining([da, db, dc]));

        // cutting the chain in the middle frees the rest at the next collection
        const cut = await ctr(socket, "content", "label", db, `containerd.io/gc.ref.content.m.0=`);
        expect(cut.code, cut.stderr).toBe(0);
        await triggerGc(socket);
        await waitGone(socket, dc);
        expect(await contentDigests(socket), name).toEqual(expect.arrayContaining([da, db]));
        // clean up for the other tests
        await ctr(socket, "content", "rm", da, db);
      }
    });

    describe("hostile requests over gRPC get containerd's codes", () => {
      const unknown = sha256("no such blob");

      test("bad digests, unknown digests, a missing namespace, reads past the end", async () => {
        const results: Record<string, Record<string, string>> = {};
        for (const [name, socket] of daemons()) {
          const data = Buffer.from(`readable ${Date.now()}\n`);
          const digest = await grpcIngest(socket, {
            ref: "hostile-read",
            data,
            labels: { "containerd.io/gc.root": "x" },
          });
          const r: Record<string, string> = {};
          await withClient(
            socket,
            Content,
            async (cl) => {
              for (const bad of [
                "sha256:zz",
                "sha256:abcd",
                `md5:${"0".repeat(32)}`,
                `foo:${"0".repeat(64)}`,
                "",
                "sha256",
              ]) {
                r[`info ${bad}`] = await codeOf(cl.info({ digest: bad }));
                r[`delete ${bad}`] = await codeOf(cl.delete({ digest: bad }));
                r[`read ${bad}`] = await codeOf(drain(cl.read({ digest: bad })));
              }
              r["info unknown"] = await codeOf(cl.info({ digest: unknown }));
              r["delete unknown"] = await codeOf(cl.delete({ digest: unknown }));
              r["read unknown"] = await codeOf(drain(cl.read({ digest: unknown })));
              r["update unknown"] = await codeOf(cl.update({ info: { digest: unknown, labels: { a: "b" } } }));
              r["status unknown"] = await codeOf(cl.status({ ref: "no-such-ref" }));
              r["abort unknown"] = await codeOf(cl.abort({ ref: "no-such-ref" }));
              const size = BigInt(data.length);
              r["read at end"] = await codeOf(drain(cl.read({ digest, offset: size })));
              r["read past end"] = await codeOf(drain(cl.read({ digest, offset: size + 1n })));
              r["read far past end"] = await codeOf(drain(cl.read({ digest, offset: 1n << 40n })));
              r["read negative offset"] = await codeOf(drain(cl.read({ digest, offset: -1n })));
              const tail = await drain(cl.read({ digest, offset: 3n, size: 2n }));
              r["read 2 at 3"] = Buffer.concat(tail.map((m) => m.data)).toString();
              r["update bad field"] = await codeOf(
                cl.update({ info: { digest, labels: {} }, updateMask: { paths: ["size"] } }),
              );
            },
            { namespace: "default" },
          );
          await withClient(socket, Content, async (cl) => {
            r["info without namespace"] = await codeOf(cl.info({ digest }));
            r["list without namespace"] = await codeOf(drain(cl.list({})));
            r["status without namespace"] = await codeOf(cl.listStatuses({}));
          });
          results[name] = r;
          expect((await ctr(socket, "content", "rm", digest)).code).toBe(0);
        }
        const b = results.berthd ?? {};
        expect(b["info sha256:zz"]).toBe("InvalidArgument");
        expect(b["info sha256:abcd"]).toBe("InvalidArgument");
        expect(b[`info md5:${"0".repeat(32)}`]).toBe("InvalidArgument");
        expect(b["info unknown"]).toBe("NotFound");
        expect(b["abort unknown"]).toBe("NotFound");
        expect(b["read past end"]).toBe("OutOfRange");
        expect(b["info without namespace"]).toBe("FailedPrecondition");
        expect(b["read 2 at 3"]).toBe("da");
        expect(results.berthd).toEqual(results.containerd);
      });

      test("a namespace sees only its own blobs", async () => {
        const results: Record<string, unknown> = {};
        const data = Buffer.from(`namespaced ${Date.now()}\n`);
        for (const [name, socket] of daemons()) {
          const digest = await grpcIngest(socket, {
            namespace: "iso-a",
            ref: "iso",
            data,
            labels: { "containerd.io/gc.root": "x" },
          });
          const inB = (p: (cl: import("@connectrpc/connect").Client<typeof Content>) => Promise<unknown>) =>
            withClient(socket, Content, (cl) => codeOf(p(cl)), { namespace: "iso-b" });
          const r = {
            listB: await contentDigests(socket, "iso-b"),
            infoB: await inB((cl) => cl.info({ digest })),
            readB: await inB((cl) => drain(cl.read({ digest }))),
            updateB: await inB((cl) => cl.update({ info: { digest, labels: { a: "b" } } })),
            deleteB: await inB((cl) => cl.delete({ digest })),
            ctrGetB: (await ctr(socket, "-n", "iso-b", "content", "get", digest)).code,
            listA: await contentDigests(socket, "iso-a"),
            activeB: (await ctr(socket, "-n", "iso-b", "content", "active")).stdout,
          };
          expect(r.listB, name).not.toContain(digest);
          expect(r.listA, name).toContain(digest);
          results[name] = r;
          expect((await ctr(socket, "-n", "iso-a", "content", "rm", digest)).code).toBe(0);
        }
        expect(results.berthd).toMatchObject({ infoB: "NotFound", readB: "NotFound", deleteB: "NotFound" });
        expect(results.berthd).toEqual(results.containerd);
      });

      test("refs with ../ or of great length stay inside the ingest directory", async () => {
        const refs = ["../../../../../../escape", "a/../../b", "/abs/path", `long-${"x".repeat(16_000)}`, "..", "."];
        const results: Record<string, Record<string, string>> = {};
        for (const [name, socket] of daemons()) {
          const r: Record<string, string> = {};
          for (const ref of refs) {
            const key = ref.length > 40 ? `${ref.slice(0, 10)}…(${ref.length})` : ref;
            const session = new WriteSession(socket);
            try {
              await session.call({ action: WriteAction.STAT, ref });
              const res = await session.call({ action: WriteAction.WRITE, offset: 0n, data: Buffer.from("partial") });
              r[`write ${key}`] = `OK ${res.offset}`;
              await session.close();
            } catch (err) {
              session.abort();
              r[`write ${key}`] = Code[ConnectError.from(err).code];
            }
            r[`status ${key}`] = await withClient(
              socket,
              Content,
              async (cl) => {
                try {
                  const { status } = await cl.status({ ref });
                  return `OK ${status?.ref === ref} ${status?.offset}`;
                } catch (err) {
                  return Code[ConnectError.from(err).code];
                }
              },
              { namespace: "default" },
            );
            r[`abort ${key}`] = await withClient(socket, Content, (cl) => codeOf(cl.abort({ ref })), {
              namespace: "default",
            });
          }
          results[name] = r;
        }
        expect(results.berthd?.["write ../../../../../../escape"]).toBe("OK 7");
        expect(results.berthd).toEqual(results.containerd);

        // every ingest directory berthd made is named by a hash, and nothing escaped its root
        const ingestRoot = join(pair.berthd.root, "io.containerd.content.v1.content", "ingest");
        for (const ref of refs) expect(existsSync(resolve(ingestRoot, ref)) && ref !== ".." && ref !== ".").toBe(false);
        expect(existsSync(resolve(ingestRoot, "../../../../../../escape"))).toBe(false);
        expect(readdirSync(pair.berthd.dir).sort()).toEqual(
          ["berthd.sock", "berthd.sock.ttrpc", "root", "state"]
            .filter((f) => existsSync(join(pair.berthd.dir, f)))
            .sort(),
        );
        for (const entry of readdirSync(ingestRoot)) expect(entry).toMatch(/^[0-9a-f]{64}$/);
      });

      test("two writers on one ref: the second gets Unavailable until the first ends", async () => {
        const results: Record<string, Record<string, string>> = {};
        for (const [name, socket] of daemons()) {
          const r: Record<string, string> = {};
          const first = new WriteSession(socket);
          const second = new WriteSession(socket);
          try {
            const stat = await first.call({ action: WriteAction.STAT, ref: "contended" });
            r.first = `OK ${stat.offset}`;
            await first.call({ action: WriteAction.WRITE, offset: 0n, data: Buffer.from("abc") });
            r.second = await codeOf(second.call({ action: WriteAction.STAT, ref: "contended" }));
            second.abort();
            r.statusWhileLocked = await withClient(
              socket,
              Content,
              async (cl) => String((await cl.status({ ref: "contended" })).status?.offset),
              { namespace: "default" },
            );
            await first.close();
            const third = new WriteSession(socket);
            try {
              const again = await third.call({ action: WriteAction.STAT, ref: "contended" });
              r.afterRelease = `OK ${again.offset}`;
              // the writer is released when the stream ends (half-close, then the server's end of stream)
              await third.close();
              const noRef = new WriteSession(socket);
              r.missingRef = await codeOf(noRef.call({ action: WriteAction.STAT, ref: "" }));
              noRef.abort();
            } finally {
              third.abort();
            }
            r.abort = await withClient(socket, Content, (cl) => codeOf(cl.abort({ ref: "contended" })), {
              namespace: "default",
            });
          } finally {
            first.abort();
            second.abort();
          }
          results[name] = r;
        }
        expect(results.berthd).toMatchObject({ first: "OK 0", second: "Unavailable", afterRelease: "OK 3" });
        expect(results.berthd).toEqual(results.containerd);
      });
    });
  },
);

const bigReason = skipReason();

/** A GiB of incompressible bytes (a random 4 MiB block, each copy numbered) and its digest. */
async function writeBigFile(path: string, size: number): Promise<string> {
  const block = randomBytes(4 << 20);
  const hash = createHash("sha256");
  const fh = await open(path, "w");
  try {
    for (let pos = 0, i = 0; pos < size; pos += block.length, i++) {
      block.writeBigUInt64LE(BigInt(i), 0);
      const piece = block.subarray(0, Math.min(block.length, size - pos));
      hash.update(piece);
      await fh.write(piece, 0, piece.length, pos);
    }
  } finally {
    await fh.close();
  }
  return `sha256:${hash.digest("hex")}`;
}

/** The offset of an ingest as Content.Status reports it, or undefined when there is no such ingest. */
async function ingestOffset(socket: string, ref: string): Promise<number | undefined> {
  return withClient(
    socket,
    Content,
    async (cl) => {
      try {
        return Number((await cl.status({ ref })).status?.offset ?? 0n);
      } catch (err) {
        if (ConnectError.from(err).code === Code.NotFound) return undefined;
        throw err;
      }
    },
    { namespace: "default" },
  );
}

/** sha256 of a file, read in large pieces. */
async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

describe.skipIf(bigReason !== undefined)(
  bigReason ? `1 GiB ingests (skipped: ${bigReason})` : "1 GiB ingests into berthd with ctr",
  () => {
    const SIZE = 1 << 30;
    let dir: string;
    let big: { path: string; digest: string };

    beforeAll(async () => {
      dir = await tempDir("berth-e2e-big-");
      const path = join(dir, "gib");
      big = { path, digest: await writeBigFile(path, SIZE) };
    });
    afterEach(stopClients);
    afterAll(async () => {
      await rm(join(dir, "gib"), { force: true });
      await stopAll();
    });

    const ingestArgs = (ref: string) => [
      "content",
      "ingest",
      "--expected-digest",
      big.digest,
      "--expected-size",
      String(SIZE),
      ref,
    ];

    test("ctr content ingest accepts 1 GiB", async () => {
      const d = await startBerthd();
      try {
        const res = await ctrWith(d.socket, ingestArgs("gib"), { stdinFile: big.path, timeoutMs: 180_000 });
        expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: "" });
        const rows = contentRows((await ctr(d.socket, "content", "ls")).stdout);
        expect(rows).toEqual([[big.digest, "1.074GB", []]]);
        const blob = join(d.root, "io.containerd.content.v1.content", "blobs", "sha256", big.digest.slice(7));
        expect(statSync(blob).size).toBe(SIZE);
      } finally {
        await d.stop();
      }
    });

    test("kill -9 of berthd mid-ingest: after a restart the same ref resumes from the stored offset, and no partial blob is ever listed", async () => {
      const d = await startBerthd();
      const ref = "gib-resume";
      // What `ctr content ls` shows while all this happens (nothing but the whole blob, once committed).
      const listed = new Set<string>();
      let polling = true;
      const poller = (async () => {
        while (polling) {
          const ls = await ctr(d.socket, "content", "ls");
          if (ls.code === 0) for (const [digest, size] of contentRows(ls.stdout)) listed.add(`${digest} ${size}`);
          await sleep(100);
        }
      })();
      try {
        const first = spawnCtrFromFile(d.socket, big.path, ...ingestArgs(ref));
        const atKill = await waitUntil(
          "300 MiB ingested",
          async () => {
            const o = await ingestOffset(d.socket, ref);
            return o !== undefined && o >= 300 << 20 ? o : undefined;
          },
          90_000,
          20,
        );
        expect(await d.kill9()).toEqual({ code: null, signal: "SIGKILL" });
        const cut = await first.exited(20_000);
        expect(cut !== "timeout" && cut.code !== 0, first.stderr()).toBe(true);
        expect(listed.size).toBe(0);

        await d.restart();
        const stored = (await ingestOffset(d.socket, ref)) ?? 0;
        expect(stored).toBeGreaterThanOrEqual(atKill);
        expect(stored).toBeLessThan(SIZE);
        const active = await ctr(d.socket, "content", "active");
        const row = active.stdout.split("\n").find((l) => l.startsWith(`${ref}\t`));
        expect(row?.split(/\t+/)[1], active.stdout).toMatch(/^\d+(\.\d+)?MB$/);

        // Resume with the same ref: ctr asks for the status, seeks its input to the offset and sends the rest.
        let lowest = Number.POSITIVE_INFINITY;
        const resumed = spawnCtrFromFile(d.socket, big.path, ...ingestArgs(ref));
        let exit = await resumed.exited(0);
        while (exit === "timeout") {
          const o = await ingestOffset(d.socket, ref);
          if (o !== undefined) lowest = Math.min(lowest, o);
          exit = await resumed.exited(25);
        }
        expect({ exit, stderr: resumed.stderr() }).toEqual({ exit: { code: 0, signal: null }, stderr: "" });
        expect(lowest).toBeGreaterThanOrEqual(stored);

        polling = false;
        await poller;
        for (const entry of listed) expect(entry).toBe(`${big.digest} 1.074GB`);
        expect(contentRows((await ctr(d.socket, "content", "ls")).stdout)).toEqual([[big.digest, "1.074GB", []]]);
        expect((await ctr(d.socket, "content", "active")).stdout).not.toContain(ref);
        // the bytes on disk are the bytes sent (the daemon verified the digest at commit; check it once more)
        const blob = join(d.root, "io.containerd.content.v1.content", "blobs", "sha256", big.digest.slice(7));
        expect(await hashFile(blob)).toBe(big.digest);
        expect(readdirSync(join(d.root, "io.containerd.content.v1.content", "ingest"))).toEqual([]);
      } finally {
        polling = false;
        await poller;
        await d.stop();
      }
    });
  },
);
