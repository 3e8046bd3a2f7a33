// @berth/cli: the `berth` program, usable in-process (tests, embedding) as well as through bin/berth.js.
export { createProgram, defaultClientInfo, runCli } from "./program.js";
export type { RunCommand } from "./program.js";
export type { ClientInfo, CliDeps, CommandContext } from "./context.js";
export { ExitError } from "./context.js";
export {
  DEFAULT_ADDRESS,
  DEFAULT_NAMESPACE,
  resolveAddress,
  resolveGlobalOptions,
  resolveNamespace,
} from "./config.js";
export type { Env, GlobalFlags, GlobalOptions } from "./config.js";
export { createConnection, MAX_MESSAGE_BYTES, NAMESPACE_HEADER, namespaceInterceptor } from "./connection.js";
export type { Connection, ConnectionOptions } from "./connection.js";
export { parseDuration } from "./duration.js";
export { CliError, errorMessage } from "./errors.js";
export { goJsonMessage, goJsonString, goRfc3339Nano, goTimeString } from "./go-format.js";
export {
  compareStrings,
  createBufferOutput,
  createProcessOutput,
  formatLabels,
  TabWriter,
  tabwrite,
  writeJson,
} from "./output.js";
export type { BufferOutput, Output, TabWriterOptions } from "./output.js";
