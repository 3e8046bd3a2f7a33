// A lean gRPC unary client on raw node:http2 (one session, framing by hand), for a unix socket.
// Used for the cold-start probe ("first successful RPC") and as the fallback load client.
import http2 from "node:http2";
import net from "node:net";

export const VERSION_METHOD = "/containerd.services.version.v1.Version/Version";

const EMPTY_FRAME = Buffer.from([0, 0, 0, 0, 0]); // uncompressed, zero-length message

/** Open one HTTP/2 session to a unix socket. Rejects if the socket cannot be connected. */
export function connect(sock, { timeoutMs = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect("http://localhost", {
      createConnection: () => net.connect(sock),
    });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`connect ${sock}: timed out`));
    }, timeoutMs);
    session.once("connect", () => {
      clearTimeout(timer);
      session.removeListener("error", onError);
      session.on("error", () => {});
      resolve(session);
    });
    const onError = (err) => {
      clearTimeout(timer);
      session.destroy();
      reject(err);
    };
    session.once("error", onError);
  });
}

/**
 * One unary call. Resolves the reply message bytes; rejects with an Error carrying .grpcStatus
 * on a non-OK status, or a transport error.
 */
export function unary(session, method, body = Buffer.alloc(0), { timeoutMs = 10_000, metadata = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ":method": "POST",
      ":path": method,
      ":authority": "localhost",
      "content-type": "application/grpc",
      te: "trailers",
      "grpc-timeout": `${timeoutMs}m`,
      ...metadata,
    });
    const chunks = [];
    let status;
    let message;
    let settled = false;
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(value);
    };
    const takeStatus = (h) => {
      if (h["grpc-status"] !== undefined) {
        status = Number(h["grpc-status"]);
        message = h["grpc-message"] ? decodeURIComponent(h["grpc-message"]) : "";
      }
    };
    req.on("response", (h) => {
      if (h[":status"] !== 200) {
        finish(new Error(`HTTP ${h[":status"]} from ${method}`));
        req.close();
        return;
      }
      takeStatus(h); // trailers-only response
    });
    req.on("trailers", takeStatus);
    req.on("data", (c) => chunks.push(c));
    req.on("error", (err) => finish(err));
    req.on("close", () => {
      if (status === undefined) return finish(new Error(`${method}: stream closed without grpc-status`));
      if (status !== 0) {
        const err = new Error(`${method}: grpc-status ${status} ${message}`);
        err.grpcStatus = status;
        return finish(err);
      }
      const buf = Buffer.concat(chunks);
      finish(null, buf.length >= 5 ? buf.subarray(5, 5 + buf.readUInt32BE(1)) : Buffer.alloc(0));
    });
    req.end(body.length ? frame(body) : EMPTY_FRAME);
  });
}

function frame(body) {
  const b = Buffer.allocUnsafe(5 + body.length);
  b[0] = 0;
  b.writeUInt32BE(body.length, 1);
  body.copy(b, 5);
  return b;
}

/** One attempt at Version.Version on a fresh connection; true on success, false on any failure. */
export async function probeVersion(sock) {
  let session;
  try {
    session = await connect(sock, { timeoutMs: 2000 });
    await unary(session, VERSION_METHOD, undefined, { timeoutMs: 2000 });
    return true;
  } catch {
    return false;
  } finally {
    session?.destroy();
  }
}

/** Fallback load generator, same output shape as the Go rpcbench client. */
export async function nodeRpcbench({ addr, n = 10_000, c = 1, durationMs = 3000, warmup = 200 }) {
  const session = await connect(addr);
  try {
    for (let i = 0; i < warmup; i++) await unary(session, VERSION_METHOD);
    const lat = [];
    let errors = 0;
    let calls = 0;
    const t0 = performance.now();
    const one = async () => {
      const t = performance.now();
      try {
        await unary(session, VERSION_METHOD);
      } catch {
        errors++;
      }
      lat.push((performance.now() - t) * 1000);
      calls++;
    };
    if (c <= 1) {
      for (let i = 0; i < n; i++) await one();
    } else {
      const end = t0 + durationMs;
      await Promise.all(
        Array.from({ length: c }, async () => {
          while (performance.now() < end) await one();
        }),
      );
    }
    const elapsed = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    return {
      mode: c <= 1 ? "sequential" : `concurrent-${c}`,
      client: "node-http2",
      calls,
      errors,
      per_call_us_median: lat[lat.length >> 1],
      per_call_us_mean: lat.reduce((a, b) => a + b, 0) / lat.length,
      p99_us: lat[Math.max(0, Math.ceil(lat.length * 0.99) - 1)],
      calls_per_s: calls / elapsed,
      elapsed_s: elapsed,
    };
  } finally {
    session.destroy();
  }
}
