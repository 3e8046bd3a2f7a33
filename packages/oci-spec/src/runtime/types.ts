// OCI runtime-spec 1.2 types (config.json and state), with the spec's JSON field names.
// Fields from 1.2.1 (execCPUAffinity) and 1.3 (netDevices, memoryPolicy) are included and marked.

/** The runtime-spec version these types follow. */
export const RuntimeSpecVersion = "1.2.1";

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: Root;
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Hooks;
  annotations?: Record<string, string>;
  linux?: Linux;
  solaris?: Solaris;
  windows?: Windows;
  vm?: VM;
  zos?: ZOS;
}

export interface Root {
  path: string;
  readonly?: boolean;
}

export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  uidMappings?: LinuxIDMapping[];
  gidMappings?: LinuxIDMapping[];
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  /** Seconds; must be greater than zero. */
  timeout?: number;
}

export interface Hooks {
  /** @deprecated in favour of createRuntime, createContainer and startContainer. */
  prestart?: Hook[];
  createRuntime?: Hook[];
  createContainer?: Hook[];
  startContainer?: Hook[];
  poststart?: Hook[];
  poststop?: Hook[];
}

export interface Process {
  terminal?: boolean;
  consoleSize?: Box;
  user: User;
  args?: string[];
  /** Windows only: the whole command line, used instead of args. */
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: LinuxCapabilities;
  rlimits?: POSIXRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  scheduler?: Scheduler;
  selinuxLabel?: string;
  ioPriority?: LinuxIOPriority;
  /** @since runtime-spec 1.2.1 */
  execCPUAffinity?: CPUAffinity;
}

export interface Box {
  height: number;
  width: number;
}

export interface User {
  uid?: number;
  gid?: number;
  umask?: number;
  additionalGids?: number[];
  /** Windows only. */
  username?: string;
}

export interface LinuxCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface POSIXRlimit {
  /** `RLIMIT_NOFILE`, … */
  type: string;
  hard: number;
  soft: number;
}

export type LinuxSchedulerPolicy =
  | "SCHED_OTHER"
  | "SCHED_FIFO"
  | "SCHED_RR"
  | "SCHED_BATCH"
  | "SCHED_ISO"
  | "SCHED_IDLE"
  | "SCHED_DEADLINE";

export type LinuxSchedulerFlag =
  | "SCHED_FLAG_RESET_ON_FORK"
  | "SCHED_FLAG_RECLAIM"
  | "SCHED_FLAG_DL_OVERRUN"
  | "SCHED_FLAG_KEEP_POLICY"
  | "SCHED_FLAG_KEEP_PARAMS"
  | "SCHED_FLAG_UTIL_CLAMP_MIN"
  | "SCHED_FLAG_UTIL_CLAMP_MAX";

export interface Scheduler {
  policy: LinuxSchedulerPolicy;
  nice?: number;
  priority?: number;
  flags?: LinuxSchedulerFlag[];
  runtime?: number;
  deadline?: number;
  period?: number;
}

export type IOPriorityClass = "IOPRIO_CLASS_RT" | "IOPRIO_CLASS_BE" | "IOPRIO_CLASS_IDLE";

export interface LinuxIOPriority {
  class: IOPriorityClass;
  priority: number;
}

/** @since runtime-spec 1.2.1 */
export interface CPUAffinity {
  initial?: string;
  final?: string;
}

export interface Linux {
  uidMappings?: LinuxIDMapping[];
  gidMappings?: LinuxIDMapping[];
  sysctl?: Record<string, string>;
  resources?: LinuxResources;
  cgroupsPath?: string;
  namespaces?: LinuxNamespace[];
  devices?: LinuxDevice[];
  seccomp?: LinuxSeccomp;
  rootfsPropagation?: RootfsPropagation;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  mountLabel?: string;
  intelRdt?: LinuxIntelRdt;
  personality?: LinuxPersonality;
  /** Keyed by clock: `monotonic`, `boottime`. */
  timeOffsets?: Record<string, LinuxTimeOffset>;
  /** @since runtime-spec 1.3 — keyed by host interface name. */
  netDevices?: Record<string, LinuxNetDevice>;
  /** @since runtime-spec 1.3 */
  memoryPolicy?: LinuxMemoryPolicy;
}

export type RootfsPropagation = "shared" | "slave" | "private" | "unbindable";

export type LinuxNamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup" | "time";

export interface LinuxNamespace {
  type: LinuxNamespaceType;
  path?: string;
}

export interface LinuxIDMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface LinuxTimeOffset {
  secs?: number;
  nanosecs?: number;
}

export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  network?: LinuxNetwork;
  /** Keyed by RDMA device name. */
  rdma?: Record<string, LinuxRdma>;
  /** cgroup v2 files, `memory.high` → value. */
  unified?: Record<string, string>;
}

export interface LinuxDeviceCgroup {
  allow: boolean;
  /** `a`, `c` or `b`. */
  type?: string;
  major?: number;
  minor?: number;
  /** A combination of `r`, `w`, `m`. */
  access?: string;
}

export interface LinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  /** @deprecated */
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
}

export interface LinuxCPU {
  shares?: number;
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
}

