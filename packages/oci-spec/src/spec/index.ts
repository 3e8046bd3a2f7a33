// @berth/oci-spec/spec: the default Linux runtime spec containerd generates, the options ctr run applies to it,
// the default seccomp profile, and user lookups in a container's rootfs.
export {
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  DEFAULT_ROOTFS_PATH,
  DEFAULT_SPEC_VERSION,
  DEFAULT_UNIX_ENV,
  defaultMounts,
  generateDefaultSpec,
} from "./defaults.js";
export {
  CAPABILITY_NAMES,
  currentCapabilities,
  generateSpec,
  hostDevices,
  replaceOrAppendEnv,
  withAllDevicesAllowed,
  withAnnotations,
  withCapabilities,
  withCgroup,
  withCPUCFS,
  withCPUShares,
  withCPUs,
  withDefaultSeccomp,
  withDefaultUnixDevices,
  withEnv,
  withHostHostsFile,
  withHostname,
  withHostNamespace,
  withHostNetwork,
  withHostResolvconf,
  withImageConfig,
  withMemoryLimit,
  withMounts,
  withNewPrivileges,
  withPrivileged,
  withProcessArgs,
  withProcessCwd,
  withRootFSPath,
  withRootFSReadonly,
  withTTY,
  withUser,
} from "./options.js";
export type { ImageRunConfig, SpecContext, SpecOpt } from "./options.js";
export { inGoFieldOrder } from "./field-order.js";
export { directoryRootfs, layeredRootfs } from "./rootfs.js";
export type { RootfsFiles } from "./rootfs.js";
export { DEFAULT_ALLOWED_SYSCALLS } from "./seccomp-syscalls.js";
export { defaultSeccompProfile, goArch } from "./seccomp.js";
export type { GoArch, SeccompOptions } from "./seccomp.js";
export { parseGroup, parsePasswd, resolveUser, rootUserGroups, UserLookupError } from "./user.js";
export type { GroupEntry, PasswdEntry, ResolvedUser } from "./user.js";
