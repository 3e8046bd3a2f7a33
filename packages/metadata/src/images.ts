import { AlreadyExistsError, InvalidArgumentError, NotFoundError, isInvalidArgument } from "@berth/errdefs";
import { adaptImage } from "@berth/filters";
import { validateIdentifier, validateLabels } from "@berth/identifiers";
import { digestProblem, isDigest } from "@berth/oci-spec";
import type { SqliteDatabase } from "./db.js";
import { applyKeyPath, parseListFilters, withoutEmpty } from "./fieldpaths.js";
import { labelReferences } from "./gc/builtin.js";
import type { GcRoot, GcRootSource } from "./gc/types.js";

/**
 * The descriptor an image points at, as containerd stores it: media type, digest, size and annotations (the
 * platform and urls of a descriptor are not part of an image record).
 */
export interface ImageTarget {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** An image record (containerd's images.Image). */
export interface ImageRecord {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly target: ImageTarget;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** What Create and Update take: the record without its times. */
export interface ImageInput {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly target: ImageTarget;
}

/** What the image store tells the database about: deletions make the garbage collector run. */
export interface ImageStoreHooks {
  onDelete(): void;
  onMutate?(): void;
}

interface ImageRow {
  name: string;
  media_type: string;
  digest: string;
  size: number;
  created_at: number;
  updated_at: number;
}

/**
 * containerd's validateImage: a name, labels that fit, a valid target digest, a positive size and a media type.
 * InvalidArgument otherwise.
 */
export function validateImage(image: ImageInput): void {
  if (image.name === "") throw new InvalidArgumentError("image name must not be empty");
  try {
    validateLabels(image.labels);
  } catch (err) {
    if (isInvalidArgument(err)) throw new InvalidArgumentError(`image.Labels: ${(err as Error).message}`);
    throw err;
  }
  const { target } = image;
  const problem = digestProblem(target.digest);
  if (problem !== undefined) {
    throw new InvalidArgumentError(`Target.Digest ${JSON.stringify(target.digest)} invalid: ${problem}`);
  }
  if (!(target.size > 0)) throw new InvalidArgumentError("Target.Size must be greater than zero");
  if (target.mediaType === "") throw new InvalidArgumentError("Target.MediaType must be set");
}

const copyMap = (m: Readonly<Record<string, string>> | undefined): Record<string, string> => ({ ...(m ?? {}) });

/**
 * Images and their targets per namespace (containerd's `metadata.imageStore`), listed in name order. Images are
 * GC roots: see `imageRootSource`.
 */
export class ImageStore {
  readonly #db: SqliteDatabase;
  readonly #hooks: ImageStoreHooks;
  readonly #now: () => number;
  readonly #q;

  constructor(db: SqliteDatabase, hooks: ImageStoreHooks, now: () => number = Date.now) {
    this.#db = db;
    this.#hooks = hooks;
    this.#now = now;
    this.#q = {
      ensureNs: db.prepare<[string, number]>("INSERT OR IGNORE INTO namespaces (name, created_at) VALUES (?, ?)"),
      get: db.prepare<[string, string], ImageRow>(
        "SELECT name, media_type, digest, size, created_at, updated_at FROM images WHERE namespace = ? AND name = ?",
      ),
      list: db.prepare<[string], ImageRow>(
        "SELECT name, media_type, digest, size, created_at, updated_at FROM images WHERE namespace = ? ORDER BY name",
      ),
      insert: db.prepare<[string, string, string, string, number, number, number]>(
        "INSERT INTO images (namespace, name, media_type, digest, size, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      update: db.prepare<[string, string, number, number, string, string]>(
        "UPDATE images SET media_type = ?, digest = ?, size = ?, updated_at = ? WHERE namespace = ? AND name = ?",
      ),
      delete: db.prepare<[string, string]>("DELETE FROM images WHERE namespace = ? AND name = ?"),
      labelsOf: db.prepare<[string, string], { key: string; value: string }>(
        "SELECT key, value FROM image_labels WHERE namespace = ? AND name = ? ORDER BY key",
      ),
      annotationsOf: db.prepare<[string, string], { key: string; value: string }>(
        "SELECT key, value FROM image_annotations WHERE namespace = ? AND name = ? ORDER BY key",
      ),
      nsLabels: db.prepare<[string], { name: string; key: string; value: string }>(
        "SELECT name, key, value FROM image_labels WHERE namespace = ? ORDER BY name, key",
      ),
      nsAnnotations: db.prepare<[string], { name: string; key: string; value: string }>(
        "SELECT name, key, value FROM image_annotations WHERE namespace = ? ORDER BY name, key",
      ),
      clearLabels: db.prepare<[string, string]>("DELETE FROM image_labels WHERE namespace = ? AND name = ?"),
      clearAnnotations: db.prepare<[string, string]>("DELETE FROM image_annotations WHERE namespace = ? AND name = ?"),
      insertLabel: db.prepare<[string, string, string, string]>(
        "INSERT INTO image_labels (namespace, name, key, value) VALUES (?, ?, ?, ?)",
      ),
      insertAnnotation: db.prepare<[string, string, string, string]>(
        "INSERT INTO image_annotations (namespace, name, key, value) VALUES (?, ?, ?, ?)",
      ),
    };
  }

  /** The image, or NotFound. */
  get(namespace: string, name: string): ImageRecord {
    const row = this.#q.get.get(namespace, name);
    if (!row) throw new NotFoundError(`image ${JSON.stringify(name)}`);
    return this.#record(namespace, row);
  }

  /**
   * Images of a namespace in name order matching any of the filters (`name`, `target.digest`,
   * `target.mediatype`, `labels.<key>`, `annotations.<key>`); a bad filter is InvalidArgument.
   */
  list(namespace: string, filters: readonly string[] = []): ImageRecord[] {
    const filter = parseListFilters(filters);
    const group = (rows: Array<{ name: string; key: string; value: string }>) => {
      const out = new Map<string, Record<string, string>>();
      for (const { name, key, value } of rows) {
        const set = out.get(name) ?? {};
        set[key] = value;
        out.set(name, set);
      }
      return out;
    };
    const labels = group(this.#q.nsLabels.all(namespace));
    const annotations = group(this.#q.nsAnnotations.all(namespace));
    const out: ImageRecord[] = [];
    for (const row of this.#q.list.all(namespace)) {
      const image = toRecord(row, labels.get(row.name) ?? {}, annotations.get(row.name));
      if (filter.match(adaptImage(image))) out.push(image);
    }
    return out;
  }

  /** Creates an image; InvalidArgument for a bad record, AlreadyExists when the name is taken. */
  create(namespace: string, image: ImageInput): ImageRecord {
    validateIdentifier(namespace);
    validateImage(image);
    const record = this.#db.transaction(() => {
      const now = this.#now();
      this.#q.ensureNs.run(namespace, now);
      if (this.#q.get.get(namespace, image.name)) throw new AlreadyExistsError(`image ${JSON.stringify(image.name)}`);
      const { target } = image;
      this.#q.insert.run(namespace, image.name, target.mediaType, target.digest, target.size, now, now);
      this.#writeMaps(namespace, image.name, image.labels, target.annotations);
      return this.get(namespace, image.name);
    })();
    this.#hooks.onMutate?.();
    return record;
  }

  /**
   * Updates an image (containerd's imageStore.Update). With field paths only those change: `labels`,
   * `labels.<key>`, `target` (as a whole), `annotations`, `annotations.<key>` (of the target); any other path is
   * InvalidArgument. Without paths the whole record is replaced (the creation time is kept). NotFound when missing.
   */
  update(namespace: string, image: ImageInput, fieldpaths: readonly string[] = []): ImageRecord {
    if (image.name === "") throw new InvalidArgumentError("image name is required for update");
    const record = this.#db.transaction(() => {
      const current = this.#q.get.get(namespace, image.name);
      if (!current) throw new NotFoundError(`image ${JSON.stringify(image.name)}`);
      const existing = this.#record(namespace, current);
      let labels: Record<string, string> = copyMap(existing.labels);
      let target: ImageTarget = existing.target;
      let annotations: Record<string, string> = copyMap(existing.target.annotations);
      if (fieldpaths.length > 0) {
        for (const path of fieldpaths) {
          if (applyKeyPath(labels, image.labels, "labels", path)) continue;
          if (applyKeyPath(annotations, image.target.annotations, "annotations", path)) continue;
          switch (path) {
            case "labels":
              labels = copyMap(image.labels);
              break;
            case "target":
              // the target is replaced as a unit, annotations included
              target = image.target;
              annotations = copyMap(image.target.annotations);
              break;
            case "annotations":
              annotations = copyMap(image.target.annotations);
              break;
            default:
              throw new InvalidArgumentError(
                `cannot update ${JSON.stringify(path)} field on image ${JSON.stringify(image.name)}`,
              );
          }
        }
      } else {
        labels = copyMap(image.labels);
        target = image.target;
        annotations = copyMap(image.target.annotations);
      }
      const updated: ImageInput = {
        name: image.name,
        labels: withoutEmpty(labels),
        target: {
          mediaType: target.mediaType,
          digest: target.digest,
          size: target.size,
          annotations: withoutEmpty(annotations),
        },
      };
      validateImage(updated);
      const now = Math.max(this.#now(), existing.createdAt.getTime());
      this.#q.update.run(
        updated.target.mediaType,
        updated.target.digest,
        updated.target.size,
        now,
        namespace,
        image.name,
      );
      this.#q.clearLabels.run(namespace, image.name);
      this.#q.clearAnnotations.run(namespace, image.name);
      this.#writeMaps(namespace, image.name, updated.labels, updated.target.annotations);
      return this.get(namespace, image.name);
    })();
    this.#hooks.onMutate?.();
    return record;
  }

  /** Deletes an image (its content is left to the collector); NotFound when missing. */
  delete(namespace: string, name: string): void {
    const { changes } = this.#q.delete.run(namespace, name);
    if (changes === 0) throw new NotFoundError(`image ${JSON.stringify(name)}`);
    this.#hooks.onDelete();
  }

  /** Whether the namespace holds any image. */
  hasImages(namespace: string): boolean {
    return this.#q.list.get(namespace) !== undefined;
  }

  #writeMaps(
    namespace: string,
    name: string,
    labels: Readonly<Record<string, string>> | undefined,
    annotations: Readonly<Record<string, string>> | undefined,
  ): void {
    for (const [k, v] of Object.entries(labels ?? {})) if (v !== "") this.#q.insertLabel.run(namespace, name, k, v);
    for (const [k, v] of Object.entries(annotations ?? {})) {
      if (v !== "") this.#q.insertAnnotation.run(namespace, name, k, v);
    }
  }

