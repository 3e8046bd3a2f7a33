/**
 * The `berth` CLI running containers: `berth run` (foreground, exit codes, stdin, tty, -d), `berth containers`,
 * `berth tasks` and `berth snapshots`, each against a private real containerd 1.6.20 and against berthd, with
 * ctr's own output as the reference where both print the same thing.
 *
 * The private containerd lives in its own mount namespace with a tmpfs on /run, so its shims cannot see
 * /run/containerd/fifo of ours: berth's fifos go to a temp dir (`--fifo-dir`) there.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "vitest";
import { busyboxSkipReason } from "../src/busybox.js";
import {
  BERTH_BIN,
  type CommandResult,
  REPO_ROOT,
  berthWith,
  containerdSkipReason,
  ctr,
  ctrWith,
  runCommand,
  startBerthd,
  startContainerd,
  stopAll,
  stopClients,
  tempDir,
  waitUntil,
} from "../src/harness.js";

const reason = containerdSkipReason() ?? busyboxSkipReason();
const IMAGE = "docker.io/library/busybox:berth-run";

interface Target {
  readonly name: "containerd" | "berthd";
  socket: string;
  /** `--fifo-dir` for run/exec/start. */
  fifoDir: string;
}

const targets: Target[] = [
  { name: "containerd", socket: "", fifoDir: "" },
  { name: "berthd", socket: "", fifoDir: "" },
];

let archive = "";
let chainID = "";
let crunWrapper = "";
let savedPath: string | undefined;

/** Berth's shim, put on the daemons' PATH when it is built (runtime io.containerd.berth.v2). */
const SHIM_DIR = join(REPO_ROOT, "packages/shim/native/build");
const shimBuilt = existsSync(join(SHIM_DIR, "containerd-shim-berth-v2"));

