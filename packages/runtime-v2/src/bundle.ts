import { mkdir, readFile, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fromNodeError, isNotFound } from "@berth/errdefs";
import { validateIdentifier } from "@berth/identifiers";
import { unmountAll } from "@berth/snapshotter";

/** Files a bundle holds besides config.json and rootfs/ (containerd 1.6 names). */
export const BUNDLE_FILES = {
  config: "config.json",
  rootfs: "rootfs",
  work: "work",
  /** Written by the shim on `start`: its ttrpc address. */
  address: "address",
  /** Written by the shim on `start`. */
  shimPid: "shim.pid",
  /** The shim binary that started the bundle, for `delete` after a restart. */
  shimBinaryPath: "shim-binary-path",
  /** The fifo the shim logs into. */
  log: "log",
} as const;

/** An OCI bundle of one task: `<state>/<namespace>/<id>`, its basename the task id, as shims expect. */
export interface Bundle {
  readonly id: string;
  readonly namespace: string;
  readonly path: string;
}

/**
 * Creates the bundle of a task (containerd's NewBundle): `<state>/<ns>/<id>` (0700) with `config.json` (the
 * container's spec), an empty `rootfs/` for the shim to mount, and a `work` link to `<root>/<ns>/<id>`, the
 * runtime's persistent working directory. AlreadyExists when the bundle is there already.
 */
export async function createBundle(
  root: string,
  state: string,
  namespace: string,
  id: string,
  spec: Uint8Array,
): Promise<Bundle> {
  validateIdentifier(id);
  validateIdentifier(namespace);
  const path = join(state, namespace, id);
  const work = join(root, namespace, id);
  const made: string[] = [];
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o711 });
    await mkdir(path, { mode: 0o700 });
    made.push(path);
    await mkdir(join(path, BUNDLE_FILES.rootfs), { mode: 0o711 });
    await mkdir(dirname(work), { recursive: true, mode: 0o711 });
    // a work dir left by an earlier task of the same id is replaced
    await rm(work, { recursive: true, force: true });
    await mkdir(work, { mode: 0o711 });
    made.push(work);
    await symlink(work, join(path, BUNDLE_FILES.work));
    await writeFile(join(path, BUNDLE_FILES.config), spec, { mode: 0o666 });
  } catch (err) {
    // only what this call created goes: an existing bundle (EEXIST on its dir) is left alone
    await Promise.allSettled(made.map((d) => rm(d, { recursive: true, force: true })));
    throw fromNodeError(err, `bundle ${namespace}/${id}`);
  }
  return { id, namespace, path };
}

/** The bundle of an existing task. */
export function loadBundle(state: string, namespace: string, id: string): Bundle {
  return { id, namespace, path: join(state, namespace, id) };
}

/** Reads a small file of the bundle, or undefined when missing. */
export async function readBundleFile(bundle: Bundle, name: string): Promise<string | undefined> {
  try {
    return await readFile(join(bundle.path, name), "utf8");
  } catch (err) {
    if (isNotFound(fromNodeError(err))) return undefined;
    throw err;
  }
}

/**
 * Deletes a bundle (containerd's Bundle.Delete): unmounts the rootfs, then removes the bundle and its work
 * dir, each by renaming to a hidden name first so a crash never leaves a half-deleted bundle under its id.
 */
export async function deleteBundle(bundle: Bundle): Promise<void> {
  let work: string | undefined;
  try {
    work = await readlink(join(bundle.path, BUNDLE_FILES.work));
  } catch {
    work = undefined;
  }
  await unmountAll(join(bundle.path, BUNDLE_FILES.rootfs));
  await atomicDelete(bundle.path);
  if (work !== undefined) await atomicDelete(work);
}

async function atomicDelete(path: string): Promise<void> {
  const hidden = join(dirname(path), `.${basename(path)}`);
  try {
    await rename(path, hidden);
  } catch (err) {
    if (isNotFound(fromNodeError(err))) return;
    throw fromNodeError(err, `remove ${path}`);
  }
  await rm(hidden, { recursive: true, force: true });
}
