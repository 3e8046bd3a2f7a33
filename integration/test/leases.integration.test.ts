/**
 * Leases with the real `ctr`, on berthd and on a private real containerd 1.6: what `ctr leases` prints, and what
 * a lease keeps from the garbage collector (and for how long).
 */
import { Leases } from "@berth/api/services/leases/v1";
import { describe, expect, test } from "vitest";
import { useDaemonPair } from "../src/daemon-pair.js";
import {
  containerdSkipReason,
  contentDigests,
  ctr,
  ctrWith,
  grpcIngest,
  sha256,
  triggerGc,
  waitGone,
  withClient,
} from "../src/harness.js";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

const reason = containerdSkipReason();

/** ctr output with RFC 3339 times masked (creation times and gc.expire labels tick). */
const maskTimes = (text: string): string =>
  text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g, "<time>");

describe.skipIf(reason !== undefined)(
  reason ? `leases with ctr (skipped: ${reason})` : "leases with ctr on berthd and containerd",
  () => {
    const pair = useDaemonPair();
    const daemons = () => pair.daemons();

    test.each([
      ["create", ["create", "--id", "l1", "a=b"]],
      ["create a duplicate", ["create", "--id", "l1"]],
      ["create without expiry, a label without value", ["create", "--id", "l2", "--expires", "0", "x=y", "z"]],
      ["create with an id that is no identifier", ["create", "--id", "odd/id:1", "--expires", "1h"]],
      ["ls", ["ls"]],
      ["ls -q", ["ls", "-q"]],
      ["ls by label", ["ls", "labels.a==b"]],
      ["ls by id", ["ls", "id==l2"]],
      ["ls by a bad filter", ["ls", "id=="]],
      ["rm two", ["rm", "l1", "odd/id:1"]],
      ["rm a missing one", ["rm", "l1"]],
      ["rm --sync", ["rm", "--sync", "l2"]],
      ["ls when empty", ["ls"]],
    ])("ctr leases %s prints what containerd prints", async (_name, args) => {
      const [b, c] = await Promise.all(daemons().map(([, s]) => ctr(s, "-n", "lease-cli", "leases", ...args)));
      expect({ code: b?.code, stdout: maskTimes(b?.stdout ?? ""), stderr: b?.stderr }).toEqual({
        code: c?.code,
        stdout: maskTimes(c?.stdout ?? ""),
        stderr: c?.stderr,
      });
    });

    test("ctr leases create without --id gets a generated id like containerd's", async () => {
      for (const [name, socket] of daemons()) {
        const res = await ctr(socket, "-n", "lease-gen", "leases", "create");
        expect({ name, code: res.code, stderr: res.stderr }).toEqual({ name, code: 0, stderr: "" });
        // leases.WithRandomID: <nanoseconds within the second>-<base64url of 3 random bytes>
        expect(res.stdout, name).toMatch(/^\d{1,9}-[A-Za-z0-9_-]{4}\n$/);
        const ls = await ctr(socket, "-n", "lease-gen", "leases", "ls", "-q");
        expect(ls.stdout).toBe(res.stdout);
        expect((await ctr(socket, "-n", "lease-gen", "leases", "rm", res.stdout.trim())).code).toBe(0);
      }
    });

    test("a blob held only by a lease survives collections until the lease is deleted", async () => {
      const held = Buffer.from(`held by a lease ${Date.now()}\n`);
      const loose = Buffer.from(`held by nothing ${Date.now()}\n`);
      const loosePath = join(pair.dir, "loose");
      await writeFile(loosePath, loose);
      const resources: Record<string, unknown> = {};
      for (const [name, socket] of daemons()) {
        const created = await ctr(socket, "leases", "create", "--id", "hold", "purpose=test");
        expect(created.code, created.stderr).toBe(0);
        const digest = await grpcIngest(socket, { ref: "held", data: held, lease: "hold" });
        expect(digest).toBe(sha256(held));
        resources[name] = await withClient(socket, Leases, (cl) => cl.listResources({ id: "hold" }), {
          namespace: "default",
        }).then((r) => r.resources.map((x) => ({ id: x.id, type: x.type })));

        // a collection runs (the loose blob goes); the leased one stays
        const res = await ctrWith(socket, ["content", "ingest", "loose"], { stdinFile: loosePath });
        expect(res.code, res.stderr).toBe(0);
        await triggerGc(socket);
        await waitGone(socket, sha256(loose));
        expect(await contentDigests(socket), name).toContain(digest);
        const ls = await ctr(socket, "leases", "ls");
        expect(ls.stdout).toMatch(/^hold\s+\S+\s+containerd\.io\/gc\.expire=\S+,purpose=test\s*$/m);

        // deleting the lease frees it: gone after the collection that the deletion schedules
        const rm = await ctr(socket, "leases", "rm", "hold");
        expect({ code: rm.code, stdout: rm.stdout }).toEqual({ code: 0, stdout: "hold\n" });
        await waitGone(socket, digest);
      }
      expect(resources.berthd).toEqual([{ id: sha256(held), type: "content" }]);
      expect(resources.berthd).toEqual(resources.containerd);
    });

    test("ctr leases rm --sync returns after the collection: the blob is already gone", async () => {
      const held = Buffer.from(`sync ${Date.now()}\n`);
      for (const [name, socket] of daemons()) {
        expect((await ctr(socket, "leases", "create", "--id", "sync-hold")).code).toBe(0);
        const digest = await grpcIngest(socket, { ref: "sync-held", data: held, lease: "sync-hold" });
        expect(await contentDigests(socket), name).toContain(digest);
        const rm = await ctr(socket, "leases", "rm", "--sync", "sync-hold");
        expect(rm.code, rm.stderr).toBe(0);
        expect(await contentDigests(socket), name).not.toContain(digest);
      }
    });

    test("an expired lease protects nothing, and is removed by the collector", async () => {
      const held = Buffer.from(`expired ${Date.now()}\n`);
      const after: Record<string, string> = {};
      for (const [name, socket] of daemons()) {
        const created = await ctr(
          socket,
          "-n",
          "lease-exp",
          "leases",
          "create",
          "--id",
          "old",
          "--expires",
          "0",
          "containerd.io/gc.expire=2001-01-01T00:00:00Z",
        );
        expect(created.code, created.stderr).toBe(0);
        const digest = await grpcIngest(socket, { namespace: "lease-exp", ref: "expired", data: held, lease: "old" });
        await triggerGc(socket, "lease-exp");
        await waitGone(socket, digest, "lease-exp");
        after[name] = (await ctr(socket, "-n", "lease-exp", "leases", "ls", "-q")).stdout;
      }
      expect(after.berthd).toBe(after.containerd);
    });
  },
);
