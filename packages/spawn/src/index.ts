export {
  makeFifo,
  nativeSpawn,
  type RawSpawn,
  rawSpawn,
  run,
  type RunOptions,
  type RunResult,
  type MallocThresholds,
  SERVER_MALLOC_THRESHOLDS,
  setMallocThresholds,
  trimMallocHeap,
} from "./run.js";
