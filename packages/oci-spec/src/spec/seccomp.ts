/** The default seccomp profile: an allow list, widened per architecture and per granted capability. */
import { release as osRelease } from "node:os";
import type { Arch, LinuxSeccomp, LinuxSyscall, Spec } from "../runtime/index.js";
import { DEFAULT_ALLOWED_SYSCALLS } from "./seccomp-syscalls.js";

/** Go's GOARCH names, which is how containerd picks per-architecture rules. */
export type GoArch = "amd64" | "arm64" | "arm" | "386" | "ppc64le" | "s390x" | "riscv64" | "mips64" | "mips64le";

/** Node's `process.arch` as a Go GOARCH. */
export function goArch(nodeArch: string = process.arch): GoArch | string {
  const map: Record<string, GoArch> = {
    x64: "amd64",
    arm64: "arm64",
    arm: "arm",
    ia32: "386",
    ppc64: "ppc64le",
    s390x: "s390x",
    riscv64: "riscv64",
    mips64el: "mips64le",
  };
  return map[nodeArch] ?? nodeArch;
}

const ARCHES: Record<string, Arch[]> = {
  amd64: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  arm64: ["SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"],
  mips64: ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32"],
  mips64le: ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32"],
  s390x: ["SCMP_ARCH_S390", "SCMP_ARCH_S390X"],
  riscv64: ["SCMP_ARCH_RISCV64"],
};

/** Extra syscalls allowed on one architecture. */
const ARCH_SYSCALLS: Record<string, string[]> = {
  ppc64le: ["sync_file_range2", "swapcontext"],
  arm: ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
  arm64: ["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
  amd64: ["arch_prctl", "modify_ldt"],
  "386": ["modify_ldt"],
  s390x: ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"],
  riscv64: ["riscv_flush_icache"],
};

/** Syscalls a capability in the bounding set unlocks. */
const CAPABILITY_SYSCALLS: Record<string, string[]> = {
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
  CAP_SYS_ADMIN: [
    "bpf",
    "clone",
    "clone3",
    "fanotify_init",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_tree",
    "perf_event_open",
    "quotactl",
    "quotactl_fd",
    "setdomainname",
    "sethostname",
    "setns",
    "syslog",
    "umount",
    "umount2",
    "unshare",
  ],
  CAP_SYS_BOOT: ["reboot"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_SYS_MODULE: ["delete_module", "init_module", "finit_module"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_PTRACE: ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  CAP_SYS_NICE: ["get_mempolicy", "mbind", "set_mempolicy"],
  CAP_SYSLOG: ["syslog"],
  CAP_BPF: ["bpf"],
  CAP_PERFMON: ["perf_event_open"],
};

/** personality(2) values a container may set: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query. */
const PERSONALITIES = [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff];

/** CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP: namespace-creating clone flags. */
const CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000;

const ENOSYS = 38;

export interface SeccompOptions {
  /** GOARCH of the machine the container runs on (default: this machine's). */
  readonly arch?: string;
  /** Kernel release (`uname -r`); ptrace is allowed from 4.8 on, where seccomp can no longer be bypassed with it. */
  readonly kernelRelease?: string;
}

function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [maj, min] = [Number(m[1]), Number(m[2])];
  return maj > major || (maj === major && min >= minor);
}

const allow = (names: string[]): LinuxSyscall => ({ names, action: "SCMP_ACT_ALLOW" });

/**
 * containerd's default seccomp profile for a spec: deny by default (EPERM), allow the common list, add rules for
 * the architecture and for each capability in the spec's bounding set; without CAP_SYS_ADMIN, clone may not
 * create namespaces and clone3 fails with ENOSYS (so that libc falls back to clone).
 */
export function defaultSeccompProfile(spec: Spec, options: SeccompOptions = {}): LinuxSeccomp {
  const arch = options.arch ?? goArch();
  const release = options.kernelRelease ?? osRelease();
  const syscalls: LinuxSyscall[] = [allow([...DEFAULT_ALLOWED_SYSCALLS])];
  for (const value of PERSONALITIES) {
    syscalls.push({ names: ["personality"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value, op: "SCMP_CMP_EQ" }] });
  }
  if (kernelAtLeast(release, 4, 8)) syscalls.push(allow(["ptrace"]));
  const archNames = ARCH_SYSCALLS[arch === "s390" ? "s390x" : arch];
  if (archNames) syscalls.push(allow([...archNames]));
  let admin = false;
  for (const cap of spec.process?.capabilities?.bounding ?? []) {
    const names = CAPABILITY_SYSCALLS[cap];
    if (names === undefined) continue;
    if (cap === "CAP_SYS_ADMIN") admin = true;
    syscalls.push(allow([...names]));
  }
  if (!admin) {
    // on s390 the flags are clone's second argument
    const index = arch === "s390" || arch === "s390x" ? 1 : 0;
    syscalls.push({
      names: ["clone"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index, value: CLONE_NAMESPACE_FLAGS, op: "SCMP_CMP_MASKED_EQ" }],
    });
    syscalls.push({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS });
  }
  return { defaultAction: "SCMP_ACT_ERRNO", architectures: [...(ARCHES[arch] ?? [])], syscalls };
}
