#!/usr/bin/env node
// The bundled build starts faster (see scripts/bundle.mjs); the plain tsc output is the fallback.
import { existsSync } from "node:fs";

const bundled = new URL("../bundle/berthd.mjs", import.meta.url);
await import(existsSync(bundled) ? bundled.href : "../dist/bin/berthd.js");
