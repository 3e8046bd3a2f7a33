/**
 * Berth's shim (containerd-shim-berth-v2, runtime io.containerd.berth.v2) under a real containerd 1.6.20,
 * driven by the real ctr: the shim binary is put on containerd's PATH, ctr runs inside containerd's mount
 * namespace (its fifos live in the private /run), and containers run with the real runc and crun.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Task } from "@berth/api/task/v2";
import { GrpcCode, grpcCodeOf } from "@berth/errdefs";
import { connectTtrpcClient, createTtrpcServiceClient, type TtrpcClient } from "@berth/ttrpc";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxSkipReason, writeOciArchive } from "../src/busybox.js";
import {
  BERTH_RUNTIME as RUNTIME,
  berthShimSkipReason,
  removeAllContainers,
  useBerthShimEnv,
} from "../src/containers.js";
import {
  CTR_BIN,
  type CommandResult,
  type Containerd,
  containerdSkipReason,
  runCommand,
  sleep,
  startContainerd,
  stopAll,
  tempDir,
  waitUntil,
} from "../src/harness.js";

const IMAGE = "docker.io/library/busybox:latest";
const LINGER_MS = 400;

function shimSkipReason(): string | undefined {
  if (process.env.BERTH_INTEGRATION !== "1") return "set BERTH_INTEGRATION=1";
  const base = containerdSkipReason() ?? busyboxSkipReason();
  if (base) return base;
  return berthShimSkipReason();
}

const skip = shimSkipReason();

/** Whether `pid` is a live process (a zombie waiting for init to reap it has exited). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe.skipIf(skip !== undefined)("containerd-shim-berth-v2 under containerd 1.6.20", () => {
  let ctrd: Containerd;
  let restoreEnv: (() => void) | undefined;
  const serverPids = new Set<number>();

  /** ctr in containerd's mount namespace (ctr's fifo dir /run/containerd/fifo is in containerd's private /run). */
  const ctr = (args: readonly string[], options: { stdinFile?: string; timeoutMs?: number } = {}) =>
    runCommand("nsenter", ["-t", String(ctrd.pid), "-m", CTR_BIN, "-a", ctrd.socket, ...args], {
      timeoutMs: 30_000,
      ...options,
    });

  const bundleFile = (id: string, name: string) =>
    join(ctrd.dir, "state", "io.containerd.runtime.v2.task", "default", id, name);

  /** Remembers the shared server's pid (shim.pid in the bundle) so the suite can check it goes away. */
  const noteServer = (id: string): number => {
    const pid = Number(readFileSync(bundleFile(id, "shim.pid"), "utf8"));
    serverPids.add(pid);
    return pid;
  };

  const ok = (res: CommandResult): string => {
    expect(res.stderr, `ctr failed (${res.code})`).not.toMatch(/^ctr: /m);
    expect(res.code).toBe(0);
    return res.stdout;
  };

  beforeAll(async () => {
    restoreEnv = useBerthShimEnv({ BERTH_SHIM_LINGER_MS: String(LINGER_MS) });
    ctrd = await startContainerd();
    const dir = await tempDir("berth-shim-e2e-");
    const archive = await writeOciArchive(join(dir, "busybox.tar"), IMAGE);
    ok(await ctr(["images", "import", archive.path]));
  }, 60_000);

  afterAll(async () => {
    // Whatever a failed test left running is removed through containerd, so the shared server can go.
    if (ctrd !== undefined) await removeAllContainers((args) => ctr(args));
    await sleep(LINGER_MS + 500);
    for (const pid of serverPids) if (alive(pid)) process.kill(pid, "SIGKILL");
    await stopAll();
    restoreEnv?.();
  }, 60_000);

  it("runs a container to completion: output and exit status", async () => {
    const hi = await ctr(["run", "--runtime", RUNTIME, "--rm", IMAGE, "t1", "sh", "-c", "echo hello"]);
    expect(ok(hi)).toBe("hello\n");
    const three = await ctr(["run", "--runtime", RUNTIME, "--rm", IMAGE, "t2", "sh", "-c", "echo err >&2; exit 3"]);
    expect(three.code).toBe(3);
    expect(three.stderr).toContain("err");
    // --rm removed everything: no container, no task, no rootfs mount left
    expect(ok(await ctr(["containers", "ls", "-q"]))).toBe("");
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain("/t1/rootfs");
    // the in-process start/delete (runc-direct) left neither runc state nor cgroups behind
    for (const id of ["t1", "t2"]) {
      expect(existsSync(`/proc/${ctrd.pid}/root/run/containerd/runc/default/${id}`)).toBe(false);
      for (const ctrl of ["memory", "pids", "cpuacct", "unified"]) {
        expect(existsSync(`/sys/fs/cgroup/${ctrl}/default/${id}`)).toBe(false);
      }
    }
  });

  it("runs a detached container through exec, ps, pause, resume, metrics, kill and rm", async () => {
    ok(await ctr(["run", "-d", "--runtime", RUNTIME, IMAGE, "t3", "busybox", "sleep", "1000"]));
    noteServer("t3");
    expect(ok(await ctr(["tasks", "ls"]))).toMatch(/^t3\s+\d+\s+RUNNING$/m);

    const ls = await ctr(["tasks", "exec", "--exec-id", "e1", "t3", "busybox", "ls", "/"]);
    expect(ok(ls).split("\n")).toContain("bin");
    const seven = await ctr(["tasks", "exec", "--exec-id", "e2", "t3", "sh", "-c", "exit 7"]);
    expect(seven.code).toBe(7);

    const ps = ok(await ctr(["tasks", "ps", "t3"]));
    const initPid = ok(await ctr(["tasks", "ls"])).match(/^t3\s+(\d+)/m)?.[1];
    expect(ps).toMatch(new RegExp(`^${initPid}\\s`, "m"));

    ok(await ctr(["tasks", "pause", "t3"]));
    expect(ok(await ctr(["tasks", "ls"]))).toMatch(/^t3\s+\d+\s+PAUSED$/m);
    ok(await ctr(["tasks", "resume", "t3"]));
    expect(ok(await ctr(["tasks", "ls"]))).toMatch(/^t3\s+\d+\s+RUNNING$/m);

    const metrics = ok(await ctr(["tasks", "metrics", "t3"]));
    expect(metrics).toMatch(/^memory\.usage_in_bytes\s+[1-9]\d*\s*$/m);
    expect(metrics).toMatch(/^pids\.current\s+1\s*$/m);

    // busybox sleep as pid 1 ignores SIGTERM (as with containerd's own shim); SIGKILL ends it
    ok(await ctr(["tasks", "kill", "-s", "SIGKILL", "t3"]));
    await waitUntil("t3 to stop", async () =>
      /^t3\s+\d+\s+STOPPED$/m.test((await ctr(["tasks", "ls"])).stdout) ? true : undefined,
    );
    const rm = await ctr(["tasks", "rm", "t3"]);
    expect(rm.code).toBe(0);
    expect(rm.stderr).toContain("exit code 137");
    ok(await ctr(["containers", "rm", "t3"]));
  });

  it("keeps the exit status of a process that exits while nobody waits", async () => {
    ok(await ctr(["run", "-d", "--runtime", RUNTIME, IMAGE, "t4", "sh", "-c", "exit 9"]));
    await waitUntil("t4 to stop", async () =>
      /^t4\s+\d+\s+STOPPED$/m.test((await ctr(["tasks", "ls"])).stdout) ? true : undefined,
    );
    const rm = await ctr(["tasks", "rm", "t4"]);
    expect(rm.stderr).toContain("exit code 9");
    ok(await ctr(["containers", "rm", "t4"]));
  });

  it("publishes task events to containerd", async () => {
    const events = runCommand("nsenter", ["-t", String(ctrd.pid), "-m", CTR_BIN, "-a", ctrd.socket, "events"], {
      timeoutMs: 4000,
    });
    await sleep(300);
    ok(await ctr(["run", "--runtime", RUNTIME, "--rm", IMAGE, "t5", "sh", "-c", "exit 0"]));
    const out = (await events).stdout;
    for (const topic of ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]) {
      expect(out).toMatch(new RegExp(`${topic}\\s+\\{"container_id":"t5"`));
    }
  });

  it("gives a tty with ctr run -t", async () => {
    const dir = await tempDir("berth-shim-tty-");
    const input = join(dir, "input");
    await writeFile(input, "tty -s && echo is-a-tty; stty size; exit 5\n");
    const cmd = `${CTR_BIN} -a ${ctrd.socket} run -t --runtime ${RUNTIME} --rm ${IMAGE} t6 sh`;
    const res = await runCommand(
      "script",
      ["-qec", `stty cols 100 rows 30 2>/dev/null; nsenter -t ${ctrd.pid} -m ${cmd}`, "/dev/null"],
      { stdinFile: input, timeoutMs: 30_000 },
    );
    expect(res.stdout).toContain("is-a-tty");
    expect(res.code).toBe(5);
  });

  it("runs crun instead of runc when the runtime config names it", async () => {
    const dir = await tempDir("berth-shim-crun-");
    const config = join(dir, "crun.toml");
    await writeFile(config, 'BinaryName = "crun"\n');
    const res = await ctr([
      "run",
      "--runtime",
      RUNTIME,
      "--runtime-config-path",
      config,
      "--rm",
      IMAGE,
      "t7",
      "sh",
      "-c",
      "echo from-crun; exit 4",
    ]);
    expect(res.stdout).toBe("from-crun\n");
    expect(res.code).toBe(4);
    // crun kept its state under containerd's runc root, and the task delete removed it
    expect(existsSync(`/proc/${ctrd.pid}/root/run/containerd/runc/default/t7`)).toBe(false);
  });

  it("refuses a relative or unreadable runtime config with InvalidArgument", async () => {
    const res = await ctr([
      "run",
      "--runtime",
      RUNTIME,
      "--runtime-config-path",
      "rel/x.toml",
      "--rm",
      IMAGE,
      "t8",
      "true",
    ]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/must be absolute: invalid argument/);
    const missing = await ctr([
      "run",
      "--runtime",
      RUNTIME,
      "--runtime-config-path",
      "/nonexistent/x.toml",
      "--rm",
      IMAGE,
      "t9",
      "true",
    ]);
    expect(missing.stderr).toMatch(/invalid argument/);
    await ctr(["containers", "rm", "t8", "t9"]);
  });

  it("starts 20 containers at once under one shared server, then the server exits", async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
    const results = await Promise.all(
      ids.map((id) => ctr(["run", "-d", "--runtime", RUNTIME, IMAGE, id, "busybox", "sleep", "1000"])),
    );
    for (const r of results) ok(r);
    const running = ok(await ctr(["tasks", "ls"]));
    for (const id of ids) expect(running).toMatch(new RegExp(`^${id}\\s+\\d+\\s+RUNNING$`, "m"));
    const servers = new Set(ids.map((id) => noteServer(id)));
    expect(servers.size).toBe(1);
    const [server] = [...servers] as [number];
    await Promise.all(ids.map((id) => ctr(["tasks", "kill", "-s", "SIGKILL", id])));
    await Promise.all(ids.map((id) => ctr(["tasks", "rm", "-f", id])));
    await Promise.all(ids.map((id) => ctr(["containers", "rm", id])));
    await waitUntil("the shared shim server to exit", () => (alive(server) ? undefined : true), LINGER_MS + 5000);
  }, 120_000);

  describe("the Task API refuses hostile requests", () => {
    let client: TtrpcClient;
    let task: ReturnType<typeof createTtrpcServiceClient<(typeof Task)["method"]>>;

    beforeAll(async () => {
      ok(await ctr(["run", "-d", "--runtime", RUNTIME, IMAGE, "h1", "busybox", "sleep", "1000"]));
      noteServer("h1");
      const address = readFileSync(bundleFile("h1", "address"), "utf8").replace(/^unix:\/\//, "");
      // the socket is in containerd's private /run; reach it through the namespace's root
      client = await connectTtrpcClient(`/proc/${ctrd.pid}/root${address}`, {
        metadata: { "containerd-namespace-ttrpc": ["default"] },
      });
      task = createTtrpcServiceClient(client, Task);
    });

    afterAll(async () => {
      client?.close();
      await ctr(["tasks", "kill", "-s", "SIGKILL", "h1"]);
      await sleep(200);
      await ctr(["tasks", "rm", "-f", "h1"]);
      await ctr(["containers", "rm", "h1"]);
    });

    const code = async (p: Promise<unknown>) => {
      try {
        await p;
        return GrpcCode.OK;
      } catch (err) {
        return grpcCodeOf(err);
      }
    };

    it("unknown container or process: NotFound", async () => {
      expect(await code(task.state({ id: "nope" }))).toBe(GrpcCode.NotFound);
      expect(await code(task.state({ id: "h1", execId: "nope" }))).toBe(GrpcCode.NotFound);
      expect(await code(task.kill({ id: "h1", execId: "nope", signal: 9 }))).toBe(GrpcCode.NotFound);
    });

    it("bad ids and bundle paths: InvalidArgument, nothing created", async () => {
      const bundle = join(ctrd.dir, "state", "io.containerd.runtime.v2.task", "default", "h1");
      expect(await code(task.create({ id: "../x", bundle }))).toBe(GrpcCode.InvalidArgument);
      expect(await code(task.create({ id: "x", bundle: "relative/bundle" }))).toBe(GrpcCode.InvalidArgument);
      expect(await code(task.create({ id: "x", bundle: `${bundle}/../../../../../etc` }))).toBe(
        GrpcCode.InvalidArgument,
      );
      expect(await code(task.create({ id: "x", bundle: "/tmp" }))).toBe(GrpcCode.InvalidArgument);
      expect(
        await code(task.exec({ id: "h1", execId: "../e", spec: { typeUrl: "x", value: new Uint8Array([123, 125]) } })),
      ).toBe(GrpcCode.InvalidArgument);
      expect(await code(task.state({ id: "x" }))).toBe(GrpcCode.NotFound);
    });

    it("a second create of a live id: FailedPrecondition; the container keeps running", async () => {
      const bundle = join(ctrd.dir, "state", "io.containerd.runtime.v2.task", "default", "h1");
      expect(await code(task.create({ id: "h1", bundle }))).toBe(GrpcCode.FailedPrecondition);
      expect((await task.state({ id: "h1" })).status).toBe(2); // RUNNING
    });

    it("another namespace: FailedPrecondition", async () => {
      const res = await code(task.state({ id: "h1" }, { metadata: { "containerd-namespace-ttrpc": ["other"] } }));
      expect(res).toBe(GrpcCode.FailedPrecondition);
    });

    it("checkpoint: Unimplemented", async () => {
      expect(await code(task.checkpoint({ id: "h1", path: "/tmp/x" }))).toBe(GrpcCode.Unimplemented);
    });

    it("connect reports the shared server's pid and the task's pid", async () => {
      const res = await task.connect({ id: "h1" });
      expect(serverPids.has(res.shimPid)).toBe(true);
      expect(res.taskPid).toBeGreaterThan(0);
    });
  });
});
