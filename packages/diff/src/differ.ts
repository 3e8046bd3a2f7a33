/**
 * The differ interfaces (containerd's core/diff): an Applier extracts a layer blob onto mounts, a Comparer
 * writes the layer between two mount sets into the content store. No Connect types here, so the same
 * interfaces are served in-process (the walking differ) and over gRPC (the Diff client).
 */
import type { Mount } from "@berth/snapshotter";
import { pluginType } from "@berth/plugin";

/** The context every call takes first (containerd's context.Context). */
export interface Ctx {
  readonly namespace: string;
  readonly signal?: AbortSignal;
  /** Lease from the `containerd-lease` header: a blob written by Compare joins it. */
  readonly lease?: string;
}

/** What an Applier reads and returns: the fields of an OCI descriptor the Diff API carries. */
export interface LayerDescriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A stream-processor payload (a protobuf Any), keyed by media type in ApplyOptions. */
export interface ProcessorPayload {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface ApplyConfig {
  /** Payloads for stream processors, keyed by media type; Berth has no stream processors and ignores them. */
  readonly payloads?: Readonly<Record<string, ProcessorPayload>>;
}

export interface Applier {
  /**
   * Applies the layer blob `desc` (from the content store) onto `mounts` and returns the uncompressed layer:
   * media type `application/vnd.oci.image.layer.v1.tar`, digest = diffID, size = uncompressed bytes.
   */
  apply(ctx: Ctx, desc: LayerDescriptor, mounts: readonly Mount[], options?: ApplyConfig): Promise<LayerDescriptor>;
}

export interface CompareOptions {
  /** `application/vnd.oci.image.layer.v1.tar+gzip` (default) or `application/vnd.oci.image.layer.v1.tar`. */
  readonly mediaType?: string;
  /** Ingest ref used while writing (default: a unique one). */
  readonly reference?: string;
  /** Labels for the committed blob; `containerd.io/uncompressed` is added for compressed layers. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface Comparer {
  /** Writes the layer turning `lower` into `upper` into the content store and returns its descriptor. */
  compare(
    ctx: Ctx,
    lower: readonly Mount[],
    upper: readonly Mount[],
    options?: CompareOptions,
  ): Promise<LayerDescriptor>;
}

export type Differ = Applier & Comparer;

/** `io.containerd.differ.v1`: differ plugins (containerd's DiffPlugin). */
export const DiffPlugin = pluginType<Differ>("io.containerd.differ.v1");

/** Media type of an applied (uncompressed) layer. */
export const MEDIA_TYPE_LAYER = "application/vnd.oci.image.layer.v1.tar";
export const MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
/** Label naming the uncompressed digest of a compressed layer blob. */
export const LABEL_UNCOMPRESSED = "containerd.io/uncompressed";
