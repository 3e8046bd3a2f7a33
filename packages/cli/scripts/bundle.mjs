// Bundles berth's entry point (after tsc) into bundle/. Loading ~200 ES modules one by one is most of the
// CLI's start-up time; one file plus lazily loaded chunks starts several times faster. dist/ (the library)
// is unchanged; bin/berth.js falls back to it when there is no bundle.
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { bundleOptions } from "../../../scripts/bundle-options.mjs";

const here = fileURLToPath(new URL("..", import.meta.url));
await rm(`${here}/bundle`, { recursive: true, force: true });
await build(bundleOptions(here, { name: "berth", external: ["better-sqlite3", "@napi-rs/xattr"] }));
