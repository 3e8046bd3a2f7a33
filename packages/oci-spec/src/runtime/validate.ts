import {
  type Check,
  type ObjectRule,
  type Refine,
  absolutePath,
  array,
  bool,
  enumOf,
  int,
  int64,
  isPlainObject,
  matches,
  nonEmpty,
  object,
  oneOf,
  opt,
  prop,
  record,
  req,
  run,
  str,
  stringArray,
  stringMap,
  uint32,
  uint64,
} from "../internal/check.js";
import { ValidationError, type ValidationResult } from "../validation.js";
import type { Spec } from "./types.js";

const SEMVER_RE = /^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;
/** POSIX absolute, or Windows `C:\…` / `\\server\…`. */
const anyAbsolutePath: Refine<string> = (s) =>
  s.startsWith("/") || /^[A-Za-z]:[\\/]/.test(s) || s.startsWith("\\\\")
    ? undefined
    : `must be an absolute path, got ${JSON.stringify(s)}`;
const envEntry: Refine<string> = (s) => (s.includes("=") ? undefined : `must be NAME=value, got ${JSON.stringify(s)}`);

const idMappings = array(object({ containerID: req(uint32), hostID: req(uint32), size: req(uint32) }));

const capabilitySet = array(str(matches(/^CAP_[A-Z0-9_]+$/, "a capability name like CAP_CHOWN")));

const SCHED_POLICIES = [
  "SCHED_OTHER",
  "SCHED_FIFO",
  "SCHED_RR",
  "SCHED_BATCH",
  "SCHED_ISO",
  "SCHED_IDLE",
  "SCHED_DEADLINE",
];
const SCHED_FLAGS = [
  "SCHED_FLAG_RESET_ON_FORK",
  "SCHED_FLAG_RECLAIM",
  "SCHED_FLAG_DL_OVERRUN",
  "SCHED_FLAG_KEEP_POLICY",
  "SCHED_FLAG_KEEP_PARAMS",
  "SCHED_FLAG_UTIL_CLAMP_MIN",
  "SCHED_FLAG_UTIL_CLAMP_MAX",
];

const rlimitSoftRule: ObjectRule = (r, path, out) => {
  if (typeof r.soft === "number" && typeof r.hard === "number" && r.soft > r.hard) {
    out.push({ path: prop(path, "soft"), message: `must not exceed hard (${r.soft} > ${r.hard})` });
  }
};

const processCheck: Check = object({
  terminal: opt(bool),
  consoleSize: opt(object({ height: req(uint32), width: req(uint32) })),
  user: req(
    object({
      uid: opt(uint32),
      gid: opt(uint32),
      umask: opt(uint32),
      additionalGids: opt(array(uint32)),
      username: opt(str()),
    }),
  ),
  args: opt(stringArray),
  commandLine: opt(str()),
  env: opt(array(str(envEntry))),
  cwd: req(str(anyAbsolutePath)),
  capabilities: opt(
    object({
      bounding: opt(capabilitySet),
      effective: opt(capabilitySet),
      inheritable: opt(capabilitySet),
      permitted: opt(capabilitySet),
      ambient: opt(capabilitySet),
    }),
  ),
  rlimits: opt(
    array(
      object(
        {
          type: req(str(matches(/^RLIMIT_[A-Z]+$/, "an rlimit name like RLIMIT_NOFILE"))),
          hard: req(uint64),
          soft: req(uint64),
        },
        rlimitSoftRule,
      ),
      { uniqueBy: (r) => (isPlainObject(r) && typeof r.type === "string" ? r.type : undefined) },
    ),
  ),
  noNewPrivileges: opt(bool),
  apparmorProfile: opt(str()),
  oomScoreAdj: opt(int(-1000, 1000)),
  scheduler: opt(
    object({
      policy: req(enumOf(SCHED_POLICIES)),
      nice: opt(int(-20, 19)),
      priority: opt(int(-(2 ** 31), 2 ** 31 - 1)),
      flags: opt(array(enumOf(SCHED_FLAGS))),
      runtime: opt(uint64),
      deadline: opt(uint64),
      period: opt(uint64),
    }),
  ),
  selinuxLabel: opt(str()),
  ioPriority: opt(
    object({
      class: req(enumOf(["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"])),
      priority: req(int(0, 7)),
    }),
  ),
  execCPUAffinity: opt(object({ initial: opt(str()), final: opt(str()) })),
});

const hookList = array(
  object({
    path: req(str(absolutePath)),
    args: opt(stringArray),
    env: opt(array(str(envEntry))),
    timeout: opt(int(1, 2 ** 31 - 1)),
  }),
);

