#!/usr/bin/env node
// The shared shim server; started by the native containerd-shim-berth-v2 launcher, not by hand.
import { main } from "../dist/main.js";

await main();
