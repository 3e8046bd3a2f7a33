import { describe, expect, it } from "vitest";
import { DEFAULT_ADDRESS, resolveAddress, resolveGlobalOptions, resolveNamespace } from "../src/config.js";

describe("address resolution", () => {
  const env = { BERTH_ADDRESS: "/b.sock", CONTAINERD_ADDRESS: "/c.sock" };
  it("prefers the flag", () => {
    expect(resolveAddress("/flag.sock", env)).toBe("/flag.sock");
  });
  it("then BERTH_ADDRESS", () => {
    expect(resolveAddress(undefined, env)).toBe("/b.sock");
  });
  it("then CONTAINERD_ADDRESS", () => {
    expect(resolveAddress(undefined, { CONTAINERD_ADDRESS: "/c.sock" })).toBe("/c.sock");
  });
  it("then the default", () => {
    expect(resolveAddress(undefined, {})).toBe(DEFAULT_ADDRESS);
    expect(DEFAULT_ADDRESS).toBe("/run/berth/berth.sock");
  });
  it("treats empty values as unset", () => {
    expect(resolveAddress("", { BERTH_ADDRESS: "", CONTAINERD_ADDRESS: "/c.sock" })).toBe("/c.sock");
  });
  it("strips a unix:// scheme", () => {
    expect(resolveAddress("unix:///run/x.sock", {})).toBe("/run/x.sock");
  });
});

describe("namespace resolution", () => {
  it("follows flag, BERTH_NAMESPACE, CONTAINERD_NAMESPACE, default", () => {
    const env = { BERTH_NAMESPACE: "b", CONTAINERD_NAMESPACE: "c" };
    expect(resolveNamespace("f", env)).toBe("f");
    expect(resolveNamespace(undefined, env)).toBe("b");
    expect(resolveNamespace(undefined, { CONTAINERD_NAMESPACE: "c" })).toBe("c");
    expect(resolveNamespace(undefined, {})).toBe("default");
  });
});

describe("resolveGlobalOptions", () => {
  it("parses the timeout and the booleans", () => {
    expect(resolveGlobalOptions({ timeout: "1m", json: true }, { CONTAINERD_NAMESPACE: "k8s.io" })).toEqual({
      address: DEFAULT_ADDRESS,
      namespace: "k8s.io",
      timeoutMs: 60_000,
      json: true,
      debug: false,
    });
  });
  it("treats a zero timeout as none, like ctr's --timeout 0", () => {
    expect(resolveGlobalOptions({ timeout: "0s" }, {}).timeoutMs).toBeUndefined();
    expect(resolveGlobalOptions({}, {}).timeoutMs).toBeUndefined();
  });
  it("rejects a bad timeout", () => {
    expect(() => resolveGlobalOptions({ timeout: "soon" }, {})).toThrow(/invalid duration/);
  });
});
