// @berth/images/archive: OCI image layout and Docker `save` archives, imported into and exported from a
// content store, streamed.
export { DefaultMaxJSONSize, cleanEntryName, importIndex } from "./importer.js";
export type { ImportIndexOptions, ImportedIndex } from "./importer.js";
export { addRefPrefix, digestTranslator, filterRefPrefix, importImages } from "./import.js";
export type { ImportOptions, ImportResult } from "./import.js";
export { exportArchive } from "./exporter.js";
export type { ExportImage, ExportOptions } from "./exporter.js";
export type { ByteSource } from "./tar.js";
