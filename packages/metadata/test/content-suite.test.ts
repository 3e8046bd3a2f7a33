import { contentSuite } from "@berth/content-store/testsuite";
import { GarbageCollector } from "../src/index.js";
import { fixture } from "./helpers.js";

const DAY = 24 * 60 * 60 * 1000;

// The namespaced content store (over a local backend) keeps the whole ContentStore contract.
contentSuite("metadata (namespaced over local)", async () => {
  const f = await fixture();
  return {
    store: f.cs,
    cleanup: () => f.dispose(),
    // Abandoned ingests outside a lease expire after a day: a collection two days later removes them.
    expireAbandonedIngests: async () => {
      await new GarbageCollector(f.db, { now: () => Date.now() + 2 * DAY }).collect();
    },
  };
});

// The same contract in a second namespace of a database whose backend already holds other namespaces' data.
contentSuite(
  "metadata (second namespace)",
  async () => {
    const f = await fixture();
    const other = { namespace: "other" };
    const w = await f.cs.writer(other, { ref: "unrelated" });
    await w.write(Buffer.from("another namespace's ingest"));
    await w.close();
    return { store: f.cs, cleanup: () => f.dispose() };
  },
  { ctx: { namespace: "second" } },
);
