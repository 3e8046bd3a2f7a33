import { describe, expect, it } from "vitest";
import { createContentClient } from "../src/proxy/index.js";
import { contentSuite } from "../src/testsuite/index.js";
import { serveLocal } from "./helpers.js";

// The namespace travels in a transport interceptor (as the CLI sets it); the Ctx carries none.
contentSuite(
  "proxy over in-memory gRPC",
  async () => {
    const served = await serveLocal({ namespace: "testsuite" });
    return {
      store: createContentClient(served.transport),
      cleanup: served.cleanup,
      expireAbandonedIngests: async () => {
        await served.local.expireIngests(new Date(Date.now() + 60_000));
      },
    };
  },
  { ctx: { namespace: "" } },
);

// The Ctx's namespace becomes the header.
contentSuite("proxy with the namespace from the Ctx", async () => {
  const served = await serveLocal();
  return { store: createContentClient(served.transport), cleanup: served.cleanup };
});

describe("proxy", () => {
  it("fails without a namespace with FailedPrecondition", async () => {
    const served = await serveLocal();
    try {
      const client = createContentClient(served.transport);
      await expect(client.listStatuses({ namespace: "" })).rejects.toMatchObject({
        message: expect.stringContaining("namespace is required"),
      });
      const { isFailedPrecondition } = await import("@berth/errdefs");
      const err = await client.walk({ namespace: "" }, () => {}).catch((e: unknown) => e);
      expect(isFailedPrecondition(err)).toBe(true);
    } finally {
      await served.cleanup();
    }
  });
});
