/** The `berth` executable. */
import { createProcessOutput } from "../output.js";
import { runCli } from "../program.js";

const code = await runCli(process.argv.slice(2), { env: process.env, out: createProcessOutput() });
process.exitCode = code;
