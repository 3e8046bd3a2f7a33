import fs from "node:fs";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyLayerInWorker } from "../src/index.js";
import { idleWorkerCount } from "../src/worker-apply.js";
import { type Sandbox, chunks, makeTar, sandbox } from "./helpers.js";

describe("applyLayerInWorker", () => {
  let box: Sandbox;
  beforeEach(() => {
    box = sandbox();
  });
  afterEach(() => box.cleanup());

  it("applies on a worker, keeps it for the next layer, and ends it after a few idle seconds", async () => {
    const layer = await makeTar([
      { name: "etc/", type: "directory" },
      { name: "etc/hello", body: "from a worker\n" },
    ]);
    const r = await applyLayerInWorker(box.root, chunks(layer, 4096));
    expect(r.size).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(box.root, "etc/hello"), "utf8")).toBe("from a worker\n");
    expect(idleWorkerCount()).toBe(1);
    // an idle worker holds its own heap and malloc arena: a daemon at rest must not keep it
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    expect(idleWorkerCount()).toBe(0);
  }, 15_000);
});
