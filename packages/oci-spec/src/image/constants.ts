import type { Digest } from "../digest/digest.js";
import { MediaTypeEmptyJSON } from "../media-types/media-types.js";
import type { Descriptor } from "./types.js";

// Image layout (image-spec image-layout.md).
export const ImageLayoutFile = "oci-layout";
export const ImageLayoutVersion = "1.0.0";
export const ImageIndexFile = "index.json";
export const ImageBlobsDir = "blobs";

// Pre-defined annotation keys (image-spec annotations.md).
export const AnnotationCreated = "org.opencontainers.image.created";
export const AnnotationAuthors = "org.opencontainers.image.authors";
export const AnnotationURL = "org.opencontainers.image.url";
export const AnnotationDocumentation = "org.opencontainers.image.documentation";
export const AnnotationSource = "org.opencontainers.image.source";
export const AnnotationVersion = "org.opencontainers.image.version";
export const AnnotationRevision = "org.opencontainers.image.revision";
export const AnnotationVendor = "org.opencontainers.image.vendor";
export const AnnotationLicenses = "org.opencontainers.image.licenses";
export const AnnotationRefName = "org.opencontainers.image.ref.name";
export const AnnotationTitle = "org.opencontainers.image.title";
export const AnnotationDescription = "org.opencontainers.image.description";
export const AnnotationBaseImageDigest = "org.opencontainers.image.base.digest";
export const AnnotationBaseImageName = "org.opencontainers.image.base.name";

/** The digest of the two bytes `{}`. */
export const EmptyJSONDigest: Digest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/** A fresh descriptor of the empty JSON object, with the content embedded (`data` is base64 of `{}`). */
export function emptyJSONDescriptor(): Descriptor {
  return { mediaType: MediaTypeEmptyJSON, digest: EmptyJSONDigest, size: 2, data: "e30=" };
}
