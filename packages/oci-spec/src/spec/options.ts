/**
 * Spec options: small functions that change a generated spec, applied in order as containerd's `oci.SpecOpts`
 * (ctr run builds its spec from the default one with these).
 */
import { readFileSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { posix } from "node:path";
import type { ImageConfigConfig } from "../image/index.js";
import type { LinuxDevice, LinuxNamespaceType, Mount, Process, Spec } from "../runtime/index.js";
import { DEFAULT_UNIX_ENV, generateDefaultSpec } from "./defaults.js";
import type { RootfsFiles } from "./rootfs.js";
import { defaultSeccompProfile, type SeccompOptions } from "./seccomp.js";
import { resolveUser, rootUserGroups } from "./user.js";

/** What options may consult besides the spec: the container and, for user lookups, its root filesystem. */
export interface SpecContext {
  readonly id: string;
  readonly namespace: string;
  /** The container's rootfs (its snapshot), for resolving users and groups from /etc/passwd and /etc/group. */
  readonly rootfs?: RootfsFiles;
}

export type SpecOpt = (spec: Spec, ctx: SpecContext) => void | Promise<void>;

/** The default spec for `ctx`, then every option in order. */
export async function generateSpec(ctx: SpecContext, ...opts: SpecOpt[]): Promise<Spec> {
  const spec = generateDefaultSpec(ctx.id, ctx.namespace);
  for (const opt of opts) await opt(spec, ctx);
  return spec;
}

function processOf(spec: Spec): Process {
  spec.process ??= { user: {}, cwd: "" };
  return spec.process;
}

function linuxOf(spec: Spec) {
  spec.linux ??= {};
  return spec.linux;
}

function resourcesOf(spec: Spec) {
  const linux = linuxOf(spec);
  linux.resources ??= {};
  return linux.resources;
}

/**
 * Merges `KEY=value` overrides into `defaults`: a key already present is replaced in place, a new one appended, and
 * a bare `KEY` (no `=`) removes it.
 */
export function replaceOrAppendEnv(defaults: readonly string[], overrides: readonly string[]): string[] {
  const result: (string | undefined)[] = [...defaults];
  const index = new Map<string, number>();
  for (const [i, e] of defaults.entries()) index.set(e.split("=", 1)[0] ?? e, i);
  for (const value of overrides) {
    const eq = value.indexOf("=");
    if (eq < 0) {
      const i = index.get(value);
      if (i !== undefined) result[i] = undefined;
      continue;
    }
    const i = index.get(value.slice(0, eq));
    if (i !== undefined) result[i] = value;
    else result.push(value);
  }
  return result.filter((e): e is string => e !== undefined && e !== "");
}

export const withEnv =
  (env: readonly string[]): SpecOpt =>
  (spec) => {
    if (env.length === 0) return;
    const p = processOf(spec);
    p.env = replaceOrAppendEnv(p.env ?? [], env);
  };

export const withProcessArgs =
  (...args: string[]): SpecOpt =>
  (spec) => {
    const p = processOf(spec);
    p.args = args;
    delete p.commandLine;
  };

export const withProcessCwd =
  (cwd: string): SpecOpt =>
  (spec) => {
    processOf(spec).cwd = cwd;
  };

/** A terminal for the process, and `TERM=xterm` in its environment. */
export const withTTY: SpecOpt = (spec) => {
  const p = processOf(spec);
  p.terminal = true;
  if (spec.linux !== undefined) p.env = [...(p.env ?? []), "TERM=xterm"];
};

export const withHostname =
  (name: string): SpecOpt =>
  (spec) => {
    spec.hostname = name;
  };

export const withMounts =
  (mounts: readonly Mount[]): SpecOpt =>
  (spec) => {
    spec.mounts = [...(spec.mounts ?? []), ...mounts];
  };

export const withAnnotations =
  (annotations: Readonly<Record<string, string>>): SpecOpt =>
  (spec) => {
    if (Object.keys(annotations).length === 0) return;
    spec.annotations = { ...(spec.annotations ?? {}), ...annotations };
  };

export const withRootFSReadonly: SpecOpt = (spec) => {
  spec.root ??= { path: "" };
  spec.root.readonly = true;
};

export const withRootFSPath =
  (path: string): SpecOpt =>
  (spec) => {
    spec.root ??= { path };
    spec.root.path = path;
  };

/** Shares the host's namespace of this type (the entry is removed from the spec). */
export const withHostNamespace =
  (type: LinuxNamespaceType): SpecOpt =>
  (spec) => {
    const linux = linuxOf(spec);
    linux.namespaces = (linux.namespaces ?? []).filter((ns) => ns.type !== type);
  };

const readOnlyBind = (path: string): Mount => ({
  destination: path,
  type: "bind",
  source: path,
  options: ["rbind", "ro"],
});

export const withHostHostsFile: SpecOpt = (spec) =>
  withMounts([readOnlyBind("/etc/hosts")])(spec, { id: "", namespace: "" });
export const withHostResolvconf: SpecOpt = (spec) =>
  withMounts([readOnlyBind("/etc/resolv.conf")])(spec, { id: "", namespace: "" });

/**
 * Host networking as `ctr run --net-host`: no network namespace, the host's /etc/hosts and /etc/resolv.conf, and
 * `HOSTNAME` set to the host's name.
 */
export const withHostNetwork =
  (hostname: string = osHostname()): SpecOpt =>
  async (spec, ctx) => {
    for (const opt of [
      withHostNamespace("network"),
      withHostHostsFile,
      withHostResolvconf,
      withEnv([`HOSTNAME=${hostname}`]),
    ]) {
      await opt(spec, ctx);
    }
  };

export const withMemoryLimit =
  (bytes: number): SpecOpt =>
  (spec) => {
    if (spec.linux === undefined) return;
    const r = resourcesOf(spec);
    r.memory = { ...(r.memory ?? {}), limit: bytes };
  };

/** CFS quota and period in microseconds (ctr's --cpu-quota/--cpu-period). */
export const withCPUCFS =
  (quota: number, period: number): SpecOpt =>
  (spec) => {
    const r = resourcesOf(spec);
    r.cpu = { ...(r.cpu ?? {}), quota, period };
  };

/** `--cpus 1.5`: a CFS quota of 1.5 × a 100 ms period. */
export const withCPUs = (cpus: number): SpecOpt => withCPUCFS(Math.trunc(cpus * 100_000), 100_000);

export const withCPUShares =
  (shares: number): SpecOpt =>
  (spec) => {
    const r = resourcesOf(spec);
    r.cpu = { ...(r.cpu ?? {}), shares };
  };

/** Allows null, zero, full, random, urandom, tty, console, ptmx and /dev/pts/* in the device cgroup. */
export const withDefaultUnixDevices: SpecOpt = (spec) => {
  const r = resourcesOf(spec);
  const char = (major: number, minor?: number) => ({
    allow: true,
    type: "c",
    major,
    ...(minor === undefined ? {} : { minor }),
    access: "rwm",
  });
  r.devices = [
    ...(r.devices ?? []),
    char(1, 3),
    char(1, 8),
    char(1, 7),
    char(5, 0),
    char(1, 5),
    char(1, 9),
    char(5, 1),
    char(136),
    char(5, 2),
  ];
};

export const withAllDevicesAllowed: SpecOpt = (spec) => {
  resourcesOf(spec).devices = [{ allow: true, access: "rwm" }];
};

/** The default seccomp profile, computed for the capabilities the spec has at this point. */
export const withDefaultSeccomp =
  (options: SeccompOptions = {}): SpecOpt =>
  (spec) => {
    linuxOf(spec).seccomp = defaultSeccompProfile(spec, options);
  };

/** Capability names by bit number (linux/capability.h). */
export const CAPABILITY_NAMES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** The effective capabilities of this process (`CapEff` in /proc/self/status), by name in bit order. */
export function currentCapabilities(status: string = readFileSync("/proc/self/status", "utf8")): string[] {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
  const bits = BigInt(`0x${hex}`);
  return CAPABILITY_NAMES.filter((_, i) => (bits >> BigInt(i)) & 1n);
}

export const withCapabilities =
  (caps: readonly string[]): SpecOpt =>
  (spec) => {
    const p = processOf(spec);
    p.capabilities = {
      ...(p.capabilities ?? {}),
      bounding: [...caps],
      effective: [...caps],
      permitted: [...caps],
    };
  };

/** Directories of /dev that hold no devices a container should get. */
const SKIPPED_DEV_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** Every character and block device under /dev (as containerd's HostDevices), in lexical walk order. */
export async function hostDevices(root = "/dev"): Promise<LinuxDevice[]> {
  const out: LinuxDevice[] = [];
  const walk = async (dir: string) => {
    const names = (await readdir(dir).catch(() => [] as string[])).sort();
    for (const name of names) {
      const path = posix.join(dir, name);
      const st = await stat(path).catch(() => undefined);
      if (st === undefined) continue;
      if (st.isDirectory()) {
        if (!SKIPPED_DEV_DIRS.has(name)) await walk(path);
        continue;
      }
      if (name === "console") continue;
      if (!st.isCharacterDevice() && !st.isBlockDevice()) continue;
      const major = Number((BigInt(st.rdev) >> 8n) & 0xfffn) | Number((BigInt(st.rdev) >> 32n) & ~0xfffn);
      const minor = Number(BigInt(st.rdev) & 0xffn) | Number((BigInt(st.rdev) >> 12n) & ~0xffn);
      out.push({
        path,
        type: st.isCharacterDevice() ? "c" : "b",
        major,
        minor,
        fileMode: st.mode & 0o777,
        uid: st.uid,
        gid: st.gid,
      });
    }
  };
  await walk(root);
  return out;
}

/**
 * `--privileged`: this process's capabilities, no masked or read-only paths, writable sysfs and cgroupfs, no
 * seccomp, AppArmor or SELinux label, every host device, and all devices allowed in the device cgroup.
 */
export const withPrivileged: SpecOpt = async (spec, ctx) => {
  await withCapabilities(currentCapabilities())(spec, ctx);
  const linux = linuxOf(spec);
  delete linux.maskedPaths;
  delete linux.readonlyPaths;
  for (const m of spec.mounts ?? []) {
    if (m.type === "sysfs" || m.type === "cgroup") m.options = (m.options ?? []).map((o) => (o === "ro" ? "rw" : o));
  }
  const p = processOf(spec);
  delete p.selinuxLabel;
  delete p.apparmorProfile;
  delete linux.seccomp;
  withAllDevicesAllowed(spec, ctx);
  linux.devices = [...(linux.devices ?? []), ...(await hostDevices())];
};

export const withNewPrivileges: SpecOpt = (spec) => {
  processOf(spec).noNewPrivileges = false;
};

export const withCgroup =
  (path: string): SpecOpt =>
  (spec) => {
    linuxOf(spec).cgroupsPath = path;
  };

/** The user and groups of a user string, resolved in the container's rootfs. */
export const withUser =
  (userstr: string): SpecOpt =>
  async (spec, ctx) => {
    const p = processOf(spec);
    const resolved = await resolveUser(userstr, ctx.rootfs ?? { readText: async () => undefined });
    p.user = { ...p.user, uid: resolved.uid, gid: resolved.gid, additionalGids: resolved.additionalGids };
  };

/** The parts of an image config a container runs with. */
export type ImageRunConfig = Pick<ImageConfigConfig, "Env" | "Entrypoint" | "Cmd" | "WorkingDir" | "User">;

/**
 * The image's environment (the default PATH when it sets none) under the spec's, `Entrypoint + (args or Cmd)`,
 * its working directory (default `/`) and its user (root otherwise), as containerd's WithImageConfigArgs.
 */
export const withImageConfig =
  (config: ImageRunConfig | undefined, args: readonly string[] = []): SpecOpt =>
  async (spec, ctx) => {
    const p = processOf(spec);
    const defaults = config?.Env && config.Env.length > 0 ? config.Env : DEFAULT_UNIX_ENV;
    p.env = replaceOrAppendEnv(defaults, p.env ?? []);
    const cmd = args.length > 0 ? args : (config?.Cmd ?? []);
    p.args = [...(config?.Entrypoint ?? []), ...cmd];
    p.cwd = config?.WorkingDir ? config.WorkingDir : "/";
    if (config?.User) {
      await withUser(config.User)(spec, ctx);
    } else {
      p.user = { ...p.user, additionalGids: await rootUserGroups(ctx.rootfs) };
    }
  };