  #record(namespace: string, row: ImageRow): ImageRecord {
    const labels: Record<string, string> = {};
    for (const { key, value } of this.#q.labelsOf.all(namespace, row.name)) labels[key] = value;
    const annotations: Record<string, string> = {};
    for (const { key, value } of this.#q.annotationsOf.all(namespace, row.name)) annotations[key] = value;
    return toRecord(row, labels, Object.keys(annotations).length > 0 ? annotations : undefined);
  }
}

function toRecord(
  row: ImageRow,
  labels: Record<string, string>,
  annotations: Record<string, string> | undefined,
): ImageRecord {
  return {
    name: row.name,
    labels,
    target: {
      mediaType: row.media_type,
      digest: row.digest,
      size: row.size,
      ...(annotations !== undefined ? { annotations } : {}),
    },
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** Registers the "namespace must be empty" check for images. */
export function registerImageProbe(db: {
  db: SqliteDatabase;
  namespaces: { addContentProbe(p: (ns: string) => string | undefined): void };
}): void {
  const any = db.db.prepare<[string], { one: number }>("SELECT 1 AS one FROM images WHERE namespace = ? LIMIT 1");
  db.namespaces.addContentProbe((namespace) => (any.get(namespace) ? "images" : undefined));
}

/**
 * Images are GC roots (containerd's gc roots of `images/<name>`): each keeps its target blob, and whatever its
 * own `containerd.io/gc.ref.*` labels name, in its namespace.
 */
export function imageRootSource(db: SqliteDatabase): GcRootSource {
  const targets = db.prepare<[], { namespace: string; digest: string }>("SELECT namespace, digest FROM images");
  const refLabels = db.prepare<[string, string], { namespace: string; key: string; value: string }>(
    "SELECT namespace, key, value FROM image_labels WHERE key >= ? AND key < ?",
  );
  return {
    name: "images",
    *roots(): Iterable<GcRoot> {
      for (const t of targets.all()) {
        if (isDigest(t.digest)) yield { node: { type: "content", namespace: t.namespace, id: t.digest } };
      }
      // label keys under containerd.io/gc.ref. ("/" is the character after ".")
      for (const l of refLabels.all("containerd.io/gc.ref.", "containerd.io/gc.ref/")) {
        for (const node of labelReferences(l.namespace, [[l.key, l.value]])) yield { node };
      }
    },
  };
}
