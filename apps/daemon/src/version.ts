import { readFileSync } from "node:fs";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

/** Berth's version as reported by Version.Version (and so by `ctr version`). */
export const VERSION = pkg.version;

/** The git revision, stamped at build time when available (see scripts/stamp-revision.mjs). */
export function readRevision(): string {
  try {
    return readFileSync(new URL("./REVISION", import.meta.url), "utf8").trim();
  } catch {
    return "";
  }
}
