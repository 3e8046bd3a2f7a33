// Bundles berth's entry point (after tsc) into bundle/. Loading ~200 ES modules one by one is most of the
// CLI's start-up time; one file plus lazily loaded chunks starts several times faster. dist/ (the library)
// is unchanged; bin/berth.js falls back to it when there is no bundle.
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = fileURLToPath(new URL("..", import.meta.url));
await rm(`${here}/bundle`, { recursive: true, force: true });
await build({
  entryPoints: { berth: `${here}/dist/bin/berth.js` },
  outdir: `${here}/bundle`,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  // Native addons cannot be bundled.
  external: ["better-sqlite3", "@napi-rs/xattr"],
  // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
  banner: {
    js: 'import { createRequire as __berthCreateRequire } from "node:module"; const require = __berthCreateRequire(import.meta.url);',
  },
  sourcemap: "linked",
  logLevel: "warning",
});
