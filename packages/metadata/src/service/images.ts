import { packAny, timestampFromDate } from "@berth/api";
import { ImageCreateSchema, ImageDeleteSchema, ImageUpdateSchema } from "@berth/api/events";
import type { Image, Images } from "@berth/api/services/images/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import type { Publisher } from "@berth/events";
import { requireNamespace } from "@berth/identifiers";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ImageInput, ImageRecord, ImageStore } from "../images.js";

export interface ImagesServiceOptions {
  /** Runs a garbage collection and waits for it (`sync` deletes). */
  readonly collect?: () => Promise<unknown>;
}

const toProto = (image: ImageRecord) => ({
  name: image.name,
  labels: { ...image.labels },
  target: {
    mediaType: image.target.mediaType,
    digest: image.target.digest,
    size: BigInt(image.target.size),
    annotations: { ...(image.target.annotations ?? {}) },
  },
  createdAt: timestampFromDate(image.createdAt),
  updatedAt: timestampFromDate(image.updatedAt),
});

function fromProto(image: Image): ImageInput {
  const t = image.target;
  const size = t === undefined ? 0 : Number(t.size);
  return {
    name: image.name,
    labels: image.labels,
    target: {
      mediaType: t?.mediaType ?? "",
      digest: t?.digest ?? "",
      size: Number.isSafeInteger(size) ? size : -1,
      annotations: t?.annotations ?? {},
    },
  };
}

/** Creates an image and publishes `/images/create`, as Images.Create does (for in-daemon callers too). */
export function createImagePublished(store: ImageStore, events: Publisher, ns: string, image: ImageInput): ImageRecord {
  const created = store.create(ns, image);
  events.publish(
    ns,
    "/images/create",
    packAny(ImageCreateSchema, create(ImageCreateSchema, { name: created.name, labels: { ...created.labels } })),
  );
  return created;
}

/** Updates an image (by field paths) and publishes `/images/update`, as Images.Update does. */
export function updateImagePublished(
  store: ImageStore,
  events: Publisher,
  ns: string,
  image: ImageInput,
  paths: readonly string[],
): ImageRecord {
  const updated = store.update(ns, image, paths);
  events.publish(
    ns,
    "/images/update",
    packAny(ImageUpdateSchema, create(ImageUpdateSchema, { name: updated.name, labels: { ...updated.labels } })),
  );
  return updated;
}

/**
 * containerd.services.images.v1.Images over the image store. Every call needs a namespace; create, update and
 * delete publish `/images/create|update|delete` in the caller's namespace.
 */
export function imagesService(
  store: ImageStore,
  events: Publisher,
  options: ImagesServiceOptions = {},
): ServiceImpl<typeof Images> {
  return {
    get(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { image: toProto(store.get(ns, req.name)) };
    },
    list(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { images: store.list(ns, req.filters).map(toProto) };
    },
    create(req, ctx) {
      if (req.image === undefined || req.image.name === "") throw new InvalidArgumentError("Image.Name required");
      const ns = requireNamespace(ctx.requestHeader);
      return { image: toProto(createImagePublished(store, events, ns, fromProto(req.image))) };
    },
    update(req, ctx) {
      if (req.image === undefined || req.image.name === "") throw new InvalidArgumentError("Image.Name required");
      const ns = requireNamespace(ctx.requestHeader);
      const paths = req.updateMask?.paths ?? [];
      return { image: toProto(updateImagePublished(store, events, ns, fromProto(req.image), paths)) };
    },
    async delete(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      store.delete(ns, req.name);
      events.publish(ns, "/images/delete", packAny(ImageDeleteSchema, create(ImageDeleteSchema, { name: req.name })));
      if (req.sync && options.collect !== undefined) await options.collect();
      return {};
    },
  };
}
