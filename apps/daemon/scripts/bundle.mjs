// Bundles berthd's entry point (after tsc) into bundle/. Measured: loading ~150 ES modules one by one is most of
// berthd's start-up time (resolution, file reads, per-module compile); one file with lazily loaded chunks
// for connect-node, metrics and the API registry starts about twice as fast. The library (dist/) is unchanged.
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL("..", import.meta.url));
await rm(`${here}/bundle`, { recursive: true, force: true });
await build({
  entryPoints: { berthd: `${here}/dist/bin/berthd.js` },
  outdir: `${here}/bundle`,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  // Native addons cannot be bundled (@berth/spawn finds its addon next to its own files).
  external: ["better-sqlite3", "@berth/spawn"],
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: {
    js: 'import { createRequire as __berthCreateRequire } from "node:module"; const require = __berthCreateRequire(import.meta.url);',
  },
  sourcemap: "linked",
  logLevel: "warning",
});
