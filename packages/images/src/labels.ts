// Labels and annotations containerd uses for images.
import {
  MediaTypeDockerSchema2Config,
  MediaTypeDockerSchema2Manifest,
  MediaTypeImageConfig,
  MediaTypeImageManifest,
  isLayerType as isKnownLayerType,
} from "@berth/oci-spec";
import type { Descriptor } from "@berth/oci-spec";

/** Annotation naming the full image name on an index entry (containerd's `images.AnnotationImageName`). */
export const AnnotationImageName = "io.containerd.image.name";
/** Annotation marking a referrer's subject (containerd's `images.AnnotationManifestSubject`). */
export const AnnotationManifestSubject = "io.containerd.manifest.subject";
/** Content label pointing a compressed layer at its uncompressed digest. */
export const LabelUncompressed = "containerd.io/uncompressed";
/** Content label prefix recording where a blob was fetched from. */
export const LabelDistributionSource = "containerd.io/distribution.source";
/** Prefix of the GC labels that keep children alive. */
export const LabelGCRefContent = "containerd.io/gc.ref.content";

/** An OCI or Docker image config (containerd's IsConfigType; plugin configs are not image configs). */
export function isImageConfigType(mediaType: string): boolean {
  return mediaType === MediaTypeImageConfig || mediaType === MediaTypeDockerSchema2Config;
}

/** An image config or one of containerd's checkpoint configs (containerd's IsKnownConfig). */
export function isKnownConfig(mediaType: string): boolean {
  return (
    isImageConfigType(mediaType) ||
    mediaType === "application/vnd.containerd.container.criu.checkpoint.criu.tar" ||
    mediaType === "application/vnd.containerd.container.checkpoint.config.v1+proto"
  );
}

/** containerd's IsLayerType: any `application/vnd.oci.image.layer.` type (encrypted too) or a Docker layer. */
export function isLayerType(mediaType: string): boolean {
  if (mediaType.startsWith("application/vnd.oci.image.layer.")) return true;
  const i = mediaType.indexOf("+");
  return isKnownLayerType(i < 0 ? mediaType : mediaType.slice(0, i)) || isKnownLayerType(mediaType);
}

/**
 * The GC label key stems for a child (containerd's ChildGCLabels): `…content.config` for configs,
 * `…content.m.` for manifests, `…content.l.` for layers, `…content.` otherwise; a stem ending in `.` gets the
 * child's position among children with the same stem.
 */
export function childGCLabels(desc: Descriptor): string[] {
  if (desc.annotations?.[AnnotationManifestSubject] !== undefined) {
    return [`${LabelGCRefContent}.referrer.sha256.`];
  }
  const mt = desc.mediaType;
  if (isKnownConfig(mt)) return [`${LabelGCRefContent}.config`];
  if (mt === MediaTypeDockerSchema2Manifest || mt === MediaTypeImageManifest) return [`${LabelGCRefContent}.m.`];
  if (isLayerType(mt)) return [`${LabelGCRefContent}.l.`];
  return [`${LabelGCRefContent}.`];
}

/** Like childGCLabels, but layers get none (for images whose layers may be discarded after unpacking). */
export function childGCLabelsFilterLayers(desc: Descriptor): string[] {
  return isLayerType(desc.mediaType) ? [] : childGCLabels(desc);
}

/** The labels a parent gets for its children: `{ "containerd.io/gc.ref.content.l.0": "sha256:…", … }`. */
export function childrenLabels(
  children: readonly Descriptor[],
  labelMap: (d: Descriptor) => string[] = childGCLabels,
): Record<string, string> {
  const labels: Record<string, string> = {};
  const counts = new Map<string, number>();
  for (const ch of children) {
    for (const stem of labelMap(ch)) {
      const idx = counts.get(stem) ?? 0;
      counts.set(stem, idx + 1);
      let key = stem;
      if (stem.endsWith(".sha256.")) {
        const hex = ch.digest.slice(ch.digest.indexOf(":") + 1);
        key = stem + hex.slice(0, 12);
      } else if (idx > 0 || stem.endsWith(".")) {
        key = `${stem}${idx}`;
      }
      labels[key] = ch.digest;
    }
  }
  return labels;
}
