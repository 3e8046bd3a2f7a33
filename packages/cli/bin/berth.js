#!/usr/bin/env node
// The bundled build starts faster (see scripts/bundle.mjs); the plain tsc output is the fallback.
import { existsSync } from "node:fs";

const bundled = new URL("../bundle/berth.mjs", import.meta.url);
await import(existsSync(bundled) ? bundled.href : "../dist/bin/berth.js");
