/**
 * berthd with Berth's shim (io.containerd.berth.v2, one shared server per daemon and namespace) across a
 * `kill -9` of berthd, driven by the real ctr: the running containers are re-attached, can be killed with their
 * exit statuses reported, one that exited while berthd was down reports its real status, and once everything
 * is removed the shared server exits after its idle linger, leaving no process, socket, mount, bundle or fifo.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { busyboxSkipReason } from "../src/busybox.js";
import {
  type Berthd,
  REPO_ROOT,
  ctr,
  ctrWith,
  runCommand,
  skipReason,
  startBerthd,
  stopAll,
  tempDir,
  waitUntil,
} from "../src/harness.js";

const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
const RUNTIME = "io.containerd.berth.v2";
const IMAGE = "docker.io/library/busybox:run";
const NS = "restart";
const LINGER_MS = 400;

const reason =
  skipReason() ??
  busyboxSkipReason() ??
  (existsSync(join(SHIM_DIR, "containerd-shim-berth-v2")) ? undefined : "Berth's shim is not built");

/** A process's state letter from /proc (R, S, Z …), or "gone". */
function processState(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] ?? "gone";
  } catch {
    return "gone";
  }
}

const mountsUnder = (dir: string): string[] =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((p) => p.startsWith(dir));

/** ctr's fifos (under /run/containerd/fifo/<set>/) that belong to a container id. */
function fifosOf(id: string): string[] {
  const root = "/run/containerd/fifo";
  let sets: string[];
  try {
    sets = readdirSync(root);
  } catch {
    return [];
  }
  return sets.flatMap((set) => {
    try {
      return readdirSync(join(root, set))
        .filter((f) => f.startsWith(`${id}-`))
        .map((f) => join(root, set, f));
    } catch {
      return [];
    }
  });
}

async function taskStatus(socket: string): Promise<Map<string, string>> {
  const ls = await ctr(socket, "-n", NS, "tasks", "ls");
  expect(ls.code, ls.stderr).toBe(0);
  const out = new Map<string, string>();
  for (const line of ls.stdout.trim().split("\n").slice(1)) {
    const [id, , status] = line.trim().split(/\s+/);
    if (id && status) out.set(id, status);
  }
  return out;
}

describe.skipIf(reason !== undefined)(
  reason ? `berthd restart with Berth's shim (skipped: ${reason})` : "berthd restart with Berth's shim",
  () => {
    let berthd: Berthd;
    let savedPath: string | undefined;
    const serverPids = new Set<number>();

    beforeAll(async () => {
      savedPath = process.env.PATH;
      process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;
      process.env.BERTH_SHIM_LINGER_MS = String(LINGER_MS);
      const dir = await tempDir();
      berthd = await startBerthd();
      const archive = join(dir, "busybox.tar");
      const built = await runCommand(process.execPath, [
        join(REPO_ROOT, "scripts/build-busybox-image.mjs"),
        archive,
        IMAGE,
      ]);
      expect(built.code, built.stderr).toBe(0);
      const imp = await ctrWith(berthd.socket, ["-n", NS, "images", "import", archive], { timeoutMs: 60_000 });
      expect(imp.code, imp.stderr).toBe(0);
    }, 90_000);

    afterAll(async () => {
      // whatever a failed test left running is removed through berthd, so the shared server can go
      if (berthd !== undefined && berthd.process.exitCode === null && berthd.process.signalCode === null) {
        const ls = await ctr(berthd.socket, "-n", NS, "tasks", "ls", "-q");
        for (const id of ls.stdout.split("\n").filter(Boolean)) {
          await ctr(berthd.socket, "-n", NS, "tasks", "kill", "-a", "-s", "SIGKILL", id);
          await ctr(berthd.socket, "-n", NS, "tasks", "rm", "-f", id);
        }
        const cs = await ctr(berthd.socket, "-n", NS, "containers", "ls", "-q");
        for (const id of cs.stdout.split("\n").filter(Boolean))
          await ctr(berthd.socket, "-n", NS, "containers", "rm", id);
      }
      await new Promise((r) => setTimeout(r, LINGER_MS + 1000));
      for (const pid of serverPids) if (processState(pid) !== "gone") process.kill(pid, "SIGKILL");
      await stopAll();
      process.env.PATH = savedPath;
      delete process.env.BERTH_SHIM_LINGER_MS;
    }, 60_000);

    test("kill -9 berthd with 10 containers running: all re-attached, killable, exit statuses reported", async () => {
      const s = berthd.socket;
      const ids = Array.from({ length: 10 }, (_, i) => `b${i}`);
      await Promise.all(
        ids.map(async (id) => {
          const r = await ctrWith(s, ["-n", NS, "run", "-d", "--runtime", RUNTIME, IMAGE, id, "sleep", "1000"], {
            timeoutMs: 60_000,
          });
          expect(r.code, r.stderr).toBe(0);
        }),
      );
      // one more that exits with 5 while berthd is down
      const early = await ctrWith(
        s,
        ["-n", NS, "run", "-d", "--runtime", RUNTIME, IMAGE, "early", "sh", "-c", "sleep 1; exit 5"],
        { timeoutMs: 30_000 },
      );
      expect(early.code, early.stderr).toBe(0);
      const state = join(berthd.state, "io.containerd.runtime.v2.task", NS);
      const bundleFile = (id: string, name: string) => readFileSync(join(state, id, name), "utf8").trim();
      // one shared server serves them all
      const servers = new Set([...ids, "early"].map((id) => Number(bundleFile(id, "shim.pid"))));
      expect(servers.size).toBe(1);
      const [server] = servers as Set<number>;
      serverPids.add(server as number);
      const socket = bundleFile("early", "address").replace("unix://", "");
      expect(existsSync(socket)).toBe(true);

      await berthd.kill9();
      await new Promise((r) => setTimeout(r, 2000)); // "early" exits meanwhile
      expect(processState(server as number)).not.toBe("gone"); // the shim outlives the daemon
      await berthd.restart();

      const status = await taskStatus(s);
      for (const id of ids) expect(status.get(id), id).toBe("RUNNING");
      expect(status.get("early")).toBe("STOPPED");
      const earlyRm = await ctr(s, "-n", NS, "tasks", "rm", "early");
      expect(earlyRm.code, earlyRm.stderr).toBe(0);
      expect(earlyRm.stderr).toContain("exit code 5");

      for (const id of ids) expect((await ctr(s, "-n", NS, "tasks", "kill", "-s", "SIGKILL", id)).code).toBe(0);
      await waitUntil("all stopped", async () => {
        const st = await taskStatus(s);
        return ids.every((id) => st.get(id) === "STOPPED") ? true : undefined;
      });
      for (const id of ids) {
        const rm = await ctr(s, "-n", NS, "tasks", "rm", id);
        expect(rm.code, rm.stderr).toBe(0);
        expect(rm.stderr).toContain("exit code 137");
      }
      for (const id of [...ids, "early"]) {
        const rm = await ctr(s, "-n", NS, "containers", "rm", id);
        expect(rm.code, rm.stderr).toBe(0);
      }

      // the shared server exits after its idle linger; then nothing is left behind
      await waitUntil("shared shim server gone", () =>
        /^(gone|Z)$/.test(processState(server as number)) ? true : undefined,
      );
      expect(existsSync(socket)).toBe(false);
      expect(mountsUnder(berthd.dir)).toEqual([]);
      expect(readdirSync(state)).toEqual([]);
      for (const id of [...ids, "early"]) expect(fifosOf(id)).toEqual([]);
    }, 150_000);
  },
);
