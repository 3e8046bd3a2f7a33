import { pino } from "pino";
import type { Logger } from "@berth/plugin";

/** The daemon's logger: JSON lines on stderr (containerd logs to stderr too). */
export function createLogger(level: string): Logger & { level: string } {
  return pino({ level: level === "warning" ? "warn" : level, base: { pid: process.pid } }, pino.destination(2));
}
