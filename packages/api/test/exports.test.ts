import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as eventsIndex from "../src/events/index.js";
import * as containerEvents from "../src/gen/containerd/events/container_pb.js";
import * as contentEvents from "../src/gen/containerd/events/content_pb.js";
import * as namespaceEvents from "../src/gen/containerd/events/namespace_pb.js";
import * as snapshotEvents from "../src/gen/containerd/events/snapshot_pb.js";
import * as taskEvents from "../src/gen/containerd/events/task_pb.js";
import * as descriptor from "../src/gen/containerd/types/descriptor_pb.js";
import * as metrics from "../src/gen/containerd/types/metrics_pb.js";
import * as mount from "../src/gen/containerd/types/mount_pb.js";
import * as platform from "../src/gen/containerd/types/platform_pb.js";
import { apiFiles, apiRegistry } from "../src/registry.js";
import * as typesIndex from "../src/types/index.js";

const pkgDir = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(`${pkgDir}/package.json`, "utf8")) as {
  exports: Record<string, { types: string; default: string } | string | null>;
};

describe("subpath index files", () => {
  // The hand-written aggregate indexes list names explicitly; fail when a generated file grows.
  it("./types re-exports every value of the containerd.types files", () => {
    const expected = { ...descriptor, ...metrics, ...mount, ...platform };
    expect(Object.keys(typesIndex).sort()).toEqual(Object.keys(expected).sort());
  });

  it("./events re-exports every value of the containerd.events files", () => {
    const generated = { ...containerEvents, ...contentEvents, ...namespaceEvents, ...snapshotEvents, ...taskEvents };
    for (const name of Object.keys(generated)) {
      expect(eventsIndex, name).toHaveProperty(name);
    }
    expect(eventsIndex.ImageCreateSchema.typeName).toBe("containerd.services.images.v1.ImageCreate");
  });
});

describe("package.json exports", () => {
  it("every subpath points at a source file that exists", () => {
    for (const [subpath, target] of Object.entries(pkg.exports)) {
      if (target === null || typeof target === "string") continue;
      expect(target.types, subpath).toBe(target.default.replace(/\.js$/, ".d.ts"));
      const source = target.default.replace(/^\.\/dist\//, "src/").replace(/\.js$/, ".ts");
      expect(existsSync(`${pkgDir}/${source}`), `${subpath} -> ${source}`).toBe(true);
    }
  });

  it("every generated file is reachable through the registry", () => {
    const generated = readdirSync(`${pkgDir}/src/gen`, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith("_pb.ts"))
      .map((f) => f.replace(/_pb\.ts$/, ".proto"))
      .sort();
    expect(apiFiles.map((f) => f.name + ".proto").sort()).toEqual(generated);
    expect(apiRegistry.getMessage("containerd.events.TaskExit")).toBeDefined();
    expect(apiRegistry.getMessage("containerd.services.images.v1.ImageDelete")).toBeDefined();
    expect(apiRegistry.getService("containerd.task.v2.Task")).toBeDefined();
  });
});
