import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import type { TtrpcCallOptions, TtrpcClient } from "./client.js";
import { badResponseError } from "./errors.js";

type UnaryKeys<S extends GenServiceMethods> = {
  [K in keyof S]: S[K]["methodKind"] extends "unary" ? K : never;
}[keyof S];

/** One async method per unary RPC of a service, named by the RPC's local (camelCase) name. */
export type TtrpcServiceClient<S extends GenServiceMethods> = {
  [K in UnaryKeys<S>]: (
    request: MessageInitShape<S[K]["input"]>,
    options?: TtrpcCallOptions,
  ) => Promise<MessageShape<S[K]["output"]>>;
};

/**
 * A typed client for a protobuf-es service over a ttrpc connection:
 * `const task = createTtrpcServiceClient(client, Task); await task.state({ id })`.
 * Only unary RPCs are available (ttrpc 1.1).
 */
export function createTtrpcServiceClient<S extends GenServiceMethods>(
  client: TtrpcClient,
  service: GenService<S>,
): TtrpcServiceClient<S> {
  const out: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind !== "unary") continue;
    const input: DescMessage = method.input;
    const output: DescMessage = method.output;
    const serviceName = service.typeName;
    const methodName = method.name;
    out[method.localName] = async (request: MessageInitShape<DescMessage>, options?: TtrpcCallOptions) => {
      const bytes = toBinary(input, create(input, request));
      const reply = await client.call(serviceName, methodName, bytes, options);
      try {
        return fromBinary(output, reply);
      } catch (err) {
        throw badResponseError(err);
      }
    };
  }
  return out as TtrpcServiceClient<S>;
}
