/**
 * OOM kills with Berth's shim, driven by the real ctr: a container over its memory limit is killed by the
 * kernel, `ctr events` shows `/tasks/oom` for it and the task exits 137. Under berthd and under a real
 * containerd 1.6.20, and (for comparison) containerd's own Go shim under containerd, which must agree.
 * This host runs runc with cgroup v1, so the shim watches `memory.oom_control` through an eventfd.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxSkipReason, writeOciArchive } from "../src/busybox.js";
import {
  CTR_BIN,
  type CommandResult,
  containerdSkipReason,
  REPO_ROOT,
  runCommand,
  type Streaming,
  sleep,
  spawnCtr,
  startBerthd,
  startContainerd,
  stopAll,
  tempDir,
} from "../src/harness.js";

const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
const BERTH_RUNTIME = "io.containerd.berth.v2";
const GO_RUNTIME = "io.containerd.runc.v2";
const IMAGE = "docker.io/library/busybox:latest";
const NS = "oom";
const LINGER_MS = 400;
const LIMIT = String(8 * 1024 * 1024);

const skip =
  process.env.BERTH_INTEGRATION !== "1"
    ? "set BERTH_INTEGRATION=1"
    : (containerdSkipReason() ??
      busyboxSkipReason() ??
      (existsSync(join(SHIM_DIR, "containerd-shim-berth-v2")) ? undefined : "Berth's shim is not built"));

interface Daemon {
  readonly socket: string;
  ctr(args: readonly string[]): Promise<CommandResult>;
}

function oomSuite(name: string, runtimes: readonly string[], startDaemon: () => Promise<Daemon>): void {
  describe.skipIf(skip !== undefined)(`OOM events under ${name}`, () => {
    let daemon: Daemon;
    let savedPath: string | undefined;

    beforeAll(async () => {
      savedPath = process.env.PATH;
      process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;
      process.env.BERTH_SHIM_LINGER_MS = String(LINGER_MS);
      daemon = await startDaemon();
      const dir = await tempDir("berth-shim-oom-");
      const archive = await writeOciArchive(join(dir, "busybox.tar"), IMAGE);
      const imp = await daemon.ctr(["images", "import", archive.path]);
      expect(imp.code, imp.stderr).toBe(0);
    }, 90_000);

    afterAll(async () => {
      if (daemon !== undefined) {
        const tasks = await daemon.ctr(["tasks", "ls", "-q"]);
        for (const id of tasks.stdout.split("\n").filter(Boolean)) {
          await daemon.ctr(["tasks", "kill", "-s", "SIGKILL", id]);
          await sleep(100);
          await daemon.ctr(["tasks", "rm", "-f", id]);
        }
        const cs = await daemon.ctr(["containers", "ls", "-q"]);
        for (const id of cs.stdout.split("\n").filter(Boolean)) await daemon.ctr(["containers", "rm", id]);
      }
      await sleep(LINGER_MS + 500);
      await stopAll();
      process.env.PATH = savedPath;
      delete process.env.BERTH_SHIM_LINGER_MS;
    }, 60_000);

    for (const runtime of runtimes) {
      const tag = runtime === BERTH_RUNTIME ? "berth" : "go";
      it(`${runtime}: a container over its memory limit exits 137 with a /tasks/oom event`, async () => {
        const events: Streaming = spawnCtr(daemon.socket, "-n", NS, "events");
        await sleep(300);
        const id = `oom-${tag}`;
        const res = await daemon.ctr([
          "run",
          "--runtime",
          runtime,
          "--rm",
          "--memory-limit",
          LIMIT,
          IMAGE,
          id,
          "sh",
          "-c",
          "echo filling; tail /dev/zero",
        ]);
        expect(res.stdout).toBe("filling\n");
        expect(res.code, res.stderr).toBe(137);
        await events.waitFor(new RegExp(`/tasks/delete\\s+\\{"container_id":"${id}"`), 5000);
        const out = events.stdout();
        await events.stop();
        const oom = out.match(new RegExp(`/tasks/oom\\s+\\{"container_id":"${id}"\\}`, "g")) ?? [];
        expect(oom.length, out).toBeGreaterThanOrEqual(1);
        // the OOM event comes before the exit it caused
        expect(out.indexOf("/tasks/oom")).toBeLessThan(
          out.search(new RegExp(`/tasks/exit\\s+\\{"container_id":"${id}"`)),
        );
      });

      it(`${runtime}: a container within its limit gets no /tasks/oom event`, async () => {
        const events: Streaming = spawnCtr(daemon.socket, "-n", NS, "events");
        await sleep(300);
        const id = `fine-${tag}`;
        const res = await daemon.ctr([
          "run",
          "--runtime",
          runtime,
          "--rm",
          "--memory-limit",
          LIMIT,
          IMAGE,
          id,
          "sh",
          "-c",
          "exit 0",
        ]);
        expect(res.code, res.stderr).toBe(0);
        await events.waitFor(new RegExp(`/tasks/delete\\s+\\{"container_id":"${id}"`), 5000);
        await sleep(200);
        const out = events.stdout();
        await events.stop();
        expect(out).not.toContain("/tasks/oom");
      });
    }
  });
}

oomSuite("berthd", [BERTH_RUNTIME], async () => {
  const berthd = await startBerthd();
  return {
    socket: berthd.socket,
    ctr: (args) => runCommand(CTR_BIN, ["-a", berthd.socket, "-n", NS, ...args], { timeoutMs: 30_000 }),
  };
});

oomSuite("containerd 1.6.20", [BERTH_RUNTIME, GO_RUNTIME], async () => {
  const ctrd = await startContainerd();
  return {
    socket: ctrd.socket,
    // in containerd's mount namespace: ctr's fifos live in containerd's private /run
    ctr: (args) =>
      runCommand("nsenter", ["-t", String(ctrd.pid), "-m", CTR_BIN, "-a", ctrd.socket, "-n", NS, ...args], {
        timeoutMs: 30_000,
      }),
  };
});
