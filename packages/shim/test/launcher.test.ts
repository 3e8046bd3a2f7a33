/**
 * The native launcher's side of the runtime v2 shim protocol, without a daemon: `start` prints an address
 * and writes `address` and `shim.pid` in the bundle (its cwd), one server answers every start of the same
 * daemon and namespace, and the idle server exits; `delete` prints a DeleteResponse.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { DeleteResponseSchema, Task } from "@berth/api/task/v2";
import { connectTtrpcClient, createTtrpcServiceClient } from "@berth/ttrpc";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LAUNCHER_PATH } from "../src/native.js";

const skip =
  process.getuid?.() !== 0 ? "needs root (subreaper, mounts)" : !existsSync(LAUNCHER_PATH) ? "not built" : undefined;

interface Result {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function launcher(args: string[], cwd: string, env: Record<string, string>): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      LAUNCHER_PATH,
      args,
      { cwd, env: { ...process.env, ...env }, encoding: "buffer", timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
        resolve({ code, stdout, stderr: stderr.toString() });
      },
    );
  });
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

describe.skipIf(skip !== undefined)("containerd-shim-berth-v2 launcher", () => {
  let dir: string;
  let env: Record<string, string>;
  const started = new Set<number>();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "berth-shim-launcher-"));
    env = {
      BERTH_SHIM_SOCKET_DIR: join(dir, "s"),
      BERTH_SHIM_LINGER_MS: "1500",
      TTRPC_ADDRESS: join(dir, "no-daemon.sock.ttrpc"),
    };
  });

  afterEach(async () => {
    for (const pid of started) if (alive(pid)) process.kill(pid, "SIGKILL");
    started.clear();
    rmSync(dir, { recursive: true, force: true });
  });

  const common = (id: string, ns = "default") => [
    "-namespace",
    ns,
    "-address",
    join(dir, "d.sock"),
    "-publish-binary",
    "/bin/false",
    "-id",
    id,
  ];

  it("start: one shared server per daemon and namespace, address and shim.pid in the bundle", async () => {
    const a = await launcher([...common("a"), "start"], dir, env);
    expect(a.stderr).toBe("");
    expect(a.code).toBe(0);
    const address = a.stdout.toString();
    expect(address).toMatch(new RegExp(`^unix://${join(dir, "s")}/berth-[0-9a-f]{16}$`));
    expect(readFileSync(join(dir, "address"), "utf8")).toBe(address);
    const pid = Number(readFileSync(join(dir, "shim.pid"), "utf8"));
    started.add(pid);
    expect(alive(pid)).toBe(true);

    const b = await launcher([...common("b"), "start"], dir, env);
    expect(b.stdout.toString()).toBe(address);
    expect(Number(readFileSync(join(dir, "shim.pid"), "utf8"))).toBe(pid);

    const client = await connectTtrpcClient(address.slice("unix://".length), {
      metadata: { "containerd-namespace-ttrpc": ["default"] },
    });
    try {
      const task = createTtrpcServiceClient(client, Task);
      const res = await task.connect({ id: "a" });
      expect(res.shimPid).toBe(pid);
      expect(res.taskPid).toBe(0);
      await task.shutdown({ id: "a" });
    } finally {
      client.close();
    }
    const other = await launcher([...common("c", "other-ns"), "start"], dir, env);
    expect(other.stdout.toString()).not.toBe(address);
    started.add(Number(readFileSync(join(dir, "shim.pid"), "utf8")));
    // nothing to serve: the server goes away and takes its socket with it
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive(pid)).toBe(false);
    expect(existsSync(address.slice("unix://".length))).toBe(false);
  }, 40_000);

  it("delete: a DeleteResponse for a container the runtime does not know", async () => {
    const res = await launcher([...common("gone"), "-bundle", dir, "delete"], "/", env);
    expect(res.code).toBe(0);
    const msg = fromBinary(DeleteResponseSchema, res.stdout);
    expect(msg.exitStatus).toBe(137);
    expect(Number(msg.exitedAt?.seconds)).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it("refuses unknown actions and flags, and start without a namespace", async () => {
    expect((await launcher([...common("x"), "frobnicate"], dir, env)).code).toBe(1);
    const bad = await launcher(["-nope", "1", "start"], dir, env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("flag provided but not defined: -nope");
    const noNs = await launcher(["-id", "x", "start"], dir, env);
    expect(noNs.code).toBe(1);
    expect(noNs.stderr).toContain("-namespace is required");
    const version = await launcher(["-v"], dir, env);
    expect(version.stdout.toString()).toContain("containerd-shim-berth-v2");
  });
});
