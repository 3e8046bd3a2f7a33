export {
  makeFifo,
  nativeSpawn,
  type RawSpawn,
  rawSpawn,
  run,
  type RunOptions,
  type RunResult,
} from "./run.js";
