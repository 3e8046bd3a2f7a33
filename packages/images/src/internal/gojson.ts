// JSON as Go's encoding/json writes the image-spec structs: field order of the Go structs, omitempty fields
// dropped, map keys sorted, and `<`, `>`, `&`, U+2028, U+2029 escaped. Blobs that containerd synthesises (docker
// archive manifests and indexes) hash to the same digests when written this way.
import type { Annotations, Descriptor, Index, Manifest, Platform } from "@berth/oci-spec";

function sortedMap(m: Annotations | undefined): Annotations | undefined {
  if (m === undefined || Object.keys(m).length === 0) return undefined;
  const out: Annotations = {};
  for (const k of Object.keys(m).sort()) out[k] = m[k] as string;
  return out;
}

function nonEmpty<T>(a: readonly T[] | undefined): readonly T[] | undefined {
  return a === undefined || a.length === 0 ? undefined : a;
}

export function goPlatform(p: Platform): Record<string, unknown> {
  return {
    architecture: p.architecture ?? "",
    os: p.os ?? "",
    "os.version": p["os.version"] || undefined,
    "os.features": nonEmpty(p["os.features"]),
    variant: p.variant || undefined,
  };
}

export function goDescriptor(d: Descriptor): Record<string, unknown> {
  return {
    mediaType: d.mediaType || undefined,
    digest: d.digest,
    size: d.size,
    urls: nonEmpty(d.urls),
    annotations: sortedMap(d.annotations),
    data: d.data || undefined,
    platform: d.platform ? goPlatform(d.platform) : undefined,
    artifactType: d.artifactType || undefined,
  };
}

export function goManifest(m: Manifest): Record<string, unknown> {
  return {
    schemaVersion: m.schemaVersion,
    mediaType: m.mediaType || undefined,
    artifactType: m.artifactType || undefined,
    config: goDescriptor(m.config),
    layers: m.layers.map(goDescriptor),
    subject: m.subject ? goDescriptor(m.subject) : undefined,
    annotations: sortedMap(m.annotations),
  };
}

export function goIndex(i: Index): Record<string, unknown> {
  return {
    schemaVersion: i.schemaVersion,
    mediaType: i.mediaType || undefined,
    artifactType: i.artifactType || undefined,
    manifests: i.manifests.map(goDescriptor),
    subject: i.subject ? goDescriptor(i.subject) : undefined,
    annotations: sortedMap(i.annotations),
  };
}

const ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/** JSON.stringify (keys with undefined values dropped) plus Go's HTML-safe escapes. */
export function goMarshal(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => ESCAPES[c] as string);
}
