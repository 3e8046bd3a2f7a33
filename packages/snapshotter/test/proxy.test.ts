import { isInvalidArgument, isNotImplemented } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import { createNativeSnapshotter } from "../src/native/index.js";
import { createOverlaySnapshotter } from "../src/overlay/index.js";
import { createSnapshotterClient } from "../src/proxy/index.js";
import type { Ctx, Snapshotter } from "../src/snapshotter.js";
import { snapshotterSuite } from "../src/testsuite/index.js";
import { removeRoot, serve, tempRoot } from "./helpers.js";

snapshotterSuite("overlayfs through the gRPC client", async () => {
  const root = await tempRoot("berth-proxy-overlay-");
  const backend = createOverlaySnapshotter({ root });
  const transport = serve(new Map([["overlayfs", backend]]));
  return {
    snapshotter: createSnapshotterClient(transport, "overlayfs"),
    cleanup: async () => {
      await backend.close();
      await removeRoot(root);
    },
  };
});

snapshotterSuite(
  "native through the gRPC client, no namespace",
  async () => {
    const root = await tempRoot("berth-proxy-native-");
    const backend = createNativeSnapshotter({ root });
    const transport = serve(new Map([["native", backend]]));
    return {
      snapshotter: createSnapshotterClient(transport, "native"),
      cleanup: async () => {
        await backend.close();
        await removeRoot(root);
      },
    };
  },
  { ctx: { namespace: "" } },
);

const ctx: Ctx = { namespace: "default" };

describe("snapshots service", () => {
  it("rejects a missing or unknown snapshotter name with InvalidArgument", async () => {
    const root = await tempRoot("berth-proxy-names-");
    const backend = createNativeSnapshotter({ root });
    try {
      const transport = serve(new Map([["native", backend]]));
      const missing = await createSnapshotterClient(transport, "")
        .stat(ctx, "a")
        .catch((e: unknown) => e);
      expect(isInvalidArgument(missing)).toBe(true);
      expect((missing as Error).message).toContain("snapshotter argument missing");
      const unknown = await createSnapshotterClient(transport, "zfs")
        .stat(ctx, "a")
        .catch((e: unknown) => e);
      expect(isInvalidArgument(unknown)).toBe(true);
      expect((unknown as Error).message).toContain("snapshotter not loaded: zfs");
    } finally {
      await backend.close();
      await removeRoot(root);
    }
  });

  it("answers Cleanup with Unimplemented for a snapshotter without it", async () => {
    const bare: Snapshotter = {
      stat: async () => {
        throw new Error("unused");
      },
      update: async () => {
        throw new Error("unused");
      },
      usage: async () => ({ size: 0, inodes: 0 }),
      mounts: async () => [],
      prepare: async () => [],
      view: async () => [],
      commit: async () => {},
      remove: async () => {},
      walk: async () => {},
      close: async () => {},
    };
    const client = createSnapshotterClient(serve(new Map([["bare", bare]])), "bare");
    const err = await client.cleanup(ctx).catch((e: unknown) => e);
    expect(isNotImplemented(err)).toBe(true);
  });

  it("reports prepare, commit and remove to the event hooks", async () => {
    const root = await tempRoot("berth-proxy-events-");
    const backend = createNativeSnapshotter({ root });
    const events: string[] = [];
    try {
      const transport = serve(new Map([["native", backend]]), {
        onPrepare: (c, e) => events.push(`prepare ${c.namespace} ${e.snapshotter} ${e.key} ${e.parent}`),
        onCommit: (_c, e) => events.push(`commit ${e.key} ${e.name}`),
        onRemove: (_c, e) => events.push(`remove ${e.key}`),
      });
      const client = createSnapshotterClient(transport, "native");
      await client.prepare(ctx, "a", "");
      await client.commit(ctx, "c1", "a");
      await client.remove(ctx, "c1");
      await client.prepare(ctx, "a", "missing").catch(() => {});
      expect(events).toEqual(["prepare default native a ", "commit a c1", "remove c1"]);
    } finally {
      await backend.close();
      await removeRoot(root);
    }
  });
});