const mountCheck = object({
  destination: req(str(nonEmpty)),
  type: opt(str()),
  source: opt(str()),
  options: opt(stringArray),
  uidMappings: opt(idMappings),
  gidMappings: opt(idMappings),
});

// linux.resources
const weight = int(10, 1000);
const atLeastOneWeight: ObjectRule = (d, path, out) => {
  if (d.weight === undefined && d.leafWeight === undefined) {
    out.push({ path, message: "must specify weight or leafWeight" });
  }
};
const throttleDevices = array(object({ major: req(int64), minor: req(int64), rate: req(uint64) }));

const resourcesCheck = object({
  devices: opt(
    array(
      object({
        allow: req(bool),
        type: opt(enumOf(["a", "c", "b"])),
        major: opt(int64),
        minor: opt(int64),
        access: opt(str(matches(/^[rwm]{0,3}$/, "a combination of r, w and m"))),
      }),
    ),
  ),
  memory: opt(
    object({
      limit: opt(int64),
      reservation: opt(int64),
      swap: opt(int64),
      kernel: opt(int64),
      kernelTCP: opt(int64),
      swappiness: opt(int(0, 100)),
      disableOOMKiller: opt(bool),
      useHierarchy: opt(bool),
      checkBeforeUpdate: opt(bool),
    }),
  ),
  cpu: opt(
    object({
      shares: opt(uint64),
      quota: opt(int64),
      burst: opt(uint64),
      period: opt(uint64),
      realtimeRuntime: opt(int64),
      realtimePeriod: opt(uint64),
      cpus: opt(str()),
      mems: opt(str()),
      idle: opt(int64),
    }),
  ),
  pids: opt(object({ limit: req(int64) })),
  blockIO: opt(
    object({
      weight: opt(weight),
      leafWeight: opt(weight),
      weightDevice: opt(
        array(
          object(
            { major: req(int64), minor: req(int64), weight: opt(weight), leafWeight: opt(weight) },
            atLeastOneWeight,
          ),
        ),
      ),
      throttleReadBpsDevice: opt(throttleDevices),
      throttleWriteBpsDevice: opt(throttleDevices),
      throttleReadIOPSDevice: opt(throttleDevices),
      throttleWriteIOPSDevice: opt(throttleDevices),
    }),
  ),
  hugepageLimits: opt(array(object({ pageSize: req(str(nonEmpty)), limit: req(uint64) }))),
  network: opt(
    object({
      classID: opt(uint32),
      priorities: opt(array(object({ name: req(str(nonEmpty)), priority: req(uint32) }))),
    }),
  ),
  rdma: opt(record(object({ hcaHandles: opt(uint32), hcaObjects: opt(uint32) }))),
  unified: opt(stringMap),
});

const NAMESPACE_TYPES = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"];

/** Devices need major and minor, except FIFOs (`p`). */
const deviceNumbersRule: ObjectRule = (d, path, out) => {
  if (d.type === "p") return;
  for (const key of ["major", "minor"]) {
    if (d[key] === undefined)
      out.push({ path: prop(path, key), message: `is required for device type ${JSON.stringify(d.type)}` });
  }
};

const SECCOMP_ACTIONS = [
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
  "SCMP_ACT_NOTIFY",
];
const SECCOMP_OPS = [
  "SCMP_CMP_NE",
  "SCMP_CMP_LT",
  "SCMP_CMP_LE",
  "SCMP_CMP_EQ",
  "SCMP_CMP_GE",
  "SCMP_CMP_GT",
  "SCMP_CMP_MASKED_EQ",
];

const listenerMetadataRule: ObjectRule = (s, path, out) => {
  if (s.listenerMetadata !== undefined && s.listenerMetadata !== "" && !s.listenerPath) {
    out.push({ path: prop(path, "listenerMetadata"), message: "must not be set without listenerPath" });
  }
};

const seccompCheck = object(
  {
    defaultAction: req(enumOf(SECCOMP_ACTIONS)),
    defaultErrnoRet: opt(uint32),
    architectures: opt(array(str(matches(/^SCMP_ARCH_[A-Z0-9_]+$/, "an architecture like SCMP_ARCH_X86_64")))),
    flags: opt(array(str(matches(/^SECCOMP_FILTER_FLAG_[A-Z_]+$/, "a flag like SECCOMP_FILTER_FLAG_LOG")))),
    listenerPath: opt(str()),
    listenerMetadata: opt(str()),
    syscalls: opt(
      array(
        object({
          names: req(array(str(nonEmpty), { minItems: 1 })),
          action: req(enumOf(SECCOMP_ACTIONS)),
          errnoRet: opt(uint32),
          args: opt(
            array(
              object({
                index: req(int(0, 5)),
                value: req(uint64),
                valueTwo: opt(uint64),
                op: req(enumOf(SECCOMP_OPS)),
              }),
            ),
          ),
        }),
      ),
    ),
  },
  listenerMetadataRule,
);

