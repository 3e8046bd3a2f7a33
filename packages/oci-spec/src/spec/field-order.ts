/**
 * Key order of a spec as Go's encoding/json writes runtime-spec structs (field declaration order), so that the
 * JSON a container carries reads the same as containerd's. Keys not listed keep their place after the known ones.
 */
import type { Spec } from "../runtime/index.js";

const ORDER: Record<string, readonly string[]> = {
  spec: ["ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux"],
  process: [
    "terminal",
    "consoleSize",
    "user",
    "args",
    "commandLine",
    "env",
    "cwd",
    "capabilities",
    "rlimits",
    "noNewPrivileges",
    "apparmorProfile",
    "oomScoreAdj",
    "scheduler",
    "selinuxLabel",
    "ioPriority",
    "execCPUAffinity",
  ],
  user: ["uid", "gid", "umask", "additionalGids", "username"],
  root: ["path", "readonly"],
  linux: [
    "uidMappings",
    "gidMappings",
    "sysctl",
    "resources",
    "cgroupsPath",
    "namespaces",
    "devices",
    "seccomp",
    "rootfsPropagation",
    "maskedPaths",
    "readonlyPaths",
    "mountLabel",
    "intelRdt",
    "personality",
    "timeOffsets",
  ],
  resources: ["devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"],
};

function ordered<T extends object>(value: T | undefined, keys: readonly string[]): T | undefined {
  if (value === undefined) return undefined;
  const src = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in src && src[k] !== undefined) out[k] = src[k];
  for (const [k, v] of Object.entries(src)) if (!(k in out) && v !== undefined) out[k] = v;
  return out as T;
}

/** A copy of `spec` with its keys in Go's field order (nested process, user, root, linux and resources too). */
export function inGoFieldOrder(spec: Spec): Spec {
  const out = ordered(spec, ORDER.spec ?? []) as Spec;
  if (out.process) {
    out.process = ordered(out.process, ORDER.process ?? []);
    if (out.process?.user) out.process.user = ordered(out.process.user, ORDER.user ?? []) ?? out.process.user;
  }
  if (out.root) out.root = ordered(out.root, ORDER.root ?? []);
  if (out.linux) {
    out.linux = ordered(out.linux, ORDER.linux ?? []);
    if (out.linux?.resources) out.linux.resources = ordered(out.linux.resources, ORDER.resources ?? []);
  }
  return out;
}
