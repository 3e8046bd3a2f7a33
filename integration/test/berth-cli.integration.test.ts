/**
 * The `berth` CLI against berthd and against a private real containerd 1.6: the same commands give the same
 * results. Versions and UUIDs differ by design; plugin lists differ in content, not in format.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  BERTH_VERSION,
  type Berthd,
  type Containerd,
  berth,
  containerdSkipReason,
  ctr,
  sleep,
  startBerthd,
  startContainerd,
  stopAll,
} from "../src/harness.js";
import { spawn } from "node:child_process";
import { BERTH_BIN } from "../src/harness.js";

const reason = containerdSkipReason();

describe.skipIf(reason !== undefined)(reason ? `berth CLI parity (skipped: ${reason})` : "berth CLI parity", () => {
  let berthd: Berthd;
  let containerd: Containerd;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([startBerthd(), startContainerd()]);
  });
  afterAll(stopAll);

  async function both(...args: string[]) {
    const [b, c] = await Promise.all([berth(berthd.socket, ...args), berth(containerd.socket, ...args)]);
    return { b, c };
  }

  test("version reports each server's version and UUID", async () => {
    const { b, c } = await both("version");
    expect(b.code).toBe(0);
    expect(c.code).toBe(0);
    expect(b.stdout).toMatch(new RegExp(`Server:\\s+Version:\\s+${BERTH_VERSION.replace(/\./g, "\\.")}`));
    expect(c.stdout).toMatch(/Server:\s+Version:\s+1\.6\./);
    for (const out of [b.stdout, c.stdout]) expect(out).toMatch(/UUID: [0-9a-f-]{36}/);
    const json = JSON.parse((await berth(berthd.socket, "--json", "version")).stdout);
    expect(json.server.version).toBe(BERTH_VERSION);
  });

  test("plugins ls prints what ctr prints, on both daemons", async () => {
    for (const socket of [berthd.socket, containerd.socket]) {
      const [mine, theirs] = await Promise.all([berth(socket, "plugins", "ls"), ctr(socket, "plugins", "ls")]);
      expect(mine.code).toBe(0);
      expect(mine.stdout).toBe(theirs.stdout);
    }
    const filtered = await berth(berthd.socket, "plugins", "ls", "type==io.containerd.grpc.v1");
    expect(filtered.stdout).toMatch(/io\.containerd\.grpc\.v1\s+namespaces\s+-\s+ok/);
    expect(filtered.stdout).not.toMatch(/io\.containerd\.metadata\.v1/);
  });

  test("namespaces create, label, ls, rm give the same output", async () => {
    const steps: string[][] = [
      ["namespaces", "create", "cli-a", "k=v"],
      ["namespaces", "create", "cli-a"],
      ["namespaces", "label", "cli-a", "x=y"],
      ["namespaces", "label", "cli-a", "k="],
      ["namespaces", "ls"],
      ["namespaces", "ls", "-q"],
      ["namespaces", "create", "A/B"],
      ["namespaces", "rm", "cli-a"],
      ["namespaces", "ls", "-q"],
    ];
    for (const step of steps) {
      const { b, c } = await both(...step);
      expect({ step, code: b.code, stdout: b.stdout }).toEqual({ step, code: c.code, stdout: c.stdout });
      expect(b.stderr.replace(/\s+/g, " "), step.join(" ")).toBe(c.stderr.replace(/\s+/g, " "));
    }
  });

  test("events prints the same event lines", async () => {
    const watch = (socket: string) => {
      const child = spawn(process.execPath, [BERTH_BIN, "-a", socket, "events"], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (s: string) => {
        out += s;
      });
      return { child, out: () => out };
    };
    const wb = watch(berthd.socket);
    const wc = watch(containerd.socket);
    try {
      await sleep(1500);
      await both("namespaces", "create", "cli-ev", "a=1");
      await both("namespaces", "label", "cli-ev", "b=2");
      await both("namespaces", "rm", "cli-ev");
      for (
        let i = 0;
        i < 50 && !(wb.out().includes("/namespaces/delete") && wc.out().includes("/namespaces/delete"));
        i++
      ) {
        await sleep(100);
      }
      // Lines are "<timestamp> UTC <namespace> <topic> <event JSON>"; the timestamps differ.
      const strip = (s: string) =>
        s
          .trim()
          .split("\n")
          .map((l) => l.replace(/^.* UTC /, ""));
      expect(strip(wb.out())).toEqual(strip(wc.out()));
      expect(strip(wb.out())).toEqual([
        'default /namespaces/create {"name":"cli-ev","labels":{"a":"1"}}',
        'default /namespaces/update {"name":"cli-ev","labels":{"b":"2"}}',
        'cli-ev /namespaces/delete {"name":"cli-ev"}',
      ]);
    } finally {
      wb.child.kill("SIGTERM");
      wc.child.kill("SIGTERM");
    }
  });
});