describe.skipIf(reason !== undefined)(reason ? `berth run (skipped: ${reason})` : "berth run", () => {
  beforeAll(async () => {
    const dir = await tempDir("berth-run-");
    savedPath = process.env.PATH;
    if (shimBuilt) process.env.PATH = `${SHIM_DIR}:${process.env.PATH}`;
    // crun 1.8 refuses cgroup hybrid mode: the wrapper hides the cgroup2 mount in a private mount namespace
    crunWrapper = join(dir, "crun-unified-hidden");
    await writeFile(
      crunWrapper,
      `#!/bin/sh\nexec unshare --mount --propagation private /bin/sh -c 'mount -t tmpfs -o size=4k tmpfs /sys/fs/cgroup/unified && exec /usr/bin/crun "$@"' crun "$@"\n`,
    );
    await chmod(crunWrapper, 0o755);
    archive = join(dir, "busybox.tar");
    const built = await runCommand(process.execPath, [
      join(REPO_ROOT, "scripts/build-busybox-image.mjs"),
      archive,
      IMAGE,
    ]);
    expect(built.code, built.stderr).toBe(0);
    const [containerd, berthd] = await Promise.all([startContainerd(), startBerthd()]);
    for (const [t, socket] of [
      [targets[0], containerd.socket],
      [targets[1], berthd.socket],
    ] as const) {
      if (t === undefined) continue;
      t.socket = socket;
      t.fifoDir = join(dir, `fifo-${t.name}`);
      await mkdir(t.fifoDir, { recursive: true });
      const imp = await ctrWith(socket, ["images", "import", archive], { timeoutMs: 60_000 });
      expect(imp.code, imp.stderr).toBe(0);
    }
    const snaps = await ctr(containerd.socket, "snapshots", "ls");
    chainID = /^(sha256:[0-9a-f]{64})\s/m.exec(snaps.stdout)?.[1] ?? "";
    expect(chainID).not.toBe("");
  }, 120_000);
  afterEach(stopClients);
  afterAll(async () => {
    for (const t of targets) {
      if (t.socket === "") continue;
      const ls = await ctr(t.socket, "tasks", "ls", "-q");
      for (const id of ls.stdout.split("\n").filter(Boolean)) {
        await ctr(t.socket, "tasks", "kill", "-a", "-s", "SIGKILL", id);
        await ctr(t.socket, "tasks", "rm", "-f", id);
      }
    }
    await stopAll();
    process.env.PATH = savedPath;
  }, 60_000);

  describe.each(targets)("against $name", (t) => {
    const berth = (args: string[], options: { stdinFile?: string; timeoutMs?: number } = {}): Promise<CommandResult> =>
      berthWith(t.socket, args, { timeoutMs: 30_000, ...options });
    const fifo = () => ["--fifo-dir", t.fifoDir];
    const id = (base: string) => `${t.name}-${base}`;
    const fifosLeft = () => readdirSync(t.fifoDir);

    test("run --rm echo hello prints hello and leaves nothing behind", async () => {
      const r = await berth(["run", "--rm", ...fifo(), IMAGE, id("r1"), "echo", "hello"]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("hello\n");
      expect(r.code).toBe(0);
      expect((await ctr(t.socket, "containers", "ls", "-q")).stdout).not.toContain(id("r1"));
      expect((await ctr(t.socket, "snapshots", "ls")).stdout).not.toContain(id("r1"));
      expect((await ctr(t.socket, "tasks", "ls", "-q")).stdout).not.toContain(id("r1"));
      expect(fifosLeft()).toEqual([]);
    });

    test("the exit code is the container's; stdout and stderr stay apart", async () => {
      const r = await berth(["run", "--rm", ...fifo(), IMAGE, id("r2"), "sh", "-c", "echo out; echo err >&2; exit 3"]);
      expect(r.code).toBe(3);
      expect(r.stdout).toBe("out\n");
      expect(r.stderr).toBe("err\n");
    });

    test("standard input reaches the container, then its end", async () => {
      const dir = await tempDir();
      const input = join(dir, "input.sh");
      await writeFile(input, "echo from-stdin\nexit 6\n");
      const r = await berth(["run", "--rm", ...fifo(), IMAGE, id("r3"), "sh"], { stdinFile: input });
      expect(r.stdout).toBe("from-stdin\n");
      expect(r.code).toBe(6);
    });

    test("signals sent to berth run reach the container", async () => {
      const child = spawn(
        process.execPath,
        [
          BERTH_BIN,
          "-a",
          t.socket,
          "run",
          "--rm",
          ...fifo(),
          IMAGE,
          id("sig1"),
          "sh",
          "-c",
          "trap 'echo got-term; exit 9' TERM; echo ready; while :; do sleep 0.1; done",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => {
        out += c;
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      try {
        await waitUntil("the container to be ready", () => (out.includes("ready") ? true : undefined), 20_000);
        child.kill("SIGTERM");
        expect(await exited).toBe(9);
        expect(out).toBe("ready\ngot-term\n");
      } finally {
        // only the berth process this test started, by its PID
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
    });

    test("tasks attach joins a task started with fifos elsewhere (ctr tasks start -d)", async () => {
      const c = id("at1");
      const script = 'while read l; do echo got:$l; [ "$l" = quit ] && exit 3; done';
      expect((await berth(["containers", "create", IMAGE, c, "sh", "-c", script])).code).toBe(0);
      const started = await ctr(t.socket, "tasks", "start", "-d", "--fifo-dir", t.fifoDir, c);
      expect(started.code, started.stderr).toBe(0);
      const dir = await tempDir();
      await writeFile(join(dir, "in.txt"), "hello\nquit\n");
      const attached = await berth(["tasks", "attach", c], { stdinFile: join(dir, "in.txt") });
      expect(attached.stdout).toBe("got:hello\ngot:quit\n");
      expect(attached.code).toBe(3);
      expect((await berth(["tasks", "rm", c])).stderr).toContain("exit with non-zero exit code 3");
      expect((await berth(["containers", "rm", c])).code).toBe(0);
      // ctr's fifo set for the task: removed by whoever made it; drop it so the directory check below holds
      for (const d of fifosLeft()) await rm(join(t.fifoDir, d), { recursive: true, force: true });
    });

    test("--runc-binary runs crun instead of runc", async () => {
      const r = await berth([
        "run",
        "--rm",
        ...fifo(),
        "--runc-binary",
        crunWrapper,
        IMAGE,
        id("cr1"),
        "sh",
        "-c",
        "echo crun; exit 7",
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("crun\n");
      expect(r.code).toBe(7);
    });

    test.skipIf(!shimBuilt)("--runtime io.containerd.berth.v2 runs Berth's shim", async () => {
      const r = await berth([
        "run",
        "--rm",
        ...fifo(),
        "--runtime",
        "io.containerd.berth.v2",
        IMAGE,
        id("bs1"),
        "sh",
        "-c",
        "echo shim; exit 8",
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("shim\n");
      expect(r.code).toBe(8);
    });

    test("env, cwd, read-only rootfs, hostname and mounts reach the process", async () => {
      const dir = await tempDir();
      await writeFile(join(dir, "f.txt"), "from-host\n");
      const r = await berth([
        "run",
        "--rm",
        ...fifo(),
        "--env",
        "A=1",
        "--env",
        "B=two words",
        "--cwd",
        "/tmp",
        "--read-only",
        "--hostname",
        "boxy",
        "--mount",
        `type=bind,src=${dir},dst=/host,options=rbind:ro`,
        IMAGE,
        id("r4"),
        "sh",
        "-c",
        'echo "$A|$B|$(pwd)|$(hostname)|$(cat /host/f.txt)"; touch /x 2>/dev/null || echo ro',
      ]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe("1|two words|/tmp|boxy|from-host\nro\n");
    });

    test("a tty: the process sees a terminal sized like ours", async () => {
      const cmd = [
        "stty cols 101 rows 33;",
        process.execPath,
        BERTH_BIN,
        "-a",
        t.socket,
        "run",
        "--rm",
        "-t",
        ...fifo(),
        IMAGE,
        id("r5"),
        "sh",
        "-c",
        "'sleep 0.3; tty; stty size; exit 4'",
      ];
      // `script` gives berth a pty of its own, as an interactive shell would
      const r = await runCommand("/usr/bin/script", ["-qec", cmd.join(" "), "/dev/null"], { timeoutMs: 30_000 });
      expect(r.stdout).toContain("/dev/pts/0");
      expect(r.stdout).toContain("33 101");
      expect(r.code).toBe(4);
    });

    test("-d, then tasks ls|ps|exec|pause|resume|metrics|kill|rm and containers info|label|rm", async () => {
      const c = id("d1");
      const run = await berth(["run", "-d", IMAGE, c, "sleep", "1000"]);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);

      const ls = await berth(["tasks", "ls"]);
      expect(ls.stdout).toBe((await ctr(t.socket, "tasks", "ls")).stdout);
      expect(ls.stdout).toMatch(new RegExp(`^${c}\\s+\\d+\\s+RUNNING$`, "m"));
      const pid = new RegExp(`^${c}\\s+(\\d+)`, "m").exec(ls.stdout)?.[1];

      const exec = await berth(["tasks", "exec", ...fifo(), "--exec-id", "e1", c, "sh", "-c", "ls /; exit 5"]);
      expect(exec.stdout.split("\n")).toEqual(expect.arrayContaining(["bin", "proc", "sys"]));
      expect(exec.code).toBe(5);
      const bg = await berth(["tasks", "exec", "-d", "--exec-id", "e2", c, "sleep", "100"]);
      expect(bg.code, bg.stderr).toBe(0);
      const ps = await berth(["tasks", "ps", c]);
      expect(ps.stdout).toBe((await ctr(t.socket, "tasks", "ps", c)).stdout);
      expect(ps.stdout).toMatch(new RegExp(`^${pid}\\s+-$`, "m"));
      expect(ps.stdout).toMatch(/&ProcessDetails\{ExecID:e2,/);

      expect((await berth(["tasks", "pause", c])).code).toBe(0);
      expect((await berth(["tasks", "ls"])).stdout).toMatch(new RegExp(`^${c}\\s+\\d+\\s+PAUSED$`, "m"));
      expect((await berth(["tasks", "resume", c])).code).toBe(0);
      const metrics = await berth(["tasks", "metrics", c]);
      expect(metrics.code, metrics.stderr).toBe(0);
      expect(metrics.stdout).toMatch(/^pids\.current\s+2\s*$/m);

      const info = await berth(["containers", "info", c]);
      expect(info.stdout).toBe((await ctr(t.socket, "containers", "info", c)).stdout);
      expect(JSON.parse(info.stdout).Spec.process.args).toEqual(["sleep", "1000"]);
      const label = await berth(["containers", "label", c, "x=y", "z=1"]);
      expect(label.stdout).toBe("io.containerd.image.config.stop-signal=SIGTERM,x=y,z=1\n");
      expect((await berth(["containers", "label", c, "z="])).stdout).toBe(
        "io.containerd.image.config.stop-signal=SIGTERM,x=y\n",
      );

      const rmRunning = await berth(["containers", "rm", c]);
      expect(rmRunning.code).toBe(1);
      expect(rmRunning.stderr).toContain("cannot delete a non stopped container");
      const taskRm = await berth(["tasks", "rm", c]);
      expect(taskRm.code).toBe(1);

      expect((await berth(["tasks", "kill", "--all", "-s", "KILL", c])).code).toBe(0);
      await waitUntil("the task to stop", async () =>
        /STOPPED/.test((await berth(["tasks", "ls"])).stdout) ? true : undefined,
      );
      const rm = await berth(["tasks", "rm", c]);
      expect(rm.code).toBe(0);
      expect(rm.stderr).toContain("exit with non-zero exit code 137");
      expect((await berth(["containers", "rm", c])).code).toBe(0);
      expect((await berth(["containers", "ls", "-q"])).stdout).not.toContain(c);
      expect((await ctr(t.socket, "snapshots", "ls")).stdout).not.toContain(c);
    });

    test("containers create, then tasks start runs it in the foreground", async () => {
      const c = id("s1");
      const created = await berth([
        "containers",
        "create",
        "--label",
        "who=me",
        IMAGE,
        c,
        "sh",
        "-c",
        "echo started; exit 2",
      ]);
      expect(created.code, created.stderr).toBe(0);
      const ls = await berth(["containers", "ls"]);
      expect(ls.stdout).toBe((await ctr(t.socket, "containers", "ls")).stdout);
      expect(ls.stdout).toMatch(new RegExp(`^${c}\\s+${IMAGE}\\s+io\\.containerd\\.runc\\.v2\\s+$`, "m"));
      const start = await berth(["tasks", "start", ...fifo(), c]);
      expect(start.stdout).toBe("started\n");
      expect(start.code).toBe(2);
      expect((await berth(["containers", "rm", c])).code).toBe(0);
    });

    test("snapshots prepare|mounts|commit|tree|info|label|usage|diff|rm", async () => {
      const k = id("k1");
      const prep = await berth(["snapshots", "prepare", "--mounts", k, chainID]);
      expect(prep.code, prep.stderr).toBe(0);
      expect(JSON.parse(prep.stdout)[0].type).toMatch(/overlay|bind/);
      const target = await tempDir();
      const mounts = await berth(["snapshots", "mounts", target, k]);
      expect(mounts.stdout).toBe((await ctr(t.socket, "snapshots", "mounts", target, k)).stdout);
      // the user's way: run the printed mount command, write into the snapshot, unmount
      const mounted = await runCommand("/bin/sh", [
        "-c",
        `${mounts.stdout.trim()} && echo hi > ${target}/hello.txt && umount ${target}`,
      ]);
      expect(mounted.code, mounted.stderr).toBe(0);

      const diff = await runCommand("/bin/sh", [
        "-c",
        `${process.execPath} ${BERTH_BIN} -a ${t.socket} snapshots diff ${k} | tar tzv`,
      ]);
      expect(diff.code, diff.stderr).toBe(0);
      expect(diff.stdout).toMatch(/hello\.txt/);

      const c1 = id("c1");
      expect((await berth(["snapshots", "commit", c1, k])).code).toBe(0);
      const tree = await berth(["snapshots", "tree"]);
      expect(tree.code, tree.stderr).toBe(0);
      expect(tree.stdout).toBe((await ctr(t.socket, "snapshots", "tree")).stdout);
      expect(tree.stdout).toContain(` ${chainID}\n`);
      expect(tree.stdout).toContain(`  \\_ ${c1}\n`);
      expect((await berth(["snapshots", "ls"])).stdout).toBe((await ctr(t.socket, "snapshots", "ls")).stdout);
      expect((await berth(["snapshots", "label", c1, "x=y"])).stdout).toMatch(/^containerd\.io\/gc\.root=.*,x=y\n$/);
      const info = await berth(["snapshots", "info", c1]);
      expect(info.stdout).toBe((await ctr(t.socket, "snapshots", "info", c1)).stdout);
      expect(JSON.parse(info.stdout)).toMatchObject({ Kind: "Committed", Name: c1, Parent: chainID });
      const usage = await berth(["snapshots", "usage", c1]);
      expect(usage.stdout).toBe((await ctr(t.socket, "snapshots", "usage", c1)).stdout);

      const parentRm = await berth(["snapshots", "rm", chainID]);
      expect(parentRm.code).toBe(1);
      expect(parentRm.stderr).toContain("failed precondition");
      expect((await berth(["snapshots", "rm", c1])).code).toBe(0);
      expect((await berth(["snapshots", "ls"])).stdout).not.toContain(c1);
    });

    test("an image that is not unpacked yet is unpacked by run", async () => {
      const ns = "berth-unpack";
      const imp = await ctrWith(t.socket, ["-n", ns, "images", "import", "--no-unpack", archive], {
        timeoutMs: 60_000,
      });
      expect(imp.code, imp.stderr).toBe(0);
      expect((await ctr(t.socket, "-n", ns, "snapshots", "ls")).stdout).not.toContain(chainID);
      const r = await berth(["-n", ns, "run", "--rm", ...fifo(), IMAGE, id("u1"), "cat", "/etc/group"], {
        timeoutMs: 60_000,
      });
      expect(r.stderr).toBe("");
      expect(r.stdout).toContain("root:x:0:");
      expect((await ctr(t.socket, "-n", ns, "snapshots", "ls")).stdout).toContain(chainID);
    });

    test("hostile and wrong input: clear errors, nothing left behind", async () => {
      const bad = await berth(["run", "--rm", ...fifo(), IMAGE, "../evil", "echo"]);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('identifier "../evil"');
      expect(bad.stderr).toContain("invalid argument");
      expect((await ctr(t.socket, "snapshots", "ls")).stdout).not.toContain("evil");

      const missing = await berth(["run", "--rm", ...fifo(), "docker.io/library/nope:latest", id("h1"), "echo"]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("not found");

      const otherNs = await berth(["-n", "berth-empty", "run", "--rm", ...fifo(), IMAGE, id("h2"), "echo"]);
      expect(otherNs.code).toBe(1);
      expect(otherNs.stderr).toContain("not found");

      const both = await berth(["run", "--rm", "-d", IMAGE, id("h3"), "echo"]);
      expect(both.stderr).toBe("berth: flags --detach and --rm cannot be specified together\n");

      const noCmd = await berth(["run", "--rm", ...fifo(), IMAGE, id("h4"), "/no/such/binary"]);
      expect(noCmd.code).not.toBe(0);
      expect(noCmd.stderr).toContain("no such file or directory");
      expect((await ctr(t.socket, "containers", "ls", "-q")).stdout).not.toContain(id("h4"));
      expect((await ctr(t.socket, "snapshots", "ls")).stdout).not.toContain(id("h4"));

      const dup = await berth(["containers", "create", IMAGE, id("h5"), "true"]);
      expect(dup.code).toBe(0);
      const again = await berth(["containers", "create", IMAGE, id("h5"), "true"]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain("already exists");
      expect((await berth(["containers", "rm", id("h5")])).code).toBe(0);

      const badExec = await berth(["tasks", "exec", "--exec-id", "bad/id", id("nothing"), "true"]);
      expect(badExec.code).toBe(1);
      expect(badExec.stderr).toContain("invalid argument");

      const gone = await berth(["tasks", "kill", id("nothing")]);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toContain("not found");
      expect(fifosLeft()).toEqual([]);
      expect(existsSync(t.fifoDir)).toBe(true);
    });
  });
});
