/**
 * `binary://` and `file://` log URIs with Berth's shim (io.containerd.berth.v2), driven by the real ctr, under a
 * real containerd 1.6.20 and under berthd. The logging binary is a shell script that records its arguments,
 * environment and what it reads on fd 3 (stdout) and fd 4 (stderr), after closing fd 5 (ready).
 */
import { chmodSync, existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Containers } from "@berth/api/services/containers/v1";
import { Snapshots } from "@berth/api/services/snapshots/v1";
import { Tasks } from "@berth/api/services/tasks/v1";
import { beforeAll, describe, expect, it } from "vitest";
import { busyboxSkipReason } from "../src/busybox.js";
import {
  BERTH_RUNTIME as RUNTIME,
  type CtrDaemon,
  berthShimSkipReason,
  berthdForCtr,
  containerdForCtr,
  useShimSuite,
} from "../src/containers.js";
import { type CommandResult, containerdSkipReason, tempDir, waitUntil, withClient } from "../src/harness.js";

const IMAGE = "docker.io/library/busybox:latest";
const NS = "logging";
const LINGER_MS = 400;
const READY_TIMEOUT_MS = 1500;

const skip =
  process.env.BERTH_INTEGRATION !== "1"
    ? "set BERTH_INTEGRATION=1"
    : (containerdSkipReason() ?? busyboxSkipReason() ?? berthShimSkipReason());

/**
 * The logger: its arguments are `out DIR [linger|hang 1]`; it records its initial environment, closes fd 5
 * (ready), then copies fd 3 and fd 4 to files. With `linger` it stays after EOF until it gets SIGTERM; with
 * `hang` it never reports ready.
 */
const LOGGER = `#!/bin/sh
dir="$2"
echo "$*" > "$dir/args"
tr '\\0' '\\n' < /proc/$$/environ | sort | tr '\\n' ' ' > "$dir/env"
trap '[ -n "$lp" ] && kill "$lp"; wait; echo term > "$dir/term"; exit 0' TERM
if [ "$3" = hang ]; then exec sleep 60; fi
exec 5>&-
cat <&3 > "$dir/stdout" &
cat <&4 > "$dir/stderr" &
wait
echo done > "$dir/done"
if [ "$3" = linger ]; then
  sleep 60 &
  lp=$!
  wait
fi
`;

