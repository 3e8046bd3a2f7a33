/**
 * The same ctr commands against berthd and a private real containerd 1.6: what a user sees must match
 * (exit codes, error text, `ns ls` output). Version lines and UUIDs differ by design and are not compared.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  type Berthd,
  type Containerd,
  containerdSkipReason,
  ctr,
  startBerthd,
  startContainerd,
  stopAll,
} from "../src/harness.js";

const reason = containerdSkipReason();

describe.skipIf(reason !== undefined)(reason ? `ctr parity (skipped: ${reason})` : "ctr parity with containerd", () => {
  let berthd: Berthd;
  let containerd: Containerd;

  beforeAll(async () => {
    [berthd, containerd] = await Promise.all([startBerthd(), startContainerd()]);
  });
  afterAll(stopAll);

  /** Runs the command on both daemons; returns both results. */
  async function both(...args: string[]) {
    const [b, c] = await Promise.all([ctr(berthd.socket, ...args), ctr(containerd.socket, ...args)]);
    return { b, c };
  }

  test.each([
    ["create", ["namespaces", "create", "p", "a=1"]],
    ["duplicate create", ["namespaces", "create", "p"]],
    ["label", ["namespaces", "label", "p", "b=2"]],
    ["ls", ["namespaces", "ls"]],
    ["unlabel", ["namespaces", "label", "p", "a="]],
    ["label an unknown namespace", ["namespaces", "label", "implicit", "c=3"]],
    ["ls -q", ["namespaces", "ls", "-q"]],
    ["ls with labels", ["namespaces", "ls"]],
    ["invalid name", ["namespaces", "create", "A/B"]],
    ["too long", ["namespaces", "create", "n".repeat(77)]],
    ["label at the limit", ["namespaces", "create", "q", `k=${"v".repeat(4095)}`]],
    ["remove with labels", ["namespaces", "rm", "q"]],
    ["remove", ["namespaces", "rm", "p"]],
    ["remove the implicit one", ["namespaces", "rm", "implicit"]],
    ["remove missing", ["namespaces", "rm", "p"]],
    ["ls after", ["namespaces", "ls"]],
  ])("ctr %s matches containerd", async (_name, args) => {
    const { b, c } = await both(...args);
    expect({ code: b.code, stdout: b.stdout, stderr: b.stderr }).toEqual({
      code: c.code,
      stdout: c.stdout,
      stderr: c.stderr,
    });
  });

  // Known divergence: Berth words this as containerd 2.x does ("label key and value length (4097 bytes) …")
  // and without 1.6's "namespace.Labels: " prefix; the kind, the limit and the key must agree.
  test("ctr label too big fails like containerd", async () => {
    const { b, c } = await both("namespaces", "create", "r", `k=${"v".repeat(4096)}`);
    expect(b.code).toBe(c.code);
    expect(c.stderr).toMatch(/greater than maximum size \(4096 bytes\), key: k: invalid argument\n$/);
    expect(b.stderr).toMatch(/greater than maximum size \(4096 bytes\), key: k: invalid argument\n$/);
  });
});
