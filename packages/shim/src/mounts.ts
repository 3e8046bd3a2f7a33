import { InvalidArgumentError } from "@berth/errdefs";
import { MNT_DETACH, type ShimNative } from "./native.js";

/** A rootfs mount as containerd sends it (containerd.types.Mount). */
export interface RootfsMount {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_REMOUNT = 0x20;
const MS_NOATIME = 0x400;
const MS_NODIRATIME = 0x800;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_RELATIME = 0x200000;
const MS_STRICTATIME = 0x1000000;

/** Options that are mount(2) flags (set or cleared); everything else is filesystem data. */
const FLAGS: Record<string, [clear: boolean, flag: number]> = {
  ro: [false, MS_RDONLY],
  rw: [true, MS_RDONLY],
  nosuid: [false, MS_NOSUID],
  suid: [true, MS_NOSUID],
  nodev: [false, MS_NODEV],
  dev: [true, MS_NODEV],
  noexec: [false, MS_NOEXEC],
  exec: [true, MS_NOEXEC],
  noatime: [false, MS_NOATIME],
  nodiratime: [false, MS_NODIRATIME],
  relatime: [false, MS_RELATIME],
  strictatime: [false, MS_STRICTATIME],
  bind: [false, MS_BIND],
  rbind: [false, MS_BIND | MS_REC],
  defaults: [false, 0],
};

/** Mounts containerd's rootfs mounts, in order, on `target`. */
export function mountAll(native: ShimNative, mounts: readonly RootfsMount[], target: string): void {
  for (const m of mounts) {
    let flags = 0;
    const data: string[] = [];
    for (const opt of m.options) {
      const f = FLAGS[opt];
      if (f === undefined) data.push(opt);
      else if (f[0]) flags &= ~f[1];
      else flags |= f[1];
    }
    const type = m.type === "bind" ? "none" : m.type;
    if (type === "") throw new InvalidArgumentError("rootfs mount without a type", { bare: true });
    const joined = data.join(",");
    if (joined.length >= 4096)
      throw new InvalidArgumentError("rootfs mount options longer than a page", { bare: true });
    native.mount(m.source, target, type, flags, joined);
    if (flags & MS_BIND && flags & MS_RDONLY) {
      // a bind mount ignores MS_RDONLY until remounted
      native.mount("", target, "", flags | MS_REMOUNT, "");
    }
  }
}

/** Unmounts everything stacked on `target`. */
export function unmountAll(native: ShimNative, target: string): void {
  for (let i = 0; i < 32; i++) {
    if (!native.umount(target, MNT_DETACH)) return;
  }
}
