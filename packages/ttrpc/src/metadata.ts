import type { KeyValueList } from "./internal/wire.js";

/** Metadata to send with a call: one or more values per key (ttrpc's `MD`, a `map[string][]string`). */
export type TtrpcMetadataInit =
  | Readonly<Record<string, string | readonly string[]>>
  | ReadonlyMap<string, string | readonly string[]>;

/** Metadata received with a call. */
export type TtrpcMetadata = ReadonlyMap<string, readonly string[]>;

/** The ttrpc metadata key containerd uses for the namespace of every call to a shim. */
export const NAMESPACE_METADATA_KEY = "containerd-namespace-ttrpc";

export function metadataEntries(init: TtrpcMetadataInit): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const add = (key: string, value: string | readonly string[]) => {
    if (typeof value === "string") out.push([key, value]);
    else for (const v of value) out.push([key, v]);
  };
  if (init instanceof Map) for (const [k, v] of init as ReadonlyMap<string, string | readonly string[]>) add(k, v);
  else
    for (const k of Object.keys(init)) add(k, (init as Readonly<Record<string, string | readonly string[]>>)[k] ?? []);
  return out;
}

export function metadataKeys(init: TtrpcMetadataInit): string[] {
  return init instanceof Map ? [...(init as ReadonlyMap<string, unknown>).keys()] : Object.keys(init);
}

/** Groups received key/value pairs by key, keeping their order. */
export function metadataFromEntries(entries: KeyValueList): Map<string, string[]> {
  const md = new Map<string, string[]>();
  for (const [k, v] of entries) {
    const list = md.get(k);
    if (list === undefined) md.set(k, [v]);
    else list.push(v);
  }
  return md;
}
