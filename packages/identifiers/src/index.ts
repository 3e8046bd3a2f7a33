export { MAX_IDENTIFIER_LENGTH, IDENTIFIER_PATTERN, validateIdentifier, isValidIdentifier } from "./identifiers.js";
export { MAX_LABEL_SIZE, validateLabel, validateLabels } from "./labels.js";
export type { Labels } from "./labels.js";
export {
  NAMESPACE_HEADER,
  TTRPC_NAMESPACE_HEADER,
  LEASE_HEADER,
  DEFAULT_NAMESPACE,
  namespaceFromHeaders,
  leaseFromHeaders,
  validateNamespace,
  requireNamespace,
} from "./namespaces.js";
export type { HeaderSource } from "./namespaces.js";
export { validateTopic } from "./topics.js";
