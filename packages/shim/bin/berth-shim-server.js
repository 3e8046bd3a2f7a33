#!/usr/bin/env node
// The shared shim server; started by the native containerd-shim-berth-v2 launcher, not by hand.
// The bundled build holds less memory per server (one module instead of ~120; see scripts/bundle.mjs); the
// plain tsc output is the fallback.
import { existsSync } from "node:fs";

const bundled = new URL("../bundle/berth-shim-server.mjs", import.meta.url);
await import(existsSync(bundled) ? bundled.href : "../dist/bin/berth-shim-server.js");
