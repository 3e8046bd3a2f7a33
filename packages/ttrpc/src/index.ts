export { createTtrpcClient, connectTtrpcClient, socketPathOf } from "./client.js";
export type { TtrpcClient, TtrpcClientOptions, TtrpcCallOptions } from "./client.js";
export { createTtrpcServiceClient } from "./service-client.js";
export type { TtrpcServiceClient } from "./service-client.js";
export { createTtrpcServer } from "./server.js";
export type {
  TtrpcServer,
  TtrpcMethod,
  TtrpcCallContext,
  TtrpcServiceImpl,
  TtrpcListenOptions,
} from "./server.js";
export { NAMESPACE_METADATA_KEY } from "./metadata.js";
export type { TtrpcMetadata, TtrpcMetadataInit } from "./metadata.js";
export { errorFromStatus, statusFromError, statusDetailsOf } from "./errors.js";
export type { TtrpcStatus, StatusDetail } from "./errors.js";
export { MAX_MESSAGE_LENGTH, HEADER_LENGTH, MessageType } from "./internal/wire.js";
