export { makeFifo, nativeSpawn, run, type RunOptions, type RunResult } from "./run.js";
