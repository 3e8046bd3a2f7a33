// The unary-RPC load client: a small Go gRPC program (bench/go/rpcbench) built offline against Debian's
// golang-google-grpc-dev into bench/.bin/ on first use; if Go or that library is missing or the build
// fails, a lean node:http2 client (lib/grpc.mjs) takes its place. The same client is used for both daemons.
//
//   node bench/lib/rpcbench.mjs --build      build (or rebuild) bench/.bin/rpcbench and exit
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { nodeRpcbench } from "./grpc.mjs";
import { run } from "./proc.mjs";

const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = join(BENCH_DIR, "go/rpcbench");
const BIN_DIR = join(BENCH_DIR, ".bin");
export const RPCBENCH_BIN = join(BIN_DIR, "rpcbench");
const GOPATH = process.env.BENCH_GOPATH || "/usr/share/gocode";

let chosen; // { kind: "go" | "node", note }

function upToDate() {
  if (!existsSync(RPCBENCH_BIN)) return false;
  return statSync(RPCBENCH_BIN).mtimeMs >= statSync(join(SRC_DIR, "main.go")).mtimeMs;
}

/** Build bench/.bin/rpcbench. Resolves { ok, log }. */
export async function buildRpcbench() {
  if (!existsSync(join(GOPATH, "src/google.golang.org/grpc"))) {
    return {
      ok: false,
      log: `no Go gRPC library at ${GOPATH}/src/google.golang.org/grpc (apt-get install -y golang-go golang-google-grpc-dev)`,
    };
  }
  mkdirSync(BIN_DIR, { recursive: true });
  const env = {
    ...process.env,
    GO111MODULE: "off",
    GOPATH,
    GOCACHE: join(BIN_DIR, "go-cache"),
    GOFLAGS: "",
    CGO_ENABLED: "0",
  };
  try {
    const r = await run("go", ["build", "-o", RPCBENCH_BIN, "."], { cwd: SRC_DIR, env, timeoutMs: 600_000 });
    return { ok: r.code === 0, log: (r.stderr + r.stdout).trim() };
  } catch (err) {
    return { ok: false, log: `${err.message} (apt-get install -y golang-go golang-google-grpc-dev)` };
  }
}

/** Decide once which client to use: BENCH_CLIENT=go|node forces one. */
export async function chooseClient(log = (s) => process.stderr.write(`${s}\n`)) {
  if (chosen) return chosen;
  const want = process.env.BENCH_CLIENT;
  if (want === "node") {
    chosen = { kind: "node", note: "node:http2 client (BENCH_CLIENT=node)" };
    return chosen;
  }
  if (!upToDate()) {
    log("bench: building the Go rpcbench client into bench/.bin/ ...");
    const b = await buildRpcbench();
    if (!b.ok) {
      if (want === "go") throw new Error(`cannot build the Go rpcbench client:\n${b.log}`);
      log(`bench: Go client unavailable, falling back to the node:http2 client:\n${b.log}`);
      chosen = { kind: "node", note: "node:http2 client (Go build failed)" };
      return chosen;
    }
  }
  chosen = { kind: "go", note: `Go gRPC client ${RPCBENCH_BIN}` };
  return chosen;
}

/**
 * Run one load measurement against sock. Sequential when c <= 1 (n calls), else c in flight for durationMs.
 * Resolves { per_call_us_median, p99_us, calls_per_s, calls, errors, ... }.
 */
export async function rpcbench(sock, { n = 10_000, c = 1, durationMs = 3000, warmup = 200 } = {}) {
  const client = await chooseClient();
  if (client.kind === "node") {
    const res = await nodeRpcbench({ addr: sock, n, c, durationMs, warmup });
    if (res.errors > 0) throw new Error(`rpcbench (node): ${res.errors} of ${res.calls} calls failed`);
    return res;
  }
  const args = ["-addr", sock, "-n", String(n), "-c", String(c), "-d", `${durationMs}ms`, "-warmup", String(warmup)];
  const r = await run(RPCBENCH_BIN, args, { timeoutMs: 120_000 + durationMs });
  const line = r.stdout.trim().split("\n").pop();
  let res;
  try {
    res = JSON.parse(line);
  } catch {
    throw new Error(`rpcbench failed (exit ${r.code ?? r.signal}): ${(r.stderr || r.stdout).trim()}`);
  }
  if (r.code !== 0 || res.errors > 0) {
    throw new Error(
      `rpcbench: ${res.errors} of ${res.calls} calls failed, first: ${res.first_error ?? r.stderr.trim()}`,
    );
  }
  return { client: "go", ...res };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  if (process.argv.includes("--build")) {
    const b = await buildRpcbench();
    process.stdout.write(b.ok ? `built ${RPCBENCH_BIN}\n` : `build failed:\n${b.log}\n`);
    process.exit(b.ok ? 0 : 1);
  } else {
    process.stdout.write(
      `${readFileSync(fileURLToPath(import.meta.url), "utf8")
        .split("\n")
        .slice(0, 5)
        .join("\n")}\n`,
    );
  }
}
