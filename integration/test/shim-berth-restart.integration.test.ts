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
  BERTH_RUNTIME as RUNTIME,
  berthShimSkipReason,
  buildBusyboxImage,
  ctrOn,
  fifosOf,
  killAndRemoveTasks,
  mountsUnder,
  processState,
  removeAllContainers,
  taskStatus,
  useBerthShimEnv,
} from "../src/containers.js";
import { type Berthd, ctr, ctrWith, skipReason, startBerthd, stopAll, tempDir, waitUntil } from "../src/harness.js";

const IMAGE = "docker.io/library/busybox:run";
const NS = "restart";
const LINGER_MS = 400;

const reason = skipReason() ?? busyboxSkipReason() ?? berthShimSkipReason();

describe.skipIf(reason !== undefined)(
  reason ? `berthd restart with Berth's shim (skipped: ${reason})` : "berthd restart with Berth's shim",
  () => {
    let berthd: Berthd;
    let restoreEnv: (() => void) | undefined;
    const serverPids = new Set<number>();

    beforeAll(async () => {
      restoreEnv = useBerthShimEnv({ BERTH_SHIM_LINGER_MS: String(LINGER_MS) });
      const dir = await tempDir();
      berthd = await startBerthd();
      const archive = await buildBusyboxImage(dir, IMAGE);
      const imp = await ctrWith(berthd.socket, ["-n", NS, "images", "import", archive], { timeoutMs: 60_000 });
      expect(imp.code, imp.stderr).toBe(0);
    }, 90_000);

    afterAll(async () => {
      // whatever a failed test left running is removed through berthd, so the shared server can go
      if (berthd !== undefined && berthd.process.exitCode === null && berthd.process.signalCode === null) {
        await removeAllContainers(ctrOn(berthd.socket, NS));
      }
      await new Promise((r) => setTimeout(r, LINGER_MS + 1000));
      for (const pid of serverPids) if (processState(pid) !== "gone") process.kill(pid, "SIGKILL");
      await stopAll();
      restoreEnv?.();
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

      const status = await taskStatus(s, NS);
      for (const id of ids) expect(status.get(id), id).toBe("RUNNING");
      expect(status.get("early")).toBe("STOPPED");
      const earlyRm = await ctr(s, "-n", NS, "tasks", "rm", "early");
      expect(earlyRm.code, earlyRm.stderr).toBe(0);
      expect(earlyRm.stderr).toContain("exit code 5");

      await killAndRemoveTasks(s, NS, ids);
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