export interface LinuxPids {
  limit: number;
}

export interface LinuxBlockIODevice {
  major: number;
  minor: number;
}

export interface LinuxWeightDevice extends LinuxBlockIODevice {
  weight?: number;
  leafWeight?: number;
}

export interface LinuxThrottleDevice extends LinuxBlockIODevice {
  rate: number;
}

export interface LinuxBlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

export interface LinuxHugepageLimit {
  /** `2MB`, `1GB`, … */
  pageSize: string;
  limit: number;
}

export interface LinuxInterfacePriority {
  name: string;
  priority: number;
}

export interface LinuxNetwork {
  classID?: number;
  priorities?: LinuxInterfacePriority[];
}

export interface LinuxRdma {
  hcaHandles?: number;
  hcaObjects?: number;
}

export interface LinuxDevice {
  path: string;
  /** `c`, `b`, `u` or `p`. */
  type: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export type LinuxSeccompAction =
  | "SCMP_ACT_KILL"
  | "SCMP_ACT_KILL_PROCESS"
  | "SCMP_ACT_KILL_THREAD"
  | "SCMP_ACT_TRAP"
  | "SCMP_ACT_ERRNO"
  | "SCMP_ACT_TRACE"
  | "SCMP_ACT_ALLOW"
  | "SCMP_ACT_LOG"
  | "SCMP_ACT_NOTIFY";

export type LinuxSeccompOperator =
  | "SCMP_CMP_NE"
  | "SCMP_CMP_LT"
  | "SCMP_CMP_LE"
  | "SCMP_CMP_EQ"
  | "SCMP_CMP_GE"
  | "SCMP_CMP_GT"
  | "SCMP_CMP_MASKED_EQ";

/** `SCMP_ARCH_X86_64`, `SCMP_ARCH_AARCH64`, … */
export type Arch = `SCMP_ARCH_${string}`;

/** `SECCOMP_FILTER_FLAG_LOG`, `SECCOMP_FILTER_FLAG_SPEC_ALLOW`, `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`, … */
export type LinuxSeccompFlag = string;

export interface LinuxSeccomp {
  defaultAction: LinuxSeccompAction;
  defaultErrnoRet?: number;
  architectures?: Arch[];
  flags?: LinuxSeccompFlag[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: LinuxSyscall[];
}

export interface LinuxSyscall {
  names: string[];
  action: LinuxSeccompAction;
  errnoRet?: number;
  args?: LinuxSeccompArg[];
}

export interface LinuxSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: LinuxSeccompOperator;
}

export interface LinuxIntelRdt {
  closID?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
  enableCMT?: boolean;
  enableMBM?: boolean;
}

export type LinuxPersonalityDomain = "LINUX" | "LINUX32";

export interface LinuxPersonality {
  domain: LinuxPersonalityDomain;
  flags?: string[];
}

/** @since runtime-spec 1.3 */
export interface LinuxNetDevice {
  /** Name of the interface inside the container; defaults to the host name. */
  name?: string;
}

/** @since runtime-spec 1.3 */
export interface LinuxMemoryPolicy {
  /** `MPOL_DEFAULT`, `MPOL_BIND`, `MPOL_INTERLEAVE`, `MPOL_WEIGHTED_INTERLEAVE`, `MPOL_PREFERRED`, `MPOL_PREFERRED_MANY`, `MPOL_LOCAL`. */
  mode: string;
  nodes: string;
  flags?: string[];
}

export interface Solaris {
  milestone?: string;
  limitpriv?: string;
  maxShmMemory?: string;
  anet?: SolarisAnet[];
  cappedCPU?: { ncpus?: string };
  cappedMemory?: { physical?: string; swap?: string };
}

export interface SolarisAnet {
  linkname?: string;
  lowerLink?: string;
  allowedAddress?: string;
  configureAllowedAddress?: string;
  defrouter?: string;
  linkProtection?: string;
  macAddress?: string;
}

export interface Windows {
  layerFolders: string[];
  devices?: Array<{ id: string; idType: string }>;
  resources?: {
    memory?: { limit?: number };
    cpu?: { count?: number; shares?: number; maximum?: number };
    storage?: { iops?: number; bps?: number; sandboxSize?: number };
  };
  credentialSpec?: unknown;
  servicing?: boolean;
  ignoreFlushesDuringBoot?: boolean;
  hyperv?: { utilityVMPath?: string };
  network?: {
    endpointList?: string[];
    allowUnqualifiedDNSQuery?: boolean;
    DNSSearchList?: string[];
    networkSharedContainerName?: string;
    networkNamespace?: string;
  };
}

export interface VM {
  hypervisor?: { path: string; parameters?: string[] };
  kernel: { path: string; parameters?: string[]; initrd?: string };
  image?: { path: string; format: string };
}

export interface ZOS {
  namespaces?: Array<{ type: "pid" | "mount" | "ipc" | "uts"; path?: string }>;
}

export type ContainerStatus = "creating" | "created" | "running" | "stopped";

/** The state of a container, as the runtime's `state` command reports it. */
export interface State {
  ociVersion: string;
  id: string;
  status: ContainerStatus;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}
