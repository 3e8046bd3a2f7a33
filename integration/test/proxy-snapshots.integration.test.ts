/**
 * A snapshotter in another process as a `[proxy_plugins]` entry (`type = "snapshot"`): a stand-alone process
 * serves a native snapshotter named "remote"; berthd uses it through the proxy client, namespaced by its own
 * metadata like a built-in one, and its garbage collector removes what no namespace records.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type Berthd,
  REPO_ROOT,
  ctr,
  normalise,
  skipReason,
  startBerthd,
  stopAll,
  tempDir,
  triggerGc,
  waitUntil,
} from "../src/harness.js";

const reason = skipReason();

describe.skipIf(reason !== undefined)(
  reason ? `proxy snapshotter (skipped: ${reason})` : "proxy snapshotter plugin",
  () => {
    let server: ChildProcess | undefined;
    let front: Berthd;
    let root: string;

    beforeAll(async () => {
      const dir = await tempDir();
      const socket = join(dir, "snapshotter.sock");
      root = join(dir, "remote");
      const child = spawn(
        process.execPath,
        [join(REPO_ROOT, "integration/src/snapshotter-server.mjs"), socket, root, "remote"],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      server = child;
      let err = "";
      child.stderr?.setEncoding("utf8").on("data", (c: string) => {
        err += c;
      });
      await new Promise<void>((resolve, reject) => {
        child.stdout?.setEncoding("utf8").on("data", (c: string) => {
          if (c.includes("ready")) resolve();
        });
        child.once("exit", (code) => reject(new Error(`snapshotter server exited (${code}): ${err}`)));
      });
      front = await startBerthd({
        config: [
          "version = 2",
          "[proxy_plugins.remote]",
          '  type = "snapshot"',
          `  address = ${JSON.stringify(socket)}`,
          "",
        ].join("\n"),
      });
    });
    afterAll(async () => {
      await stopAll();
      // only the process this file started, by its PID
      if (server !== undefined && server.exitCode === null && server.signalCode === null) {
        const done = new Promise((r) => server?.once("exit", r));
        server.kill("SIGTERM");
        await done;
      }
    });

    test("plugins ls lists the proxy as a snapshotter", async () => {
      const out = await ctr(front.socket, "plugins", "ls");
      expect(out.code).toBe(0);
      expect(out.stdout).toMatch(/io\.containerd\.snapshotter\.v1\s+remote\s+-\s+ok/);
    });

    test("ctr snapshots work through the proxy, namespaced by berthd, and GC reaches the remote", async () => {
      const snap = (ns: string, ...args: string[]) =>
        ctr(front.socket, "-n", ns, "snapshots", "--snapshotter", "remote", ...args);
      expect((await snap("a", "prepare", "k1")).code).toBe(0);
      expect((await snap("a", "commit", "c1", "k1")).code).toBe(0);
      expect((await snap("a", "prepare", "k2", "c1")).code).toBe(0);
      expect((await snap("b", "prepare", "k1")).code).toBe(0);
      expect(normalise((await snap("a", "ls")).stdout)).toEqual(["KEY PARENT KIND", "c1 Committed", "k2 c1 Active"]);
      expect(normalise((await snap("b", "ls")).stdout)).toEqual(["KEY PARENT KIND", "k1 Active"]);
      const mounts = await snap("a", "mounts", "/mnt", "k2");
      expect(mounts.stdout).toContain(join(root, "snapshots"));
      const rm = await snap("a", "rm", "c1");
      expect(rm.code).not.toBe(0);
      expect(rm.stderr).toContain("failed precondition");
      const dirs = () => (existsSync(join(root, "snapshots")) ? readdirSync(join(root, "snapshots")).length : 0);
      expect(dirs()).toBe(3);
      expect((await snap("a", "rm", "k2")).code).toBe(0);
      expect((await snap("a", "rm", "c1")).code).toBe(0);
      await triggerGc(front.socket, "a");
      await waitUntil("the remote snapshots to be removed", () => (dirs() === 1 ? true : undefined));
      expect(normalise((await snap("b", "ls")).stdout)).toEqual(["KEY PARENT KIND", "k1 Active"]);
    });
  },
);
