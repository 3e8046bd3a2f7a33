/**
 * Containers and tasks with the real `ctr` against berthd and containerd's Go shim (containerd-shim-runc-v2)
 * driving runc, and crun: run/exit codes, detached lifecycle (exec, ps, pause/resume, metrics, kill, rm), a
 * tty, a daemon `kill -9` with ten running containers, and hostile input to the Containers service.
 *
 * crun 1.8 refuses cgroup hybrid mode, so the crun runs go through a wrapper (`--runc-binary`) that runs crun
 * in a private mount namespace with a tmpfs over /sys/fs/cgroup/unified: crun then sees cgroup v1 only.
 */
import { readFileSync, readdirSync } from "node:fs";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Containers } from "@berth/api/services/containers/v1";
import { Tasks } from "@berth/api/services/tasks/v1";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { busyboxSkipReason } from "../src/busybox.js";
import {
  buildBusyboxImage,
  ctrOn,
  fifosOf,
  killAndRemoveTasks,
  mountsUnder,
  processState,
  removeAllContainers,
  taskStatus,
} from "../src/containers.js";
import {
  type Berthd,
  ctr,
  ctrWith,
  runCommand,
  skipReason,
  spawnCtr,
  startBerthd,
  stopAll,
  stopClients,
  tempDir,
  waitUntil,
  withClient,
} from "../src/harness.js";

const reason = skipReason() ?? busyboxSkipReason();
const IMAGE = "docker.io/library/busybox:run";
const SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/** PIDs of the shims serving this berthd (their `-address` is its socket). */
function shimPids(socket: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd: string[];
    try {
      cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    if (!cmd[0]?.endsWith("containerd-shim-runc-v2")) continue;
    const i = cmd.indexOf("-address");
    if (i >= 0 && cmd[i + 1] === socket) out.push(Number(entry));
  }
  return out;
}

