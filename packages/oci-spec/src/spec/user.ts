/** /etc/passwd and /etc/group parsing and the user lookups containerd's spec options make in a rootfs. */
import type { RootfsFiles } from "./rootfs.js";

export interface PasswdEntry {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
  readonly shell: string;
}

export interface GroupEntry {
  readonly name: string;
  readonly gid: number;
  readonly members: readonly string[];
}

/** Go's strconv.Atoi for the id fields: decimal digits with an optional sign, else NaN. */
function atoi(s: string | undefined): number {
  return s !== undefined && /^[+-]?\d+$/.test(s) ? Number(s) : Number.NaN;
}

/** Parses passwd(5) text; blank lines and `#` comments are skipped, missing fields are empty or zero. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    out.push({
      name: f[0] ?? "",
      uid: atoi(f[2]) || 0,
      gid: atoi(f[3]) || 0,
      home: f[5] ?? "",
      shell: f[6] ?? "",
    });
  }
  return out;
}

/** Parses group(5) text. */
export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const members = (f[3] ?? "").split(",").filter((m) => m !== "");
    out.push({ name: f[0] ?? "", gid: atoi(f[2]) || 0, members });
  }
  return out;
}

/** What a user string (`name`, `uid`, `name:group`, `uid:gid`, …) resolves to in a rootfs. */
export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups, primary gid first (containerd always lists it). */
  readonly additionalGids: number[];
}

/** A user string that cannot be resolved in the rootfs (containerd's errors, word for word where it has them). */
export class UserLookupError extends Error {
  override readonly name = "UserLookupError";
}

async function users(rootfs: RootfsFiles): Promise<PasswdEntry[] | undefined> {
  const text = await rootfs.readText("/etc/passwd");
  return text === undefined ? undefined : parsePasswd(text);
}

async function groups(rootfs: RootfsFiles): Promise<GroupEntry[] | undefined> {
  const text = await rootfs.readText("/etc/group");
  return text === undefined ? undefined : parseGroup(text);
}

/** Groups that list `username` as a member, other than the one named after the user (containerd's rule). */
async function supplementaryGids(rootfs: RootfsFiles, username: string | undefined): Promise<number[]> {
  if (username === undefined) return [];
  const all = await groups(rootfs);
  return (all ?? []).filter((g) => g.name !== username && g.members.includes(username)).map((g) => g.gid);
}

function withPrimary(gid: number, extra: readonly number[]): number[] {
  return extra.includes(gid) ? [...extra] : [gid, ...extra];
}

/**
 * Resolves an image's `User` (or `--user`) as containerd's WithUser + WithAdditionalGIDs do: a numeric uid not
 * in /etc/passwd runs with gid 0; a name must exist; `user:group` takes each half by number or by name.
 */
export async function resolveUser(userstr: string, rootfs: RootfsFiles): Promise<ResolvedUser> {
  const parts = userstr.split(":");
  let uid: number;
  let gid: number;
  if (parts.length === 1) {
    const n = atoi(parts[0]);
    const list = await users(rootfs);
    if (!Number.isNaN(n)) {
      const u = list?.find((e) => e.uid === n);
      uid = n >>> 0;
      gid = u?.gid ?? 0;
    } else {
      if (list === undefined) throw new UserLookupError("open /etc/passwd: no such file or directory");
      const u = list.find((e) => e.name === userstr);
      if (u === undefined) throw new UserLookupError("no users found");
      uid = u.uid;
      gid = u.gid;
    }
  } else if (parts.length === 2) {
    const [userPart = "", groupPart = ""] = parts;
    const un = atoi(userPart);
    const gn = atoi(groupPart);
    uid = Number.isNaN(un) ? 0 : un >>> 0;
    gid = Number.isNaN(gn) ? 0 : gn >>> 0;
    if (Number.isNaN(un)) {
      const list = await users(rootfs);
      if (list === undefined) throw new UserLookupError("open /etc/passwd: no such file or directory");
      const u = list.find((e) => e.name === userPart);
      if (u === undefined) throw new UserLookupError("no users found");
      uid = u.uid;
    }
    if (Number.isNaN(gn)) {
      const list = await groups(rootfs);
      if (list === undefined) throw new UserLookupError("open /etc/group: no such file or directory");
      const g = list.find((e) => e.name === groupPart);
      if (g === undefined) throw new UserLookupError("no groups found");
      gid = g.gid;
    }
  } else {
    throw new UserLookupError(`invalid USER value ${userstr}`);
  }
  // supplementary groups are looked up for the uid's passwd name (none when the uid has no entry)
  const name = (await users(rootfs))?.find((e) => e.uid === uid)?.name;
  return { uid, gid, additionalGids: withPrimary(gid, await supplementaryGids(rootfs, name)) };
}

/** The groups of root when an image names no user: containerd's WithAdditionalGIDs("root"). */
export async function rootUserGroups(rootfs: RootfsFiles | undefined): Promise<number[]> {
  return withPrimary(0, rootfs === undefined ? [] : await supplementaryGids(rootfs, "root"));
}
