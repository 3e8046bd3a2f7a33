// Drives the real Go runc shim (containerd-shim-runc-v2 from containerd 1.6) over ttrpc.
// Runs only with BERTH_INTEGRATION=1 (see vitest.shared.ts) and as root (the shim checks SO_PEERCRED).
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, rmdir, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { isNotFound, isNotImplemented, isUnavailable } from "@berth/errdefs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  connectTtrpcClient,
  createTtrpcServer,
  createTtrpcServiceClient,
  NAMESPACE_METADATA_KEY,
  socketPathOf,
  type TtrpcClient,
  type TtrpcServer,
} from "../src/index.js";
import { ConnectRequestSchema, ConnectResponseSchema, Task } from "@berth/api/task/v2";

const SHIM = "/usr/bin/containerd-shim-runc-v2";
const NAMESPACE = "berthtest";
const isRoot = process.getuid?.() === 0;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A reparented shim may linger as a zombie if nothing reaps it; that counts as exited.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe.skipIf(!isRoot || !existsSync(SHIM))("Go runc shim over ttrpc", () => {
  let tmp: string;
  let bundle: string;
  let id: string;
  let logStream: Socket | undefined;
  const log: Buffer[] = [];
  let address = "";
  let shimPid = 0;
  let client: TtrpcClient | undefined;
  let eventsServer: TtrpcServer | undefined;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "berth-shim-"));
    id = `t${randomBytes(6).toString("hex")}`;
    bundle = join(tmp, id); // the bundle's basename must be the task id
    await mkdir(bundle, { mode: 0o700 });
    // `start` reads the spec only for its shim-grouping annotations.
    await writeFile(join(bundle, "config.json"), JSON.stringify({ ociVersion: "1.0.2", annotations: {} }));

    // The shim's log FIFO: must exist and have a reader before the shim starts.
    const logPath = join(bundle, "log");
    await new Promise<void>((resolve, reject) =>
      spawn("mkfifo", ["-m", "0700", logPath], { stdio: "ignore" }).once("exit", (code) =>
        code === 0 ? resolve() : reject(new Error(`mkfifo exited ${code}`)),
      ),
    );
    const fd = openSync(logPath, constants.O_RDWR | constants.O_NONBLOCK);
    logStream = new Socket({ fd, readable: true, writable: false });
    logStream.on("data", (c: Buffer) => log.push(c));
    logStream.on("error", () => {});

    // Where the shim would publish events (containerd's ttrpc socket).
    const grpcAddress = join(tmp, "fake.sock");
    eventsServer = createTtrpcServer();
    eventsServer.register("containerd.services.events.ttrpc.v1.Events", { Forward: async () => new Uint8Array() });
    await eventsServer.listen(`${grpcAddress}.ttrpc`);

    const child = spawn(
      SHIM,
      ["-namespace", NAMESPACE, "-address", grpcAddress, "-publish-binary", "/bin/true", "-id", id, "start"],
      { cwd: bundle, env: { ...process.env, TTRPC_ADDRESS: `${grpcAddress}.ttrpc` }, stdio: ["pipe", "pipe", "pipe"] },
    );
    child.stdin.end(); // no runtime options
    const out: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => out.push(c));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    const output = Buffer.concat(out).toString("utf8").trim();
    expect(code, output).toBe(0);
    expect(output).toMatch(/^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    address = output;
    expect(readFileSync(join(bundle, "address"), "utf8").trim()).toBe(address);

    client = await connectTtrpcClient(address, { metadata: { [NAMESPACE_METADATA_KEY]: NAMESPACE } });
  });

  afterAll(async () => {
    client?.close();
    if (shimPid > 0 && alive(shimPid)) {
      try {
        process.kill(shimPid, "SIGKILL");
      } catch {}
    }
    if (address !== "") await rm(socketPathOf(address), { force: true });
    await eventsServer?.close();
    logStream?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await rmdir(`/run/containerd/runc/${NAMESPACE}`).catch(() => {});
  });

  it("Connect returns the shim pid", async () => {
    const task = createTtrpcServiceClient(client as TtrpcClient, Task);
    const res = await task.connect({ id });
    expect(res.shimPid).toBeGreaterThan(0);
    shimPid = res.shimPid;
    expect(alive(shimPid)).toBe(true);
  });

  it("State of an unknown task is NotFound (code 5)", async () => {
    const task = createTtrpcServiceClient(client as TtrpcClient, Task);
    const err = await task.state({ id: "nope" }).catch((e: unknown) => e);
    expect(isNotFound(err)).toBe(true);
    expect((err as Error).message).toMatch(/not found/);
  });

  it("an unknown method is Unimplemented (code 12)", async () => {
    const err = await (client as TtrpcClient)
      .call("containerd.task.v2.Task", "Bogus", new Uint8Array())
      .catch((e: unknown) => e);
    expect(isNotImplemented(err)).toBe(true);
    expect((err as Error).message).toBe("method Bogus");
    const svc = await (client as TtrpcClient).call("no.such.Service", "X", new Uint8Array()).catch((e: unknown) => e);
    expect(isNotImplemented(svc)).toBe(true);
  });

  it("measures round trips", async () => {
    const c = client as TtrpcClient;
    const req = toBinary(ConnectRequestSchema, create(ConnectRequestSchema, { id }));
    for (let i = 0; i < 200; i++) await c.call("containerd.task.v2.Task", "Connect", req);
    const n = 3000;
    let t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await c.call("containerd.task.v2.Task", "Connect", req);
    const sequentialUs = Number(process.hrtime.bigint() - t0) / 1000 / n;

    const task = createTtrpcServiceClient(c, Task);
    t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await task.state({ id: "nope" }).catch(() => {});
    const stateUs = Number(process.hrtime.bigint() - t0) / 1000 / n;

    const total = 20_000;
    let next = 0;
    t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (next++ < total) await c.call("containerd.task.v2.Task", "Connect", req);
      }),
    );
    const perSec = total / (Number(process.hrtime.bigint() - t0) / 1e9);
    const last = fromBinary(ConnectResponseSchema, await c.call("containerd.task.v2.Task", "Connect", req));
    expect(last.shimPid).toBe(shimPid);
    process.stdout.write(
      `ttrpc → Go shim: Connect ${sequentialUs.toFixed(1)} µs/call sequential, ` +
        `State(NotFound) ${stateUs.toFixed(1)} µs/call, ${Math.round(perSec)} calls/s with 64 in flight\n`,
    );
    expect(sequentialUs).toBeLessThan(2000);
  });

  it("Shutdown makes the shim exit", async () => {
    const task = createTtrpcServiceClient(client as TtrpcClient, Task);
    // The shim may exit before its reply is flushed.
    await task.shutdown({ id }).catch((e: unknown) => {
      if (!isUnavailable(e)) throw e;
    });
    const deadline = Date.now() + 10_000;
    while (alive(shimPid) && Date.now() < deadline) await sleep(50);
    expect(alive(shimPid)).toBe(false);
    await sleep(50);
    expect(client?.closed).toBe(true);
  });
});