function loggingSuite(name: string, startDaemon: () => Promise<CtrDaemon>): void {
  describe.skipIf(skip !== undefined)(`binary:// and file:// logs with Berth's shim under ${name}`, () => {
    const suite = useShimSuite({
      start: startDaemon,
      image: IMAGE,
      lingerMs: LINGER_MS,
      env: { BERTH_SHIM_LOGGER_READY_TIMEOUT_MS: String(READY_TIMEOUT_MS) },
      tempPrefix: "berth-shim-logging-",
    });
    let daemon: CtrDaemon;
    let logger: string;

    const ok = (res: CommandResult): string => {
      expect(res.stderr, `ctr failed (${res.code})`).not.toMatch(/^ctr: /m);
      expect(res.code).toBe(0);
      return res.stdout;
    };
    const read = (file: string) => readFileSync(file, "utf8");

    beforeAll(async () => {
      daemon = suite.daemon;
      logger = join(suite.dir, "logger.sh");
      await writeFile(logger, LOGGER);
      chmodSync(logger, 0o755);
    });

    it("hands stdout and stderr to the logging binary with its arguments and environment", async () => {
      const out = await tempDir("berth-shim-log-");
      const uri = `binary://${logger}?out=${encodeURIComponent(out)}&x=1`;
      const res = await daemon.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "--log-uri",
        uri,
        IMAGE,
        "lg1",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2; echo more-out; exit 3",
      ]);
      expect(res.code, res.stderr).toBe(3);
      expect(res.stdout).toBe(""); // everything went to the logger
      // the logger read EOF on both pipes when the process exited; it finished on its own, or the delete
      // (which does not wait for it) got there first and it finished on SIGTERM
      await waitUntil(
        "the logger to finish",
        () => (existsSync(join(out, "done")) || existsSync(join(out, "term")) ? true : undefined),
        5000,
      );
      expect(read(join(out, "stdout"))).toBe("to-out\nmore-out\n");
      expect(read(join(out, "stderr"))).toBe("to-err\n");
      expect(read(join(out, "args"))).toBe(`out ${out} x 1\n`);
      expect(read(join(out, "env"))).toBe(`CONTAINER_ID=lg1 CONTAINER_NAMESPACE=${NS} `);
    });

    it("stops a logger that outlives its task with SIGTERM at delete", async () => {
      const out = await tempDir("berth-shim-log-");
      const uri = `binary://${logger}?out=${encodeURIComponent(out)}&linger=1`;
      ok(
        await daemon.ctr([
          "run",
          "-d",
          "--runtime",
          RUNTIME,
          "--log-uri",
          uri,
          IMAGE,
          "lg2",
          "sh",
          "-c",
          "echo started; sleep 1000",
        ]),
      );
      await waitUntil("the logger to get output", () =>
        existsSync(join(out, "stdout")) && read(join(out, "stdout")) !== "" ? true : undefined,
      );
      expect(read(join(out, "stdout"))).toBe("started\n");
      ok(await daemon.ctr(["tasks", "kill", "-s", "SIGKILL", "lg2"]));
      await waitUntil(
        "lg2 to stop",
        async () => (/^lg2\s+\d+\s+STOPPED$/m.test((await daemon.ctr(["tasks", "ls"])).stdout) ? true : undefined),
        10_000,
      );
      // the logger read EOF when the process died, and lingers until the delete stops it
      await waitUntil("the logger to finish", () => (existsSync(join(out, "done")) ? true : undefined), 5000);
      expect(existsSync(join(out, "term"))).toBe(false);
      const started = Date.now();
      ok(await daemon.ctr(["tasks", "rm", "lg2"]));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(read(join(out, "term"))).toBe("term\n");
      ok(await daemon.ctr(["containers", "rm", "lg2"]));
    });

    it("gives a logging binary the output of a process with a terminal", async () => {
      // ctr cannot ask for a tty and a log URI together: Tasks.Create as another client would send it
      const out = await tempDir("berth-shim-log-");
      const uri = `binary://${logger}?out=${encodeURIComponent(out)}`;
      const id = "lt1";
      ok(
        await daemon.ctr([
          "containers",
          "create",
          "--runtime",
          RUNTIME,
          "-t",
          IMAGE,
          id,
          "busybox",
          "tty", // prints the terminal's name (ctr's -c would be its --config flag here)
        ]),
      );
      const opts = { namespace: NS };
      const { container } = await withClient(daemon.socket, Containers, (c) => c.get({ id }), opts);
      const { mounts } = await withClient(
        daemon.socket,
        Snapshots,
        (c) => c.mounts({ snapshotter: container?.snapshotter ?? "", key: container?.snapshotKey ?? "" }),
        opts,
      );
      const status = await withClient(
        daemon.socket,
        Tasks,
        async (c) => {
          await c.create({ containerId: id, rootfs: mounts, terminal: true, stdout: uri, stderr: uri });
          const exited = c.wait({ containerId: id });
          await c.start({ containerId: id });
          const { exitStatus } = await exited;
          await c.delete({ containerId: id });
          return exitStatus;
        },
        opts,
      );
      expect(status).toBe(0);
      await waitUntil(
        "the logger to finish",
        () => (existsSync(join(out, "done")) || existsSync(join(out, "term")) ? true : undefined),
        5000,
      );
      expect(read(join(out, "stdout"))).toMatch(/^\/dev\/pts\/\d+\r\n$/);
      expect(read(join(out, "stderr"))).toBe("");
      expect(read(join(out, "env"))).toBe(`CONTAINER_ID=${id} CONTAINER_NAMESPACE=${NS} `);
      ok(await daemon.ctr(["containers", "rm", id]));
    });

    it("refuses a binary:// URI without a binary and fails a logger that cannot start", async () => {
      const bad = await daemon.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "--log-uri",
        "binary://",
        IMAGE,
        "lg3",
        "true",
      ]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/names no logging binary|invalid/i);
      const missing = await daemon.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "--log-uri",
        "binary:///nonexistent/berth-logger",
        IMAGE,
        "lg4",
        "true",
      ]);
      expect(missing.code).not.toBe(0);
      expect(missing.stderr).toMatch(/berth-logger/);
      // a logger that never reports ready fails the create after the (shortened) ready timeout
      const out = await tempDir("berth-shim-log-");
      const started = Date.now();
      const hung = await daemon.ctr([
        "run",
        "--runtime",
        RUNTIME,
        "--rm",
        "--log-uri",
        `binary://${logger}?out=${encodeURIComponent(out)}&hang=1`,
        IMAGE,
        "lg5",
        "sh",
        "-c",
        "exit 0",
      ]);
      expect(hung.code).not.toBe(0);
      expect(hung.stderr).toMatch(/not ready within 1500 ms/);
      expect(Date.now() - started).toBeLessThan(READY_TIMEOUT_MS + 8000);
      for (const id of ["lg3", "lg4", "lg5"]) await daemon.ctr(["containers", "rm", id]);
      expect(ok(await daemon.ctr(["tasks", "ls", "-q"]))).toBe("");
    });

    it("appends stdout and stderr to a file:// log", async () => {
      const out = await tempDir("berth-shim-log-");
      const file = join(out, "sub", "ctr.log");
      for (const [id, word] of [
        ["lf1", "first"],
        ["lf2", "second"],
      ] as const) {
        const res = await daemon.ctr([
          "run",
          "--runtime",
          RUNTIME,
          "--rm",
          "--log-uri",
          `file://${file}`,
          IMAGE,
          id,
          "sh",
          "-c",
          `echo ${word}-out; echo ${word}-err >&2`,
        ]);
        expect(res.code, res.stderr).toBe(0);
      }
      expect(read(file).split("\n").sort()).toEqual(["", "first-err", "first-out", "second-err", "second-out"]);
    });
  });
}

loggingSuite("containerd 1.6.20", () => containerdForCtr(NS));

loggingSuite("berthd", () => berthdForCtr(NS));
