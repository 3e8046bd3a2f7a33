// @berth/content-store: containerd's content store interfaces and plugin type. Implementations live under
// subpaths: "./local" (on-disk store), "./proxy" (gRPC client), "./service" (gRPC service), "./testsuite".
export { ContentPlugin, localContentPlugin } from "./plugin.js";
export type {
  Ctx,
  Info,
  Status,
  DescriptorLike,
  ReaderAt,
  CommitOptions,
  Writer,
  WriterOptions,
  Provider,
  Ingester,
  IngestManager,
  WalkFn,
  Manager,
  ContentStore,
} from "./content.js";
