// esbuild options shared by the bundle scripts of berthd (apps/daemon) and berth (packages/cli): one ESM file per
// entry point plus lazily loaded chunks in <package>/bundle/, for Node 20. Each package keeps its own script and
// its own esbuild dependency (this file imports nothing, so it resolves nothing from the repository root).

/**
 * Options for bundling `<dir>/dist/bin/<name>.js` (after tsc) into `<dir>/bundle/<name>.mjs`; `external` names the
 * packages left to Node's resolution (native addons cannot be bundled).
 */
export function bundleOptions(dir, { name, external }) {
  return {
    entryPoints: { [name]: `${dir}/dist/bin/${name}.js` },
    outdir: `${dir}/bundle`,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    outExtension: { ".js": ".mjs" },
    external,
    // CommonJS dependencies bundled into ESM still call require() for Node built-ins.
    banner: {
      js: 'import { createRequire as __berthCreateRequire } from "node:module"; const require = __berthCreateRequire(import.meta.url);',
    },
    sourcemap: "linked",
    logLevel: "warning",
  };
}
