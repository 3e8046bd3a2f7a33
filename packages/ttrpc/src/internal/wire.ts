/**
 * ttrpc 1.1 wire format: a 10-byte big-endian frame header followed by a protobuf payload.
 *
 *   uint32 length (payload only) · uint32 stream id · uint8 type · uint8 flags
 *
 * Request  {1 service string, 2 method string, 3 payload bytes, 4 timeout_nano int64, 5 metadata repeated KeyValue}
 * KeyValue {1 key string, 2 value string}
 * Response {1 status google.rpc.Status, 2 payload bytes}
 * Status   {1 code int32, 2 message string, 3 details repeated google.protobuf.Any{1 type_url, 2 value}}
 *
 * Encoders write the header and the message into one buffer (one allocation, one socket write). Decoders use
 * @bufbuild/protobuf's BinaryReader, which skips unknown fields and returns `bytes` as views (no copy).
 */
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export const HEADER_LENGTH = 10;
/** Largest payload a peer may send (containerd/ttrpc `messageLengthMax`). */
export const MAX_MESSAGE_LENGTH = 4 << 20;

export const MessageType = {
  Request: 0x1,
  Response: 0x2,
  Data: 0x3,
} as const;

/** A metadata entry list as it travels in `Request.metadata`. */
export type KeyValueList = ReadonlyArray<readonly [key: string, value: string]>;

/** An entry of `google.rpc.Status.details` (`google.protobuf.Any`). */
export interface StatusDetail {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface WireStatus {
  readonly code: number;
  readonly message: string;
  readonly details: readonly StatusDetail[];
}

export interface WireRequest {
  readonly service: string;
  readonly method: string;
  readonly payload: Uint8Array;
  /** Nanoseconds; 0 = none. */
  readonly timeoutNano: number;
  readonly metadata: KeyValueList;
}

export interface WireResponse {
  /** Undefined when the peer sent no status (success). */
  readonly status: WireStatus | undefined;
  readonly payload: Uint8Array;
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------------------
// Encoding primitives (non-negative safe integers only)

export function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

export function writeVarint(buf: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  buf[pos++] = v;
  return pos;
}

/** Size of a length-delimited field (tag + length + body) with a one-byte tag. */
function delimitedSize(len: number): number {
  return 1 + varintSize(len) + len;
}

function writeDelimited(buf: Buffer, pos: number, tag: number, bytes: Uint8Array): number {
  buf[pos++] = tag;
  pos = writeVarint(buf, pos, bytes.length);
  buf.set(bytes, pos);
  return pos + bytes.length;
}

export function writeHeader(buf: Uint8Array, length: number, streamId: number, type: number, flags: number): void {
  buf[0] = length >>> 24;
  buf[1] = (length >>> 16) & 0xff;
  buf[2] = (length >>> 8) & 0xff;
  buf[3] = length & 0xff;
  buf[4] = streamId >>> 24;
  buf[5] = (streamId >>> 16) & 0xff;
  buf[6] = (streamId >>> 8) & 0xff;
  buf[7] = streamId & 0xff;
  buf[8] = type;
  buf[9] = flags;
}

// ---------------------------------------------------------------------------------------------------------
// Request

/** `Request` fields 1 and 2 (service, method), encoded once per method and cached by the client. */
export function encodeRequestPrefix(service: string, method: string): Buffer {
  const s = Buffer.from(service, "utf8");
  const m = Buffer.from(method, "utf8");
  const buf = Buffer.allocUnsafe(delimitedSize(s.length) + delimitedSize(m.length));
  writeDelimited(buf, writeDelimited(buf, 0, 0x0a, s), 0x12, m);
  return buf;
}

/** `Request` field 5 entries (repeated KeyValue), encoded as a block that can be appended to any request. */
export function encodeMetadata(metadata: KeyValueList): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of metadata) {
    const k = Buffer.from(key, "utf8");
    const v = Buffer.from(value, "utf8");
    const inner = delimitedSize(k.length) + delimitedSize(v.length);
    const part = Buffer.allocUnsafe(delimitedSize(inner));
    let pos = 0;
    part[pos++] = 0x2a;
    pos = writeVarint(part, pos, inner);
    pos = writeDelimited(part, pos, 0x0a, k);
    writeDelimited(part, pos, 0x12, v);
    parts.push(part);
  }
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * A complete request frame: header + Request{prefix, payload, timeout_nano, metadata...}.
 * `prefix` comes from {@link encodeRequestPrefix}; each metadata block from {@link encodeMetadata}.
 * Returns undefined if the message would exceed {@link MAX_MESSAGE_LENGTH}.
 */
export function encodeRequestFrame(
  streamId: number,
  prefix: Uint8Array,
  payload: Uint8Array,
  timeoutNano: number,
  metadata1: Uint8Array | undefined,
  metadata2: Uint8Array | undefined,
): Buffer | undefined {
  let length = prefix.length;
  if (payload.length > 0) length += delimitedSize(payload.length);
  if (timeoutNano > 0) length += 1 + varintSize(timeoutNano);
  if (metadata1 !== undefined) length += metadata1.length;
  if (metadata2 !== undefined) length += metadata2.length;
  if (length > MAX_MESSAGE_LENGTH) return undefined;
  const buf = Buffer.allocUnsafe(HEADER_LENGTH + length);
  writeHeader(buf, length, streamId, MessageType.Request, 0);
  buf.set(prefix, HEADER_LENGTH);
  let pos = HEADER_LENGTH + prefix.length;
  if (payload.length > 0) pos = writeDelimited(buf, pos, 0x1a, payload);
  if (timeoutNano > 0) {
    buf[pos++] = 0x20;
    pos = writeVarint(buf, pos, timeoutNano);
  }
  if (metadata1 !== undefined) {
    buf.set(metadata1, pos);
    pos += metadata1.length;
  }
  if (metadata2 !== undefined) buf.set(metadata2, pos);
  return buf;
}

function decodeUtf8(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
}

/** Decodes a `Request` message; throws on malformed input. */
export function decodeRequest(bytes: Uint8Array): WireRequest {
  const r = new BinaryReader(bytes, decodeUtf8);
  let service = "";
  let method = "";
  let payload: Uint8Array = EMPTY;
  let timeoutNano = 0;
  let metadata: Array<[string, string]> | undefined;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) service = r.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) method = r.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) payload = r.bytes();
    else if (field === 4 && wireType === WireType.Varint) timeoutNano = Number(r.int64());
    else if (field === 5 && wireType === WireType.LengthDelimited) {
      const kv = new BinaryReader(r.bytes(), decodeUtf8);
      let key = "";
      let value = "";
      while (kv.pos < kv.len) {
        const [f, wt] = kv.tag();
        if (f === 1 && wt === WireType.LengthDelimited) key = kv.string();
        else if (f === 2 && wt === WireType.LengthDelimited) value = kv.string();
        else kv.skip(wt, f);
      }
      if (metadata === undefined) metadata = [];
      metadata.push([key, value]);
    } else r.skip(wireType, field);
  }
  return { service, method, payload, timeoutNano, metadata: metadata ?? [] };
}

