// Entry point of the shared shim server (bundled into bundle/; bin/berth-shim-server.js loads it).
import { main } from "../main.js";

await main();
