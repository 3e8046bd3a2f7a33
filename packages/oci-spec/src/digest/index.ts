export {
  CanonicalAlgorithm,
  digestAlgorithms,
  isSupportedAlgorithm,
  digestProblem,
  isDigest,
  parseDigest,
  digestOf,
  createDigester,
  digestOfStream,
  verifyDigest,
} from "./digest.js";
export type {
  Digest,
  DigestAlgorithm,
  ParsedDigest,
  Digester,
  DigestInput,
  DigestStreamOptions,
} from "./digest.js";
