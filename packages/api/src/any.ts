// containerd's google.protobuf.Any convention.
//
// containerd's typeurl package writes *bare* type URLs: a protobuf message travels under its full
// type name ("containerd.events.TaskExit"), with no "type.googleapis.com/" prefix. Some payloads
// are JSON instead of protobuf and use registered URLs, e.g. the OCI runtime spec under
// "types.containerd.io/opencontainers/runtime-spec/1/Spec". Readers accept both URL forms.

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, Message, MessageShape, Registry } from "@bufbuild/protobuf";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import type { Any } from "@bufbuild/protobuf/wkt";

/** Prefix of the JSON-valued OCI runtime-spec type URLs. */
export const RUNTIME_SPEC_TYPE_URL_PREFIX = "types.containerd.io/opencontainers/runtime-spec/1/";

/** Type URL of an OCI runtime `Spec` (JSON), as carried by `Container.spec`. */
export const SPEC_TYPE_URL = `${RUNTIME_SPEC_TYPE_URL_PREFIX}Spec`;

/** Type URL of an OCI runtime `Process` (JSON), as carried by `ExecProcessRequest.spec`. */
export const PROCESS_TYPE_URL = `${RUNTIME_SPEC_TYPE_URL_PREFIX}Process`;

/** Type URL of OCI runtime `LinuxResources` (JSON), as carried by `UpdateTaskRequest.resources`. */
export const LINUX_RESOURCES_TYPE_URL = `${RUNTIME_SPEC_TYPE_URL_PREFIX}LinuxResources`;

/**
 * The protobuf type name an Any URL refers to: the part after the last "/", so both
 * "containerd.runc.v1.Options" and "type.googleapis.com/containerd.runc.v1.Options" give
 * "containerd.runc.v1.Options".
 */
export function anyTypeName(any: Pick<Any, "typeUrl">): string {
  const slash = any.typeUrl.lastIndexOf("/");
  return slash < 0 ? any.typeUrl : any.typeUrl.slice(slash + 1);
}

/** Packs a message into an Any whose type URL is the bare full type name. */
export function packAny<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Any {
  return create(AnySchema, { typeUrl: schema.typeName, value: toBinary(schema, message) });
}

/**
 * Unpacks a protobuf Any with a bare or a "type.googleapis.com/"-prefixed URL.
 *
 * With a schema, returns undefined if the Any holds another type. With a registry, returns
 * undefined if the type is not in the registry. An Any with an empty type URL gives undefined.
 */
export function unpackAny<Desc extends DescMessage>(schema: Desc, any: Any): MessageShape<Desc> | undefined;
export function unpackAny(registry: Registry, any: Any): Message | undefined;
export function unpackAny(schemaOrRegistry: DescMessage | Registry, any: Any): Message | undefined {
  if (any.typeUrl === "") {
    return undefined;
  }
  const typeName = anyTypeName(any);
  let schema: DescMessage | undefined;
  if (schemaOrRegistry.kind === "message") {
    schema = schemaOrRegistry.typeName === typeName ? schemaOrRegistry : undefined;
  } else {
    schema = schemaOrRegistry.getMessage(typeName);
  }
  return schema === undefined ? undefined : fromBinary(schema, any.value);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Packs a JSON-serialisable value (e.g. an OCI spec) into an Any with the given type URL. */
export function packJsonAny(typeUrl: string, value: unknown): Any {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError(`packJsonAny: value for ${typeUrl} is not JSON-serialisable`);
  }
  return create(AnySchema, { typeUrl, value: encoder.encode(json) });
}

/**
 * Parses the JSON value of an Any. If `typeUrl` is given, the Any's URL must equal it
 * (otherwise a TypeError is thrown). The result is not validated against `T`.
 */
export function unpackJsonAny<T = unknown>(any: Any, typeUrl?: string): T {
  if (typeUrl !== undefined && any.typeUrl !== typeUrl) {
    throw new TypeError(`unpackJsonAny: expected type URL ${typeUrl}, got ${any.typeUrl || "(empty)"}`);
  }
  return JSON.parse(decoder.decode(any.value)) as T;
}