const absolutePaths = array(str(absolutePath));

const linuxCheck: Check = object({
  uidMappings: opt(idMappings),
  gidMappings: opt(idMappings),
  timeOffsets: opt(
    record(object({ secs: opt(int64), nanosecs: opt(int(0, 999_999_999)) }), oneOf(["monotonic", "boottime"])),
  ),
  sysctl: opt(stringMap),
  resources: opt(resourcesCheck),
  cgroupsPath: opt(str()),
  namespaces: opt(
    array(object({ type: req(enumOf(NAMESPACE_TYPES)), path: opt(str(absolutePath)) }), {
      uniqueBy: (n) => (isPlainObject(n) && typeof n.type === "string" ? n.type : undefined),
    }),
  ),
  devices: opt(
    array(
      object(
        {
          path: req(str(absolutePath)),
          type: req(enumOf(["c", "b", "u", "p"])),
          major: opt(int64),
          minor: opt(int64),
          fileMode: opt(uint32),
          uid: opt(uint32),
          gid: opt(uint32),
        },
        deviceNumbersRule,
      ),
      { uniqueBy: (d) => (isPlainObject(d) && typeof d.path === "string" ? d.path : undefined) },
    ),
  ),
  seccomp: opt(seccompCheck),
  rootfsPropagation: opt(enumOf(["shared", "slave", "private", "unbindable"])),
  maskedPaths: opt(absolutePaths),
  readonlyPaths: opt(absolutePaths),
  mountLabel: opt(str()),
  intelRdt: opt(
    object({
      closID: opt(str()),
      l3CacheSchema: opt(str()),
      memBwSchema: opt(str()),
      enableCMT: opt(bool),
      enableMBM: opt(bool),
    }),
  ),
  personality: opt(object({ domain: req(enumOf(["LINUX", "LINUX32"])), flags: opt(stringArray) })),
  netDevices: opt(record(object({ name: opt(str()) }))),
  memoryPolicy: opt(
    object({
      mode: req(
        enumOf([
          "MPOL_DEFAULT",
          "MPOL_BIND",
          "MPOL_INTERLEAVE",
          "MPOL_WEIGHTED_INTERLEAVE",
          "MPOL_PREFERRED",
          "MPOL_PREFERRED_MANY",
          "MPOL_LOCAL",
        ]),
      ),
      nodes: req(str()),
      flags: opt(array(enumOf(["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]))),
    }),
  ),
});

/** Outside Windows, process.args needs at least one entry; on Windows, args or commandLine. */
const processArgsRule: ObjectRule = (spec, path, out) => {
  const p = spec.process;
  if (!isPlainObject(p)) return;
  const args = p.args;
  const argsPath = prop(prop(path, "process"), "args");
  if (spec.windows !== undefined) {
    if (args === undefined && p.commandLine === undefined) {
      out.push({ path: argsPath, message: "args or commandLine is required on windows" });
    }
  } else if (args === undefined || (Array.isArray(args) && args.length === 0)) {
    out.push({ path: argsPath, message: "must have at least one entry" });
  }
};

const specCheck: Check = object(
  {
    ociVersion: req(str(matches(SEMVER_RE, "a SemVer 2.0.0 version"))),
    process: opt(processCheck),
    root: opt(object({ path: req(str(nonEmpty)), readonly: opt(bool) })),
    hostname: opt(str()),
    domainname: opt(str()),
    mounts: opt(array(mountCheck)),
    hooks: opt(
      object({
        prestart: opt(hookList),
        createRuntime: opt(hookList),
        createContainer: opt(hookList),
        startContainer: opt(hookList),
        poststart: opt(hookList),
        poststop: opt(hookList),
      }),
    ),
    annotations: opt(stringMap),
    linux: opt(linuxCheck),
    solaris: opt(object({})),
    windows: opt(object({ layerFolders: req(stringArray) })),
    vm: opt(object({ kernel: req(object({ path: req(str(nonEmpty)) })) })),
    zos: opt(object({})),
  },
  processArgsRule,
);

/** Validates a runtime-spec config (config.json): fields, types, ranges, enums and cross-field rules. */
export const validateRuntimeSpec = (value: unknown): ValidationResult => run(specCheck, value);

export function assertValidRuntimeSpec(value: unknown): asserts value is Spec {
  const { ok, problems } = validateRuntimeSpec(value);
  if (!ok) throw new ValidationError("runtime spec", problems);
}
