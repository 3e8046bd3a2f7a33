export {
  makeFifo,
  nativeSpawn,
  type RawSpawn,
  rawSpawn,
  run,
  type RunOptions,
  type RunResult,
  trimMallocHeap,
} from "./run.js";
