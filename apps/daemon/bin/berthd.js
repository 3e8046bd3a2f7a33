#!/usr/bin/env -S node --max-semi-space-size=4
// The bundled build starts faster (see scripts/bundle.mjs); the plain tsc output is the fallback.
//
// --max-semi-space-size=4: V8 grows the young generation up to 2 x 16 MiB during a burst (an ingest, an unpack)
// and keeps it while work goes on. Measured with 20 running containers after an unpack: daemon RSS 113 MB by
// default, 93 MB with this cap. A cap of 2 saved ~4 MB more but cut concurrent RPC throughput by a quarter.
// npm and pnpm bin links pass these flags to node (env -S); whoever runs `node bin/berthd.js` should too.
import { existsSync } from "node:fs";

const bundled = new URL("../bundle/berthd.mjs", import.meta.url);
await import(existsSync(bundled) ? bundled.href : "../dist/bin/berthd.js");
