import { describe, expect, it } from "vitest";
import { busyboxSkipReason } from "../src/busybox.js";
import {
  BERTH_RUNTIME,
  type CtrDaemon,
  GO_RUNTIME,
  berthShimSkipReason,
  berthdForCtr,
  containerdForCtr,
  useShimSuite,
} from "../src/containers.js";
import { type CommandResult, containerdSkipReason, sleep, spawnCtr } from "../src/harness.js";

const IMAGE = "docker.io/library/busybox:latest";
const NS = "oom";
const LINGER_MS = 400;
const LIMIT = String(8 * 1024 * 1024);

const skip =
  process.env.BERTH_INTEGRATION !== "1"
    ? "set BERTH_INTEGRATION=1"
    : (containerdSkipReason() ?? busyboxSkipReason() ?? berthShimSkipReason());

function oomSuite(name: string, runtimes: readonly string[], startDaemon: () => Promise<CtrDaemon>): void {
  describe.skipIf(skip !== undefined)(`OOM events under ${name}`, () => {
    const suite = useShimSuite({
      start: startDaemon,
      image: IMAGE,
      lingerMs: LINGER_MS,
      tempPrefix: "berth-shim-oom-",
    });

    /** `sh -c script` in a new container `id` under the memory limit, with `ctr run --rm`. */
    const runLimited = (runtime: string, id: string, script: string): Promise<CommandResult> =>
      suite.daemon.ctr(["run", "--runtime", runtime, "--rm", "--memory-limit", LIMIT, IMAGE, id, "sh", "-c", script]);

    /** Starts `ctr events`; `until(id)` is what it printed up to the container's /tasks/delete (and `settleMs` more). */
    async function watchEvents(): Promise<{ until(id: string, settleMs?: number): Promise<string> }> {
      const events = spawnCtr(suite.daemon.socket, "-n", NS, "events");
      await sleep(300);
      return {
        async until(id, settleMs = 0) {
          await events.waitFor(new RegExp(`/tasks/delete\\s+\\{"container_id":"${id}"`), 5000);
          await sleep(settleMs);
          const out = events.stdout();
          await events.stop();
          return out;
        },
      };
    }

    for (const runtime of runtimes) {
      const tag = runtime === BERTH_RUNTIME ? "berth" : "go";
      it(`${runtime}: a container over its memory limit exits 137 with a /tasks/oom event`, async () => {
        const events = await watchEvents();
        const id = `oom-${tag}`;
        const res = await runLimited(runtime, id, "echo filling; tail /dev/zero");
        expect(res.stdout).toBe("filling\n");
        expect(res.code, res.stderr).toBe(137);
        const out = await events.until(id);
        const oom = out.match(new RegExp(`/tasks/oom\\s+\\{"container_id":"${id}"\\}`, "g")) ?? [];
        expect(oom.length, out).toBeGreaterThanOrEqual(1);
        // the OOM event comes before the exit it caused
        expect(out.indexOf("/tasks/oom")).toBeLessThan(
          out.search(new RegExp(`/tasks/exit\\s+\\{"container_id":"${id}"`)),
        );
      });

      it(`${runtime}: a container within its limit gets no /tasks/oom event`, async () => {
        const events = await watchEvents();
        const id = `fine-${tag}`;
        const res = await runLimited(runtime, id, "exit 0");
        expect(res.code, res.stderr).toBe(0);
        const out = await events.until(id, 200);
        expect(out).not.toContain("/tasks/oom");
      });
    }
  });
}

oomSuite("berthd", [BERTH_RUNTIME], () => berthdForCtr(NS));

oomSuite("containerd 1.6.20", [BERTH_RUNTIME, GO_RUNTIME], () => containerdForCtr(NS));
