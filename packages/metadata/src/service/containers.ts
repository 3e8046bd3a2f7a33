import { packAny, timestampFromDate } from "@berth/api";
import { ContainerCreateSchema, ContainerDeleteSchema, ContainerUpdateSchema } from "@berth/api/events";
import type { Container, Containers } from "@berth/api/services/containers/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import type { Publisher } from "@berth/events";
import { requireNamespace } from "@berth/identifiers";
import { create } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { AnyValue, ContainerInput, ContainerRecord, ContainerStore } from "../containers.js";

const toAny = (v: AnyValue): Any => create(AnySchema, { typeUrl: v.typeUrl, value: v.value });
const fromAny = (v: Any | undefined): AnyValue | undefined =>
  v === undefined ? undefined : { typeUrl: v.typeUrl, value: v.value };

const toProto = (c: ContainerRecord) => ({
  id: c.id,
  labels: { ...c.labels },
  image: c.image,
  runtime: { name: c.runtime.name, ...(c.runtime.options ? { options: toAny(c.runtime.options) } : {}) },
  ...(c.spec ? { spec: toAny(c.spec) } : {}),
  snapshotter: c.snapshotter,
  snapshotKey: c.snapshotKey,
  createdAt: timestampFromDate(c.createdAt),
  updatedAt: timestampFromDate(c.updatedAt),
  extensions: Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, toAny(v)])),
});

function fromProto(c: Container): ContainerInput {
  const options = fromAny(c.runtime?.options);
  const spec = fromAny(c.spec);
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    ...(c.runtime ? { runtime: { name: c.runtime.name, ...(options ? { options } : {}) } } : {}),
    ...(spec ? { spec } : {}),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    extensions: Object.fromEntries(Object.entries(c.extensions).map(([k, v]) => [k, fromAny(v) as AnyValue])),
  };
}

/**
 * containerd.services.containers.v1.Containers over the container store. Every call needs a namespace;
 * create, update and delete publish `/containers/create|update|delete` in the caller's namespace.
 */
export function containersService(store: ContainerStore, events: Publisher): ServiceImpl<typeof Containers> {
  return {
    get(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { container: toProto(store.get(ns, req.id)) };
    },
    list(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { containers: store.list(ns, req.filters).map(toProto) };
    },
    async *listStream(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      for (const c of store.list(ns, req.filters)) {
        if (ctx.signal.aborted) return;
        yield { container: toProto(c) };
      }
    },
    create(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      if (req.container === undefined) throw new InvalidArgumentError("container is required");
      const created = store.create(ns, fromProto(req.container));
      events.publish(
        ns,
        "/containers/create",
        packAny(
          ContainerCreateSchema,
          create(ContainerCreateSchema, {
            id: created.id,
            image: created.image,
            runtime: {
              name: created.runtime.name,
              ...(created.runtime.options ? { options: toAny(created.runtime.options) } : {}),
            },
          }),
        ),
      );
      return { container: toProto(created) };
    },
    update(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      if (req.container === undefined || req.container.id === "") {
        throw new InvalidArgumentError("Container.ID required");
      }
      const updated = store.update(ns, fromProto(req.container), req.updateMask?.paths ?? []);
      events.publish(
        ns,
        "/containers/update",
        packAny(
          ContainerUpdateSchema,
          create(ContainerUpdateSchema, {
            id: updated.id,
            image: updated.image,
            labels: { ...updated.labels },
            snapshotKey: updated.snapshotKey,
          }),
        ),
      );
      return { container: toProto(updated) };
    },
    delete(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      store.delete(ns, req.id);
      events.publish(
        ns,
        "/containers/delete",
        packAny(ContainerDeleteSchema, create(ContainerDeleteSchema, { id: req.id })),
      );
      return {};
    },
  };
}