describe.skipIf(reason !== undefined)(
  reason ? `ctr run (skipped: ${reason})` : "ctr run with the Go shim on berthd",
  () => {
    let berthd: Berthd;
    let dir: string;
    let crunWrapper: string;
    const namespaces = new Set<string>(["default"]);

    /** Kills and removes every task and container left in the test namespaces (also after failures). */
    async function cleanupTasks(): Promise<void> {
      for (const ns of namespaces) await removeAllContainers(ctrOn(berthd.socket, ns));
    }

    beforeAll(async () => {
      dir = await tempDir();
      crunWrapper = join(dir, "crun-unified-hidden");
      await writeFile(
        crunWrapper,
        [
          "#!/bin/sh",
          "# crun 1.8 refuses cgroup hybrid mode: hide the cgroup2 mount in a private mount namespace.",
          `exec unshare --mount --propagation private /bin/sh -c 'mount -t tmpfs -o size=4k tmpfs /sys/fs/cgroup/unified && exec /usr/bin/crun "$@"' crun "$@"`,
          "",
        ].join("\n"),
      );
      await chmod(crunWrapper, 0o755);
      // a runtime name mapped by config to the Go runc shim with crun as its OCI runtime
      berthd = await startBerthd({
        config: [
          "version = 2",
          `[plugins."io.containerd.runtime.v2.task".runtimes."io.containerd.crun.v2"]`,
          `binary = "/usr/bin/containerd-shim-runc-v2"`,
          `options = { BinaryName = "${crunWrapper}" }`,
          "",
        ].join("\n"),
      });
      const archive = await buildBusyboxImage(dir, IMAGE);
      for (const ns of ["default", "restart"]) {
        const imp = await ctrWith(berthd.socket, ["-n", ns, "images", "import", archive], { timeoutMs: 60_000 });
        expect(imp.code, imp.stderr).toBe(0);
      }
    }, 90_000);
    afterEach(stopClients);
    afterAll(async () => {
      if (berthd !== undefined) await cleanupTasks().catch(() => {});
      await stopAll();
    }, 60_000);

    test("a runtime name mapped in the config: io.containerd.crun.v2 runs with crun", async () => {
      const s = berthd.socket;
      const r = await ctrWith(
        s,
        ["run", "--runtime", "io.containerd.crun.v2", "-d", IMAGE, "mapped", "sleep", "1000"],
        {
          timeoutMs: 30_000,
        },
      );
      expect(r.code, r.stderr).toBe(0);
      // the shim got the configured options: crun (the wrapper) is its OCI runtime
      const options = readFileSync(
        join(berthd.state, "io.containerd.runtime.v2.task", "default", "mapped", "options.json"),
        "utf8",
      );
      expect(JSON.parse(options)).toMatchObject({ binary_name: crunWrapper });
      const exec = await ctrWith(s, ["tasks", "exec", "--exec-id", "m1", "mapped", "echo", "mapped-ok"], {
        timeoutMs: 30_000,
      });
      expect(exec.stdout).toBe("mapped-ok\n");
      expect((await ctr(s, "tasks", "kill", "-s", "SIGKILL", "mapped")).code).toBe(0);
      await waitUntil("task stopped", async () =>
        (await taskStatus(s, "default")).get("mapped") === "STOPPED" ? true : undefined,
      );
      expect((await ctr(s, "tasks", "rm", "mapped")).code).toBe(0);
      expect((await ctr(s, "containers", "rm", "mapped")).code).toBe(0);
    });

    for (const runtime of ["runc", "crun"] as const) {
      const extra = (): string[] => (runtime === "crun" ? ["--runc-binary", crunWrapper] : []);

      test(`${runtime}: ctr run --rm echo hello prints hello`, async () => {
        const r = await ctrWith(berthd.socket, ["run", ...extra(), "--rm", IMAGE, `${runtime}-t1`, "echo", "hello"], {
          timeoutMs: 30_000,
        });
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe("hello\n");
        expect(r.code).toBe(0);
        expect((await ctr(berthd.socket, "containers", "ls", "-q")).stdout).not.toContain(`${runtime}-t1`);
      });

      test(`${runtime}: file:// IO reaches the shim (ctr run --log-uri)`, async () => {
        const log = join(dir, `${runtime}-out.log`);
        const r = await ctrWith(
          berthd.socket,
          [
            "run",
            ...extra(),
            "--rm",
            "--log-uri",
            `file://${log}`,
            IMAGE,
            `${runtime}-log`,
            "sh",
            "-c",
            "echo to-file; echo err >&2",
          ],
          { timeoutMs: 30_000 },
        );
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe("");
        expect(readFileSync(log, "utf8").split("\n").sort()).toEqual(["", "err", "to-file"]);
      });

      test(`${runtime}: ctr run --rm sh -c 'exit 3' exits 3`, async () => {
        const r = await ctrWith(
          berthd.socket,
          ["run", ...extra(), "--rm", IMAGE, `${runtime}-t2`, "sh", "-c", "exit 3"],
          {
            timeoutMs: 30_000,
          },
        );
        expect(r.code).toBe(3);
      });

      test(`${runtime}: detached task: ls, exec, ps, pause/resume, metrics, kill, rm`, async () => {
        const id = `${runtime}-t3`;
        const s = berthd.socket;
        const events = spawnCtr(s, "events");
        await new Promise((r) => setTimeout(r, 300));
        const run = await ctrWith(s, ["run", ...extra(), "-d", IMAGE, id, "sleep", "1000"], { timeoutMs: 30_000 });
        expect(run.stderr).toBe("");
        expect(run.code).toBe(0);
        expect((await taskStatus(s, "default")).get(id)).toBe("RUNNING");

        const exec = await ctrWith(s, ["tasks", "exec", "--exec-id", "e1", id, "ls", "/"], { timeoutMs: 30_000 });
        expect(exec.code).toBe(0);
        expect(exec.stdout.split("\n")).toEqual(expect.arrayContaining(["bin", "proc", "sys"]));

        const ps = await ctr(s, "tasks", "ps", id);
        expect(ps.code).toBe(0);
        const pid = (await ctr(s, "tasks", "ls")).stdout.match(new RegExp(`${id}\\s+(\\d+)`))?.[1];
        expect(pid).toBeDefined();
        expect(ps.stdout).toMatch(new RegExp(`^${pid}\\s`, "m"));

        expect((await ctr(s, "tasks", "pause", id)).code).toBe(0);
        expect((await taskStatus(s, "default")).get(id)).toBe("PAUSED");
        expect((await ctr(s, "tasks", "resume", id)).code).toBe(0);
        expect((await taskStatus(s, "default")).get(id)).toBe("RUNNING");

        const metrics = await ctr(s, "tasks", "metrics", id);
        expect(metrics.code, metrics.stderr).toBe(0);
        expect(metrics.stdout).toMatch(/pids\.current\s+1/);

        // ctr 1.6 has no `tasks update`: Tasks.Update with LinuxResources as containerd's client sends them
        await withClient(
          s,
          Tasks,
          (t) =>
            t.update({
              containerId: id,
              resources: {
                typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
                value: new TextEncoder().encode(JSON.stringify({ memory: { limit: 67108864 } })),
              },
            }),
          { namespace: "default" },
        );
        expect((await ctr(s, "tasks", "metrics", id)).stdout).toMatch(/memory\.limit_in_bytes\s+67108864/);

        // CRIU does not work on this host: a clear error, and the task keeps running
        const checkpoint = await ctr(s, "tasks", "checkpoint", id);
        expect(checkpoint.code).not.toBe(0);
        expect(checkpoint.stderr).toContain("checkpoint is not supported");
        expect((await taskStatus(s, "default")).get(id)).toBe("RUNNING");

        const rmRunning = await ctr(s, "tasks", "rm", id);
        expect(rmRunning.code).not.toBe(0);
        expect(rmRunning.stderr).toContain("failed precondition");

        expect((await ctr(s, "tasks", "kill", "-s", "SIGKILL", id)).code).toBe(0);
        await waitUntil("task stopped", async () =>
          (await taskStatus(s, "default")).get(id) === "STOPPED" ? true : undefined,
        );
        const rm = await ctr(s, "tasks", "rm", id);
        expect(rm.code).toBe(0);
        expect(rm.stderr).toContain("exit code 137");
        expect((await ctr(s, "containers", "rm", id)).code).toBe(0);
        expect((await ctr(s, "containers", "ls", "-q")).stdout).not.toContain(id);
        // what the shim published (forwarded over ttrpc) and the Containers service, in containerd's order
        const want = [
          "/containers/create",
          "/tasks/create",
          "/tasks/start",
          "/tasks/exec-added",
          "/tasks/exec-started",
          "/tasks/exit", // of the exec process
          "/tasks/paused",
          "/tasks/resumed",
          "/tasks/paused", // ctr pauses around the (refused) checkpoint
          "/tasks/resumed",
          "/tasks/exit",
          "/tasks/delete",
          "/containers/delete",
        ];
        await events.waitFor(/\/containers\/delete/, 10_000);
        const topics = events
          .stdout()
          .split("\n")
          .filter((l) => l.includes(`"${id}"`))
          .map((l) => l.split(" ").find((w) => w.startsWith("/")) ?? "");
        expect(topics.filter((t) => want.includes(t))).toEqual(want);
        expect(events.stdout()).toMatch(new RegExp(`/tasks/exit .*"container_id":"${id}".*"exit_status":137`));
        expect(shimPids(s)).toEqual([]);
      });

      test(`${runtime}: ctr run -t gives the process a terminal`, async () => {
        const cmd = [
          "/usr/bin/ctr",
          "-a",
          berthd.socket,
          "run",
          ...extra(),
          "-t",
          "--rm",
          IMAGE,
          `${runtime}-t4`,
          "sh",
          "-c",
          "tty; echo tty-ok",
        ];
        // `script` gives ctr a pty of its own, as an interactive shell would
        const r = await runCommand("/usr/bin/script", ["-qec", cmd.join(" "), "/dev/null"], { timeoutMs: 30_000 });
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
        expect(r.stdout).toContain("tty-ok");
      });
    }

    test("kill -9 berthd with 10 containers running: all re-attached, killable, exit statuses reported", async () => {
      const ns = "restart";
      namespaces.add(ns);
      const s = berthd.socket;
      const ids = Array.from({ length: 10 }, (_, i) => `r${i}`);
      await Promise.all(
        ids.map(async (id) => {
          const r = await ctrWith(s, ["-n", ns, "run", "-d", IMAGE, id, "sleep", "1000"], { timeoutMs: 60_000 });
          expect(r.code, r.stderr).toBe(0);
        }),
      );
      // one more that exits with 5 while berthd is down
      const early = await ctrWith(s, ["-n", ns, "run", "-d", IMAGE, "early", "sh", "-c", "sleep 1; exit 5"], {
        timeoutMs: 30_000,
      });
      expect(early.code, early.stderr).toBe(0);
      // and one whose shim dies while berthd is down
      const lost = await ctrWith(s, ["-n", ns, "run", "-d", IMAGE, "lost", "sleep", "1000"], { timeoutMs: 30_000 });
      expect(lost.code, lost.stderr).toBe(0);
      const state = join(berthd.state, "io.containerd.runtime.v2.task", ns);
      const lostInit = Number(readFileSync(join(state, "lost", "init.pid"), "utf8"));
      const sockets = [...ids, "early", "lost"].map((id) =>
        readFileSync(join(state, id, "address"), "utf8")
          .trim()
          .replace("unix://", ""),
      );
      const shims = shimPids(s);
      expect(shims.length).toBe(12);
      const lostShim = Number(readFileSync(`/proc/${lostInit}/stat`, "utf8").split(" ")[3]);
      expect(shims).toContain(lostShim);

      await berthd.kill9();
      process.kill(lostShim, "SIGKILL");
      await new Promise((r) => setTimeout(r, 2000));
      await berthd.restart();

      const status = await taskStatus(s, ns);
      for (const id of ids) expect(status.get(id)).toBe("RUNNING");
      expect(status.get("early")).toBe("STOPPED");
      // the dead shim was cleaned up with `shim delete` on start: its task and its process are gone
      expect(status.has("lost")).toBe(false);
      // (gone, or a zombie waiting for whoever adopted it after its shim died)
      expect(processState(lostInit)).toMatch(/^(gone|Z)$/);
      expect(readdirSync(state)).not.toContain("lost");
      const earlyRm = await ctr(s, "-n", ns, "tasks", "rm", "early");
      expect(earlyRm.code).toBe(0);
      expect(earlyRm.stderr).toContain("exit code 5");

      await killAndRemoveTasks(s, ns, ids);
      for (const id of [...ids, "early", "lost"]) {
        expect((await ctr(s, "-n", ns, "containers", "rm", id)).code).toBe(0);
      }

      // nothing left behind: shims, their sockets, mounts, bundles
      expect(shimPids(s)).toEqual([]);
      for (const sock of sockets) expect(() => readFileSync(sock)).toThrow();
      expect(mountsUnder(berthd.dir)).toEqual([]);
      expect(readdirSync(state)).toEqual([]);
      for (const id of [...ids, "early"]) expect(fifosOf(id)).toEqual([]);
    }, 120_000);

    test("a shim killed under a running berthd: task cleaned up, exit published", async () => {
      const s = berthd.socket;
      const run = await ctrWith(s, ["run", "-d", IMAGE, "victim", "sleep", "1000"], { timeoutMs: 30_000 });
      expect(run.code, run.stderr).toBe(0);
      const events = spawnCtr(s, "events");
      await new Promise((r) => setTimeout(r, 300));
      const [shim] = shimPids(s);
      expect(shim).toBeDefined();
      process.kill(shim as number, "SIGKILL");
      await events.waitFor(/\/tasks\/exit .*"container_id":"victim".*"exit_status":137/, 10_000);
      await events.waitFor(/\/tasks\/delete .*"container_id":"victim"/, 10_000);
      await waitUntil("task gone", async () => ((await taskStatus(s, "default")).has("victim") ? undefined : true));
      // `shim delete` runs for the dead shim; then nothing of it is left
      await waitUntil("no shim processes", () => (shimPids(s).length === 0 ? true : undefined));
      await waitUntil("bundle gone", () =>
        readdirSync(join(berthd.state, "io.containerd.runtime.v2.task", "default")).length === 0 ? true : undefined,
      );
      expect((await ctr(s, "containers", "rm", "victim")).code).toBe(0);
      // the fifos ctr made for it go too (ctr itself never deletes that task)
      expect(fifosOf("victim")).toEqual([]);
    });

    describe("Containers service, hostile input", () => {
      const spec = { typeUrl: SPEC_URL, value: new TextEncoder().encode("{}") };
      const base = { runtime: { name: "io.containerd.runc.v2" }, spec };
      const code = async (p: Promise<unknown>) => {
        try {
          await p;
          return Code[0] ?? "OK";
        } catch (err) {
          return Code[ConnectError.from(err).code];
        }
      };

      test("unknown ids, bad ids, duplicates, missing fields, namespaces", async () => {
        const s = berthd.socket;
        await withClient(
          s,
          Containers,
          async (c) => {
            expect(await code(c.get({ id: "nope" }))).toBe("NotFound");
            expect(await code(c.delete({ id: "nope" }))).toBe("NotFound");
            expect(await code(c.update({ container: { id: "nope", ...base } }))).toBe("NotFound");
            expect(await code(c.create({ container: { id: "../etc", ...base } }))).toBe("InvalidArgument");
            expect(await code(c.create({ container: { id: "a".repeat(77), ...base } }))).toBe("InvalidArgument");
            expect(await code(c.create({ container: { id: "nospec", runtime: base.runtime } }))).toBe(
              "InvalidArgument",
            );
            expect(await code(c.create({ container: { id: "noruntime", spec } }))).toBe("InvalidArgument");
            expect(await code(c.create({ container: { id: "keyonly", ...base, snapshotKey: "k" } }))).toBe(
              "InvalidArgument",
            );
            const created = await c.create({ container: { id: "c1", ...base, labels: { a: "1" } } });
            expect(created.container?.createdAt).toBeDefined();
            expect(await code(c.create({ container: { id: "c1", ...base } }))).toBe("AlreadyExists");
            expect(await code(c.update({ container: { id: "c1", ...base }, updateMask: { paths: ["runtime"] } }))).toBe(
              "InvalidArgument",
            );
            const up = await c.update({
              container: { id: "c1", ...base, labels: { b: "2" } },
              updateMask: { paths: ["labels.b"] },
            });
            expect(up.container?.labels).toEqual({ a: "1", b: "2" });
            expect(await code(c.list({ filters: ["labels.a=="] }))).toBe("InvalidArgument");
            expect((await c.list({ filters: ["labels.b==2"] })).containers.map((x) => x.id)).toEqual(["c1"]);
          },
          { namespace: "hostile" },
        );
        // another namespace sees nothing
        await withClient(
          s,
          Containers,
          async (c) => {
            expect(await code(c.get({ id: "c1" }))).toBe("NotFound");
            expect((await c.list({})).containers).toEqual([]);
          },
          { namespace: "other" },
        );
        // no namespace at all, and a bad one
        await withClient(s, Containers, async (c) => {
          expect(await code(c.list({}))).toBe("FailedPrecondition");
        });
        await withClient(
          s,
          Containers,
          async (c) => {
            expect(await code(c.list({}))).toBe("InvalidArgument");
          },
          { namespace: "bad/ns" },
        );
        // tasks of containers that do not exist, bad exec ids, a runtime without a shim binary
        await withClient(
          s,
          Tasks,
          async (t) => {
            expect(await code(t.create({ containerId: "nope" }))).toBe("NotFound");
            expect(await code(t.get({ containerId: "c1" }))).toBe("NotFound");
            expect(await code(t.kill({ containerId: "c1", signal: 9 }))).toBe("NotFound");
            expect(await code(t.delete({ containerId: "nope" }))).toBe("NotFound");
            expect(await code(t.wait({ containerId: "c1" }))).toBe("NotFound");
            expect(await code(t.exec({ containerId: "c1", execId: "" }))).toBe("InvalidArgument");
            await withClient(
              s,
              Containers,
              (c) => c.create({ container: { id: "noshim", spec, runtime: { name: "io.containerd.nosuch.v9" } } }),
              { namespace: "hostile" },
            );
            expect(await code(t.create({ containerId: "noshim" }))).toBe("NotFound");
            await withClient(s, Containers, (c) => c.delete({ id: "noshim" }), { namespace: "hostile" });
            expect((await t.list({})).tasks).toEqual([]);
          },
          { namespace: "hostile" },
        );
        const t = await ctr(s, "-n", "hostile", "tasks", "start", "nope");
        expect(t.code).not.toBe(0);
        expect(t.stderr).toContain("not found");
        await withClient(s, Containers, (c) => c.delete({ id: "c1" }), { namespace: "hostile" });
      });
    });
  },
);
