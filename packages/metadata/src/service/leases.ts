import { timestampFromDate } from "@berth/api";
import type { Leases } from "@berth/api/services/leases/v1";
import { InvalidArgumentError } from "@berth/errdefs";
import { requireNamespace } from "@berth/identifiers";
import type { ServiceImpl } from "@connectrpc/connect";
import { type Lease, type LeaseStore, generateLeaseId } from "../leases.js";

export interface LeasesServiceOptions {
  /** Runs a garbage collection and waits for it (`sync` deletes). */
  readonly collect?: () => Promise<unknown>;
}

const toProto = (lease: Lease) => ({
  id: lease.id,
  createdAt: timestampFromDate(lease.createdAt),
  labels: lease.labels,
});

/** containerd.services.leases.v1.Leases over the lease store. Every call needs a namespace. */
export function leasesService(store: LeaseStore, options: LeasesServiceOptions = {}): ServiceImpl<typeof Leases> {
  return {
    create(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      const lease = store.create(ns, { id: req.id === "" ? generateLeaseId() : req.id, labels: req.labels });
      return { lease: toProto(lease) };
    },
    async delete(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      store.delete(ns, req.id);
      if (req.sync && options.collect !== undefined) await options.collect();
      return {};
    },
    list(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { leases: store.list(ns, req.filters).map(toProto) };
    },
    addResource(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      if (req.resource === undefined) throw new InvalidArgumentError("resource is required");
      store.addResource(ns, req.id, { id: req.resource.id, type: req.resource.type });
      return {};
    },
    deleteResource(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      if (req.resource === undefined) throw new InvalidArgumentError("resource is required");
      store.deleteResource(ns, req.id, { id: req.resource.id, type: req.resource.type });
      return {};
    },
    listResources(req, ctx) {
      const ns = requireNamespace(ctx.requestHeader);
      return { resources: store.listResources(ns, req.id) };
    },
  };
}
