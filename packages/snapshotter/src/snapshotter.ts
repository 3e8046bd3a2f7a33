/**
 * The snapshotter interfaces (containerd's core/snapshots): parent chains of layers, Active / View /
 * Committed kinds, labels, usage, mounts. No Connect types here.
 */
import { pluginType } from "@berth/plugin";

/** The context every call takes first (containerd's context.Context). Backends ignore the namespace. */
export interface Ctx {
  readonly namespace: string;
  readonly signal?: AbortSignal;
  /** Lease from the `containerd-lease` header (used by the metadata layer, not by backends). */
  readonly lease?: string;
}

/** Snapshot kinds: Active (writable, from Prepare), View (read-only, from View), Committed (from Commit). */
export const Kind = {
  Active: "active",
  View: "view",
  Committed: "committed",
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

export interface Info {
  /** The key (active, view) or name (committed). */
  readonly name: string;
  /** The parent's name, `""` for none. */
  readonly parent: string;
  readonly kind: Kind;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly labels: Record<string, string>;
}

/** Resources used by one snapshot's own layer (parents excluded). */
export interface Usage {
  /** Bytes on disk (allocated blocks, hard links counted once). */
  readonly size: number;
  /** Inodes, the layer's root directory included. */
  readonly inodes: number;
}

/**
 * A mount as containerd's `mount.Mount`: `type` and `source` for mount(8), `options` as `-o` entries.
 * `target` (optional) is a path under the mount point given to `mountAll`; snapshotters leave it unset.
 */
export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

export interface SnapshotOptions {
  readonly labels?: Record<string, string>;
}

export type WalkFn = (info: Info) => void | Promise<void>;

/** The fields `update` reads: the name and the labels. */
export interface InfoUpdate {
  readonly name: string;
  readonly labels?: Record<string, string>;
}

/**
 * A Snapshotter (containerd's `snapshots.Snapshotter`). Keys and committed names share one key space.
 *
 * Errors: NotFound for a missing key or parent; AlreadyExists for a key or name in use; InvalidArgument for an
 * empty key, a parent that is not committed, or a bad field path; FailedPrecondition for committing a snapshot
 * that is not active, asking the mounts of a committed snapshot, or removing a snapshot that has children.
 */
export interface Snapshotter {
  /** Info of the snapshot `key` (active, view or committed). */
  stat(ctx: Ctx, key: string): Promise<Info>;
  /**
   * Updates labels by field paths: `labels` replaces all, `labels.<key>` sets one (an empty value removes
   * it); no paths replace all labels. Any other path is InvalidArgument.
   */
  update(ctx: Ctx, info: InfoUpdate, fieldpaths?: readonly string[]): Promise<Info>;
  /** Size and inodes of this snapshot's own layer (a committed snapshot's usage is recorded at commit). */
  usage(ctx: Ctx, key: string): Promise<Usage>;
  /** The mounts of an active or view snapshot. */
  mounts(ctx: Ctx, key: string): Promise<Mount[]>;
  /** Creates an active snapshot on `parent` (`""` for an empty one) and returns its mounts. */
  prepare(ctx: Ctx, key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]>;
  /** Creates a read-only view of `parent` and returns its mounts. */
  view(ctx: Ctx, key: string, parent: string, options?: SnapshotOptions): Promise<Mount[]>;
  /** Turns the active snapshot `key` into the committed snapshot `name` (`key` is gone afterwards). */
  commit(ctx: Ctx, name: string, key: string, options?: SnapshotOptions): Promise<void>;
  /** Removes a snapshot of any kind that has no children. */
  remove(ctx: Ctx, key: string): Promise<void>;
  /** Calls `fn` for every snapshot matching any filter (all when none), sorted by key. */
  walk(ctx: Ctx, fn: WalkFn, filters?: readonly string[]): Promise<void>;
  /** Releases the snapshotter's resources (its database). */
  close(): Promise<void>;
}

/** Optional interface: frees backend resources no snapshot refers to (containerd's `snapshots.Cleaner`). */
export interface Cleaner {
  cleanup(ctx: Ctx): Promise<void>;
}

export function isCleaner<S extends object>(s: S): s is S & Cleaner {
  return typeof (s as Partial<Cleaner>).cleanup === "function";
}

/** The snapshotter plugin type (containerd's `io.containerd.snapshotter.v1`). */
export const SnapshotPlugin = pluginType<Snapshotter>("io.containerd.snapshotter.v1");

/** Labels with this prefix are passed to backend snapshotters by the metadata layer (containerd's rule). */
export const SNAPSHOT_LABEL_PREFIX = "containerd.io/snapshot/";
