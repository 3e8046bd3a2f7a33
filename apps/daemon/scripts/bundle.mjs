// Bundles berthd's entry point (after tsc) into bundle/. Measured: loading ~150 ES modules one by one is most of
// berthd's start-up time (resolution, file reads, per-module compile); one file with lazily loaded chunks
// for connect-node, metrics and the API registry starts about twice as fast. The library (dist/) is unchanged.
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { bundleOptions } from "../../../scripts/bundle-options.mjs";

const here = fileURLToPath(new URL("..", import.meta.url));
await rm(`${here}/bundle`, { recursive: true, force: true });
// Native addons cannot be bundled (@berth/spawn finds its addon next to its own files).
await build(bundleOptions(here, { name: "berthd", external: ["better-sqlite3", "@berth/spawn"] }));
