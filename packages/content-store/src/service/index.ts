export { contentService, ctxFromHandler, infoToProto, statusToProto } from "./content.js";
export type { ContentServiceOptions } from "./content.js";
