import { randomBytes } from "node:crypto";
import { isInvalidArgument } from "@berth/errdefs";
import { describe, expect, it } from "vitest";
import {
  createDigester,
  digestOf,
  digestOfStream,
  digestProblem,
  isDigest,
  parseDigest,
  verifyDigest,
} from "../src/index.js";

const EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const hex = (n: number, c = "a") => c.repeat(n);

async function* chunks(...parts: Uint8Array[]): AsyncIterable<Uint8Array> {
  for (const p of parts) yield p;
}

describe("parseDigest", () => {
  it.each([
    ["sha256", 64],
    ["sha384", 96],
    ["sha512", 128],
  ])("accepts %s with %i lower-case hex characters", (algorithm, n) => {
    const encoded = "0123456789abcdef".repeat(8).slice(0, n);
    expect(parseDigest(`${algorithm}:${encoded}`)).toEqual({ algorithm, encoded });
    expect(isDigest(`${algorithm}:${encoded}`)).toBe(true);
  });

  it.each([
    ["upper-case hex", `sha256:${hex(64, "A")}`, "invalid checksum digest format"],
    ["mixed-case hex", `sha256:${hex(63)}F`, "invalid checksum digest format"],
    ["non-hex characters", `sha256:${hex(63)}g`, "invalid checksum digest format"],
    ["too short", `sha256:${hex(63)}`, "invalid checksum digest length"],
    ["too long", `sha256:${hex(65)}`, "invalid checksum digest length"],
    ["sha512 length for sha256", `sha256:${hex(128)}`, "invalid checksum digest length"],
    ["sha256 length for sha384", `sha384:${hex(64)}`, "invalid checksum digest length"],
    ["unknown algorithm", `md5:${hex(32)}`, 'unsupported digest algorithm "md5"'],
    [
      "unknown compound algorithm",
      `sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564`,
      "unsupported digest algorithm",
    ],
    ["upper-case algorithm", `SHA256:${hex(64)}`, "invalid checksum digest format"],
    ["no separator", `sha256${hex(64)}`, "invalid checksum digest format"],
    ["empty encoded", "sha256:", "invalid checksum digest format"],
    ["empty algorithm", `:${hex(64)}`, "invalid checksum digest format"],
    ["empty string", "", "invalid checksum digest format"],
    ["bad algorithm separator", `sha256-:${hex(64)}`, "invalid checksum digest format"],
    ["whitespace", ` sha256:${hex(64)}`, "invalid checksum digest format"],
  ])("rejects %s", (_name, input, reason) => {
    expect(isDigest(input)).toBe(false);
    expect(digestProblem(input)).toContain(reason);
    let caught: unknown;
    try {
      parseDigest(input);
    } catch (err) {
      caught = err;
    }
    expect(isInvalidArgument(caught)).toBe(true);
    expect((caught as Error).message).toContain(`invalid digest ${JSON.stringify(input)}`);
    expect((caught as Error).message).toContain(reason);
  });

  it("rejects non-strings in isDigest", () => {
    expect(isDigest(undefined)).toBe(false);
    expect(isDigest(42)).toBe(false);
  });
});

describe("digestOf", () => {
  it("hashes bytes and strings alike", () => {
    expect(digestOf(new Uint8Array())).toBe(EMPTY_SHA256);
    expect(digestOf("")).toBe(EMPTY_SHA256);
    expect(digestOf("{}")).toBe("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  });

  it("uses the requested algorithm", () => {
    expect(parseDigest(digestOf("x", "sha384")).algorithm).toBe("sha384");
    expect(parseDigest(digestOf("x", "sha512")).encoded).toHaveLength(128);
  });

  it("rejects unsupported algorithms", () => {
    expect(() => digestOf("x", "md5" as never)).toThrow(/unsupported digest algorithm "md5"/);
  });
});

describe("createDigester", () => {
  it.each(["sha256", "sha384", "sha512"] as const)("streaming %s equals one-shot", (algorithm) => {
    const data = randomBytes(100_000);
    const d = createDigester(algorithm);
    for (let i = 0; i < data.length; i += 4093) d.update(data.subarray(i, i + 4093));
    expect(d.size).toBe(data.length);
    expect(d.algorithm).toBe(algorithm);
    expect(d.digest()).toBe(digestOf(data, algorithm));
  });

  it("counts string chunks in UTF-8 bytes", () => {
    const d = createDigester()
      .update("é")
      .update(new Uint8Array([1, 2]));
    expect(d.size).toBe(4);
  });
});

describe("digestOfStream and verifyDigest", () => {
  const data = randomBytes(10_000);
  const expected = digestOf(data);

  it("digests async and sync iterables", async () => {
    expect(await digestOfStream(chunks(data.subarray(0, 10), data.subarray(10)))).toEqual({
      digest: expected,
      size: data.length,
    });
    expect((await digestOfStream([data.subarray(0, 5000), data.subarray(5000)])).digest).toBe(expected);
  });

  it("verifies bytes and streams", async () => {
    expect(await verifyDigest(data, expected)).toBe(true);
    expect(await verifyDigest(chunks(data.subarray(0, 1), data.subarray(1)), expected)).toBe(true);
    expect(await verifyDigest(chunks(data.subarray(1)), expected)).toBe(false);
    expect(await verifyDigest(data, digestOf(data, "sha512"))).toBe(true);
  });

  it("throws InvalidArgument for a malformed expected digest", async () => {
    const err = await verifyDigest(data, "sha256:XYZ").catch((e: unknown) => e);
    expect(isInvalidArgument(err)).toBe(true);
  });

  it("stops when the signal aborts", async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(digestOfStream(chunks(data), "sha256", { signal: controller.signal })).rejects.toThrow();
  });
});
