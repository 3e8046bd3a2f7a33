import { isInvalidArgument } from "@berth/errdefs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { configFromToml, configToToml, defaultConfig } from "../src/index.js";

describe("config.toml", () => {
  it("reads containerd's version 2 keys", () => {
    const cfg = configFromToml(
      parse(`
version = 2
root = "/r"
state = "/s"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
required_plugins = ["io.containerd.grpc.v1.version"]
[grpc]
  address = "/x.sock"
  gid = 1001
[ttrpc]
  address = "/x.ttrpc"
[debug]
  level = "debug"
[metrics]
  address = "127.0.0.1:1338"
  grpc_histogram = true
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "shared"
[proxy_plugins.stargz]
  type = "snapshot"
  address = "/run/stargz.sock"
`) as Record<string, unknown>,
    );
    expect(cfg.root).toBe("/r");
    expect(cfg.grpc.address).toBe("/x.sock");
    expect(cfg.grpc.gid).toBe(1001);
    expect(cfg.grpc.maxRecvMessageSize).toBe(16 << 20);
    expect(cfg.ttrpc.address).toBe("/x.ttrpc");
    expect(cfg.debug.level).toBe("debug");
    expect(cfg.metrics).toEqual({ address: "127.0.0.1:1338", grpcHistogram: true });
    expect(cfg.disabledPlugins).toEqual(["io.containerd.grpc.v1.cri"]);
    expect(cfg.requiredPlugins).toEqual(["io.containerd.grpc.v1.version"]);
    expect(cfg.plugins["io.containerd.metadata.v1.bolt"]).toEqual({ content_sharing_policy: "shared" });
    expect(cfg.proxyPlugins.stargz).toMatchObject({ type: "snapshot", address: "/run/stargz.sock" });
  });

  it("rejects other versions and wrong types clearly", () => {
    const bad = (doc: Record<string, unknown>) => {
      try {
        configFromToml(doc);
        return undefined;
      } catch (e) {
        return e;
      }
    };
    expect(isInvalidArgument(bad({ version: 1 }))).toBe(true);
    expect(isInvalidArgument(bad({ version: 2, root: 5 }))).toBe(true);
    expect(isInvalidArgument(bad({ version: 2, grpc: "x" }))).toBe(true);
    expect(isInvalidArgument(bad({ version: 2, proxy_plugins: { p: { type: "snapshot" } } }))).toBe(true);
  });

  it("prints a default that reads back to the same config", () => {
    const text = configToToml(defaultConfig(), { "io.example.v1.x": { a: 1 } });
    expect(text).toContain("version = 2");
    expect(text).toContain('root = "/var/lib/berth"');
    const back = configFromToml(parse(text) as Record<string, unknown>);
    expect(back.grpc.address).toBe("/run/berth/berth.sock");
    expect(back.plugins["io.example.v1.x"]).toEqual({ a: 1 });
  });
});
