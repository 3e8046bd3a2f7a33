import { create, createRegistry } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MountSchema } from "../src/gen/containerd/types/mount_pb.js";
import { PlatformSchema } from "../src/gen/containerd/types/platform_pb.js";
import {
  LINUX_RESOURCES_TYPE_URL,
  PROCESS_TYPE_URL,
  SPEC_TYPE_URL,
  anyTypeName,
  packAny,
  packJsonAny,
  unpackAny,
  unpackJsonAny,
} from "../src/index.js";
import { apiRegistry } from "../src/registry.js";

const mount = create(MountSchema, { type: "overlay", source: "overlay", options: ["lowerdir=/a", "upperdir=/b"] });

describe("packAny / unpackAny", () => {
  it("packs with a bare type URL", () => {
    expect(packAny(MountSchema, mount).typeUrl).toBe("containerd.types.Mount");
  });

  it("unpacks bare URLs with a schema", () => {
    expect(unpackAny(MountSchema, packAny(MountSchema, mount))).toEqual(mount);
  });

  it("accepts type.googleapis.com/ prefixed URLs", () => {
    const prefixed = anyPack(MountSchema, mount);
    expect(prefixed.typeUrl).toBe("type.googleapis.com/containerd.types.Mount");
    expect(unpackAny(MountSchema, prefixed)).toEqual(mount);
    expect(unpackAny(createRegistry(MountSchema), prefixed)).toEqual(mount);
  });

  it("unpacks with a registry", () => {
    const back = unpackAny(apiRegistry, packAny(MountSchema, mount));
    expect(back?.$typeName).toBe("containerd.types.Mount");
    expect(back).toEqual(mount);
  });

  it("returns undefined for another or unknown type, or an empty Any", () => {
    const any = packAny(MountSchema, mount);
    expect(unpackAny(PlatformSchema, any)).toBeUndefined();
    expect(unpackAny(createRegistry(PlatformSchema), any)).toBeUndefined();
    expect(unpackAny(MountSchema, { ...any, typeUrl: "" })).toBeUndefined();
  });

  it("anyTypeName strips any URL prefix", () => {
    expect(anyTypeName({ typeUrl: "containerd.events.TaskExit" })).toBe("containerd.events.TaskExit");
    expect(anyTypeName({ typeUrl: "type.googleapis.com/containerd.events.TaskExit" })).toBe(
      "containerd.events.TaskExit",
    );
  });
});

describe("JSON Anys", () => {
  it("use containerd's OCI type URLs", () => {
    expect(SPEC_TYPE_URL).toBe("types.containerd.io/opencontainers/runtime-spec/1/Spec");
    expect(PROCESS_TYPE_URL).toBe("types.containerd.io/opencontainers/runtime-spec/1/Process");
    expect(LINUX_RESOURCES_TYPE_URL).toBe("types.containerd.io/opencontainers/runtime-spec/1/LinuxResources");
  });

  it("round-trip a spec as UTF-8 JSON", () => {
    const spec = { ociVersion: "1.0.2-dev", root: { path: "rootfs" }, process: { args: ["sh", "-c", "échø"] } };
    const any = packJsonAny(SPEC_TYPE_URL, spec);
    expect(any.typeUrl).toBe(SPEC_TYPE_URL);
    expect(JSON.parse(new TextDecoder().decode(any.value))).toEqual(spec);
    expect(unpackJsonAny(any)).toEqual(spec);
    expect(unpackJsonAny<typeof spec>(any, SPEC_TYPE_URL).root.path).toBe("rootfs");
  });

  it("rejects a mismatched type URL and unserialisable values", () => {
    const any = packJsonAny(PROCESS_TYPE_URL, { args: ["true"] });
    expect(() => unpackJsonAny(any, SPEC_TYPE_URL)).toThrow(TypeError);
    expect(() => packJsonAny(SPEC_TYPE_URL, undefined)).toThrow(TypeError);
  });
});