// ---------------------------------------------------------------------------------------------------------
// Response

/** Encodes a google.rpc.Status message body. */
export function encodeStatus(status: WireStatus): Buffer {
  const message = Buffer.from(status.message, "utf8");
  const code = status.code >>> 0;
  const details = status.details.map((d) => {
    const t = Buffer.from(d.typeUrl, "utf8");
    const inner =
      (t.length > 0 ? delimitedSize(t.length) : 0) + (d.value.length > 0 ? delimitedSize(d.value.length) : 0);
    const out = Buffer.allocUnsafe(inner);
    let pos = 0;
    if (t.length > 0) pos = writeDelimited(out, pos, 0x0a, t);
    if (d.value.length > 0) writeDelimited(out, pos, 0x12, d.value);
    return out;
  });
  let length = 0;
  if (code !== 0) length += 1 + varintSize(code);
  if (message.length > 0) length += delimitedSize(message.length);
  for (const d of details) length += delimitedSize(d.length);
  const buf = Buffer.allocUnsafe(length);
  let pos = 0;
  if (code !== 0) {
    buf[pos++] = 0x08;
    pos = writeVarint(buf, pos, code);
  }
  if (message.length > 0) pos = writeDelimited(buf, pos, 0x12, message);
  for (const d of details) pos = writeDelimited(buf, pos, 0x1a, d);
  return buf;
}

/**
 * A complete response frame. Like containerd/ttrpc, the status field is always present (an empty message on
 * success). `status` is the encoded Status body from {@link encodeStatus}, or undefined for OK.
 */
export function encodeResponseFrame(streamId: number, status: Uint8Array | undefined, payload: Uint8Array): Buffer {
  const statusLen = status === undefined ? 0 : status.length;
  let length = delimitedSize(statusLen);
  if (payload.length > 0) length += delimitedSize(payload.length);
  const buf = Buffer.allocUnsafe(HEADER_LENGTH + length);
  writeHeader(buf, length, streamId, MessageType.Response, 0);
  let pos = HEADER_LENGTH;
  buf[pos++] = 0x0a;
  pos = writeVarint(buf, pos, statusLen);
  if (status !== undefined) {
    buf.set(status, pos);
    pos += statusLen;
  }
  if (payload.length > 0) writeDelimited(buf, pos, 0x12, payload);
  return buf;
}

/** Decodes a google.rpc.Status message body. */
export function decodeStatus(bytes: Uint8Array): WireStatus {
  const r = new BinaryReader(bytes, decodeUtf8);
  let code = 0;
  let message = "";
  let details: StatusDetail[] | undefined;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.Varint) code = r.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) message = r.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) {
      const a = new BinaryReader(r.bytes(), decodeUtf8);
      let typeUrl = "";
      let value: Uint8Array = EMPTY;
      while (a.pos < a.len) {
        const [f, wt] = a.tag();
        if (f === 1 && wt === WireType.LengthDelimited) typeUrl = a.string();
        else if (f === 2 && wt === WireType.LengthDelimited) value = a.bytes();
        else a.skip(wt, f);
      }
      if (details === undefined) details = [];
      details.push({ typeUrl, value });
    } else r.skip(wireType, field);
  }
  return { code, message, details: details ?? [] };
}

/** Decodes a `Response` message; throws on malformed input. */
export function decodeResponse(bytes: Uint8Array): WireResponse {
  const r = new BinaryReader(bytes, decodeUtf8);
  let status: WireStatus | undefined;
  let payload: Uint8Array = EMPTY;
  while (r.pos < r.len) {
    const [field, wireType] = r.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) status = decodeStatus(r.bytes());
    else if (field === 2 && wireType === WireType.LengthDelimited) payload = r.bytes();
    else r.skip(wireType, field);
  }
  return { status, payload };
}
