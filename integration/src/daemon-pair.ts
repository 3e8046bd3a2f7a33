import { afterAll, afterEach, beforeAll } from "vitest";
import {
  type Berthd,
  type Containerd,
  startBerthd,
  startContainerd,
  stopAll,
  stopClients,
  tempDir,
} from "./harness.js";

/** berthd and a private containerd side by side, for tests that compare what ctr shows on both. */
export interface DaemonPair {
  readonly berthd: Berthd;
  readonly containerd: Containerd;
  /** A temp dir for the suite's files. */
  readonly dir: string;
  /** Both daemons as [name, socket], berthd first. */
  daemons(): readonly [readonly ["berthd", string], readonly ["containerd", string]];
}

/**
 * For the enclosing describe: starts berthd, a private containerd and a temp dir before its tests and stops them
 * (and any client process) after; a failed test also prints the end of berthd's log. Read the fields in tests.
 */
export function useDaemonPair(): DaemonPair {
  let berthd: Berthd | undefined;
  let containerd: Containerd | undefined;
  let dir: string | undefined;
  const started = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not started (did beforeAll fail?)`);
    return value;
  };

  beforeAll(async () => {
    [berthd, containerd, dir] = await Promise.all([startBerthd(), startContainerd(), tempDir()]);
  });
  afterEach(async (ctx) => {
    // a failure in berthd shows in its log: keep the end of it with the failed test's output
    if (ctx.task.result?.state === "fail" && berthd !== undefined) {
      console.error(`berthd log (tail):\n${berthd.log().slice(-6000)}`);
    }
    await stopClients();
  });
  afterAll(stopAll);

  return {
    get berthd() {
      return started(berthd, "berthd");
    },
    get containerd() {
      return started(containerd, "containerd");
    },
    get dir() {
      return started(dir, "the temp dir");
    },
    daemons() {
      return [
        ["berthd", started(berthd, "berthd").socket],
        ["containerd", started(containerd, "containerd").socket],
      ] as const;
    },
  };
}
