import { join } from "node:path";
import type { ContentStore } from "@berth/content-store";
import { FailedPreconditionError, NotFoundError } from "@berth/errdefs";
import { type Logger, pluginType } from "@berth/plugin";
import type { Snapshotter } from "@berth/snapshotter";
import { type NamespacedContentOptions, createNamespacedContentStore, registerContentProbe } from "./content.js";
import { type SqliteDatabase, openDatabase } from "./db.js";
import { contentResourceKind, contentRootSource, ingestResourceKind, leaseRootSource } from "./gc/builtin.js";
import { GcLock } from "./gc/lock.js";
import type { GcResourceKind, GcRootSource } from "./gc/types.js";
import { ContainerStore, containerRootSource, registerContainerProbe } from "./containers.js";
import { ImageStore, imageRootSource, registerImageProbe } from "./images.js";
import { LeaseStore } from "./leases.js";
import { NamespaceStore } from "./namespaces.js";
import {
  collectSnapshotterBackend,
  createNamespacedSnapshotter,
  registerSnapshotProbe,
  snapshotResourceKind,
  snapshotRootSource,
} from "./snapshots.js";

/** What changed in the database: deletions make the garbage collector run soon, mutations eventually. */
export type MetadataChange = "delete" | "mutate";

/**
 * The metadata database: namespaced records of every object kind (containerd's `metadata.DB`). Content and
 * snapshot backends are shared; which namespace sees what is recorded here.
 */
export class MetadataDb {
  readonly db: SqliteDatabase;
  readonly path: string;
  readonly namespaces: NamespaceStore;
  readonly leases: LeaseStore;
  readonly images: ImageStore;
  readonly containers: ContainerStore;
  /** Held shared by writers that put data into a backend before recording it, exclusively by the collector. */
  readonly gcLock = new GcLock();
  readonly #rootSources: GcRootSource[] = [];
  readonly #resourceKinds: GcResourceKind[] = [];
  readonly #listeners = new Set<(change: MetadataChange) => void>();
  #content: ContentStore | undefined;
  #contentBackend: ContentStore | undefined;
  readonly #snapshotters = new Map<string, Snapshotter>();
  readonly #snapshotterBackends = new Map<string, Snapshotter>();
  /** Snapshotters whose backend may hold snapshots no record names (containerd's dirtySS). */
  readonly #dirtySnapshotters = new Set<string>();
  /**
   * Whether the content backend may hold blobs or ingests no record names (containerd's dirtyCS): set when
   * records go, and at start for leftovers of a crash. A collection that removed no content skips the walk of
   * every blob on disk.
   */
  #contentDirty = true;

  constructor(path: string) {
    this.path = path;
    this.db = openDatabase({ path });
    this.namespaces = new NamespaceStore(this.db);
    this.leases = new LeaseStore(this.db, { onDelete: () => this.notifyChange("delete") });
    this.images = new ImageStore(this.db, {
      onDelete: () => this.notifyChange("delete"),
      onMutate: () => this.notifyChange("mutate"),
    });
    this.containers = new ContainerStore(this.db, {
      onDelete: () => this.notifyChange("delete"),
      onMutate: () => this.notifyChange("mutate"),
    });
    registerContainerProbe(this);
    this.addGcRootSource(containerRootSource(this.db));
    registerContentProbe(this);
    registerImageProbe(this);
    this.addGcRootSource(imageRootSource(this.db));
    this.addGcRootSource(leaseRootSource(this.db));
    this.addGcRootSource(contentRootSource(this.db));
    this.addGcResourceKind(contentResourceKind(this.db, () => this.markContentDirty()));
    this.addGcResourceKind(ingestResourceKind(this.db, () => this.markContentDirty()));
    registerSnapshotProbe(this);
    this.addGcRootSource(snapshotRootSource(this.db));
    this.addGcResourceKind(snapshotResourceKind(this.db, (name) => this.markSnapshotterDirty(name)));
  }

