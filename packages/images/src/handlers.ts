/**
 * Walking an image's content graph (containerd's core/images handlers): a Handler looks at one descriptor and
 * returns the children to visit; wrappers filter by platform, limit manifests and set the GC labels.
 */
import type { Ctx, Manager } from "@berth/content-store";
import { NotFoundError } from "@berth/errdefs";
import { type Descriptor, isIndexType } from "@berth/oci-spec";
import { childGCLabels, childrenLabels } from "./labels.js";
import type { MatchComparer, Matcher } from "./platforms/platforms.js";

/** Returned by a handler: do not visit this descriptor's children (containerd's ErrSkipDesc). */
export const SkipDesc: unique symbol = Symbol("skip descriptor");
/** Returned by a handler inside `handlers(...)`: run no further handlers for this descriptor. */
export const StopHandler: unique symbol = Symbol("stop handler");

export type HandlerResult = readonly Descriptor[] | typeof SkipDesc | typeof StopHandler;
export type Handler = (ctx: Ctx, desc: Descriptor) => Promise<HandlerResult>;

function list(r: HandlerResult): readonly Descriptor[] {
  return typeof r === "symbol" ? [] : r;
}

/** Runs handlers in order and concatenates their children; StopHandler ends the chain for this descriptor. */
export function handlers(...hs: Handler[]): Handler {
  return async (ctx, desc) => {
    const children: Descriptor[] = [];
    for (const h of hs) {
      const r = await h(ctx, desc);
      if (r === StopHandler) break;
      if (r === SkipDesc) return SkipDesc;
      children.push(...r);
    }
    return children;
  };
}

/** Visits descriptors depth-first, one at a time, descending into the children each handler call returns. */
export async function walk(ctx: Ctx, handler: Handler, descs: readonly Descriptor[]): Promise<void> {
  for (const desc of descs) {
    ctx.signal?.throwIfAborted();
    const r = await handler(ctx, desc);
    const children = list(r);
    if (r !== SkipDesc && children.length > 0) await walk(ctx, handler, children);
  }
}

/**
 * Like walk, but fails with NotFound ("image might be filtered out") when no handler call returned any
 * children (everything was filtered out).
 */
export async function walkNotEmpty(ctx: Ctx, handler: Handler, descs: readonly Descriptor[]): Promise<void> {
  let empty = true;
  await walk(
    ctx,
    async (c, d) => {
      const r = await handler(c, d);
      if (list(r).length > 0) empty = false;
      return r;
    },
    descs,
  );
  if (empty) throw new NotFoundError("image might be filtered out");
}

/** Keeps children without a platform and those the matcher accepts. */
export function filterPlatforms(handler: Handler, matcher: Matcher | undefined): Handler {
  return async (ctx, desc) => {
    const r = await handler(ctx, desc);
    if (typeof r === "symbol" || matcher === undefined) return r;
    return r.filter((d) => d.platform === undefined || matcher.match(d.platform));
  };
}

function sortByPlatform(children: Descriptor[], m: MatchComparer): Descriptor[] {
  // A stable sort: children without a platform go last.
  return children
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const pa = a.d.platform;
      const pb = b.d.platform;
      if (pa === undefined && pb === undefined) return a.i - b.i;
      if (pa === undefined) return 1;
      if (pb === undefined) return -1;
      if (m.less(pa, pb)) return -1;
      if (m.less(pb, pa)) return 1;
      return a.i - b.i;
    })
    .map((x) => x.d);
}

/**
 * Orders an index's children by preference and keeps the best `n` (n <= 0: all). NotFound ("no match for
 * platform in manifest") when an index has none left.
 */
export function limitManifests(handler: Handler, m: MatchComparer, n: number): Handler {
  return async (ctx, desc) => {
    const r = await handler(ctx, desc);
    if (typeof r === "symbol" || !isIndexType(desc.mediaType)) return r;
    let children = sortByPlatform([...r], m);
    if (n > 0) {
      if (children.length === 0) throw new NotFoundError(`no match for platform in manifest ${desc.digest}`);
      children = children.slice(0, n);
    }
    return children;
  };
}

/**
 * Sets the GC reference labels of the children the handler returns on the parent blob
 * (`containerd.io/gc.ref.content.m.<i>`, `.config`, `.l.<i>`), so that the children stay alive while the
 * parent does.
 */
export function setChildrenLabels(
  manager: Pick<Manager, "update">,
  handler: Handler,
  labelMap: (d: Descriptor) => string[] = childGCLabels,
): Handler {
  return async (ctx, desc) => {
    const r = await handler(ctx, desc);
    const children = list(r);
    if (children.length > 0) {
      const labels = childrenLabels(children, labelMap);
      const keys = Object.keys(labels);
      if (keys.length > 0) {
        await manager.update(
          ctx,
          { digest: desc.digest, labels },
          keys.map((k) => `labels.${k}`),
        );
      }
    }
    return r;
  };
}
