import { packAny } from "@berth/api";
import { NamespaceCreateSchema, NamespaceDeleteSchema, NamespaceUpdateSchema } from "@berth/api/events";
import type { Namespaces } from "@berth/api/services/namespaces/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import type { Publisher } from "@berth/events";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { isValidIdentifier, namespaceFromHeaders } from "@berth/identifiers";
import type { NamespaceStore } from "../namespaces.js";

/**
 * containerd.services.namespaces.v1.Namespaces over the namespace store. Namespaces need no namespace header.
 */
function eventNamespace(ctx: HandlerContext, fallback: string): string {
  const caller = namespaceFromHeaders(ctx.requestHeader);
  return caller !== undefined && isValidIdentifier(caller) ? caller : fallback;
}

export function namespacesService(store: NamespaceStore, events: Publisher): ServiceImpl<typeof Namespaces> {
  const toProto = (name: string) => ({ name, labels: store.labels(name) });
  return {
    get(req) {
      // containerd answers OK with no labels for a namespace that does not exist.
      return { namespace: toProto(req.name) };
    },
    list() {
      return { namespaces: store.list().map(toProto) };
    },
    create(req, ctx) {
      const ns = req.namespace;
      if (!ns) throw new InvalidArgumentError("namespace is required");
      const created = store.create(ns.name, ns.labels);
      // containerd 1.6 publishes create and update in the caller's namespace (ctr sends "default"), and the
      // labels as requested; delete is published in the deleted namespace.
      events.publish(
        eventNamespace(ctx, ns.name),
        "/namespaces/create",
        packAny(NamespaceCreateSchema, create(NamespaceCreateSchema, { name: ns.name, labels: ns.labels })),
      );
      return { namespace: toProto(created.name) };
    },
    update(req, ctx) {
      const ns = req.namespace;
      if (!ns) throw new InvalidArgumentError("namespace is required");
      const paths = req.updateMask?.paths ?? [];
      if (paths.length > 0) {
        for (const path of paths) {
          if (!path.startsWith("labels.")) throw new InvalidArgumentError(`cannot update "${path}" field`);
        }
        for (const path of paths) {
          const key = path.slice("labels.".length);
          store.setLabel(ns.name, key, ns.labels[key] ?? "");
        }
      } else {
        store.replaceLabels(ns.name, ns.labels);
      }
      const updated = toProto(ns.name);
      events.publish(
        eventNamespace(ctx, ns.name),
        "/namespaces/update",
        packAny(NamespaceUpdateSchema, create(NamespaceUpdateSchema, { name: ns.name, labels: ns.labels })),
      );
      return { namespace: updated };
    },
    delete(req) {
      store.delete(req.name);
      events.publish(
        req.name,
        "/namespaces/delete",
        packAny(NamespaceDeleteSchema, create(NamespaceDeleteSchema, { name: req.name })),
      );
      return {};
    },
  };
}