  /**
   * Puts a namespaced snapshotter over a shared backend under `name` (containerd's `metadata.NewDB(bolt, cs,
   * snapshotters)`) and returns it; the collector removes unrecorded snapshots from that backend.
   */
  attachSnapshotter(name: string, backend: Snapshotter): Snapshotter {
    if (this.#snapshotters.has(name)) throw new FailedPreconditionError(`snapshotter ${name} already attached`);
    const sn = createNamespacedSnapshotter(this, name, backend);
    this.#snapshotters.set(name, sn);
    this.#snapshotterBackends.set(name, backend);
    // leftovers of an earlier run (a crash between a backend call and its record) go with the first collection
    this.#dirtySnapshotters.add(name);
    return sn;
  }

  /** The namespaced snapshotters by name. */
  get snapshotters(): ReadonlyMap<string, Snapshotter> {
    return this.#snapshotters;
  }

  /** The namespaced snapshotter `name`; NotFound when none is attached under that name. */
  snapshotter(name: string): Snapshotter {
    const sn = this.#snapshotters.get(name);
    if (sn === undefined) throw new NotFoundError(`snapshotter ${name} not loaded`);
    return sn;
  }

  /**
   * Removes from every attached snapshotter backend the snapshots no namespace records (the collector calls
   * this under the exclusive GC lock, after its sweep). Returns removals by snapshotter.
   */
  async collectSnapshotterBackends(log?: Logger): Promise<Record<string, number>> {
    const dirty = [...this.#dirtySnapshotters];
    this.#dirtySnapshotters.clear();
    const out: Record<string, number> = {};
    await Promise.all(
      dirty.map(async (name) => {
        const backend = this.#snapshotterBackends.get(name);
        if (backend === undefined) return;
        try {
          const n = await collectSnapshotterBackend(this.db, name, backend, log);
          if (n > 0) out[name] = n;
        } catch (err) {
          this.#dirtySnapshotters.add(name); // try again next time
          log?.warn({ snapshotter: name, err }, "snapshotter garbage collection failed");
        }
      }),
    );
    return out;
  }

  /** Records that a snapshotter's backend may hold unrecorded snapshots (the next collection looks). */
  markSnapshotterDirty(name: string): void {
    this.#dirtySnapshotters.add(name);
  }

  /** Records that the content backend may hold unrecorded blobs or ingests (the next collection looks). */
  markContentDirty(): void {
    this.#contentDirty = true;
  }

  /** Whether the content backend needs a sweep; clears the flag (the collector sets it again on failure). */
  takeContentDirty(): boolean {
    const dirty = this.#contentDirty;
    this.#contentDirty = false;
    return dirty;
  }

  /**
   * Puts the namespaced content store over a shared backend (containerd's `metadata.NewDB(bolt, cs, ss)`) and
   * returns it; the collector removes unreferenced blobs from that backend.
   */
  attachContent(backend: ContentStore, options?: NamespacedContentOptions): ContentStore {
    if (this.#contentBackend !== undefined) throw new FailedPreconditionError("content store already attached");
    this.#contentBackend = backend;
    this.#content = createNamespacedContentStore(this, backend, options);
    return this.#content;
  }

  /** The namespaced content store; FailedPrecondition before `attachContent`. */
  get content(): ContentStore {
    if (this.#content === undefined) throw new FailedPreconditionError("no content store attached to metadata");
    return this.#content;
  }

  /** The shared backend under the namespaced content store, if attached. */
  get contentBackend(): ContentStore | undefined {
    return this.#contentBackend;
  }

  /** Registers a source of GC roots (images, containers, … as their stores arrive). */
  addGcRootSource(source: GcRootSource): void {
    this.#rootSources.push(source);
  }

  /** Registers a kind of collectable record (snapshots, as snapshotters arrive). */
  addGcResourceKind(kind: GcResourceKind): void {
    this.#resourceKinds.push(kind);
  }

  gcRootSources(): readonly GcRootSource[] {
    return this.#rootSources;
  }

  gcResourceKinds(): readonly GcResourceKind[] {
    return this.#resourceKinds;
  }

  /** Subscribes to changes (the GC scheduler does). Returns an unsubscribe function. */
  onChange(listener: (change: MetadataChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stores call this after they delete (or otherwise change) records. */
  notifyChange(change: MetadataChange): void {
    for (const listener of this.#listeners) listener(change);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

export const METADATA_FILE = "meta.sqlite";

export function openMetadataDb(dir: string): MetadataDb {
  return new MetadataDb(dir === ":memory:" ? dir : join(dir, METADATA_FILE));
}

/** `io.containerd.metadata.v1`. */
export const MetadataPlugin = pluginType<MetadataDb>("io.containerd.metadata.v1");
