// Go zero timestamps.
//
// containerd's timestamps are gogo "stdtime" non-nullable fields: they are always emitted, and an
// unset time.Time is the Go zero time, 0001-01-01T00:00:00Z = Timestamp{seconds: -62135596800}.
// Write that value for "unset" and read it back as "unset".

import { create } from "@bufbuild/protobuf";
import {
  TimestampSchema,
  timestampDate,
  timestampFromDate as wktTimestampFromDate,
  timestampNow,
} from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";

/** Seconds of Go's zero time.Time (0001-01-01T00:00:00Z) relative to the Unix epoch. */
export const GO_ZERO_TIMESTAMP_SECONDS = -62135596800n;

/** A new Timestamp holding Go's zero time. */
export function goZeroTimestamp(): Timestamp {
  return create(TimestampSchema, { seconds: GO_ZERO_TIMESTAMP_SECONDS, nanos: 0 });
}

/** True if the timestamp is Go's zero time. */
export function isGoZeroTimestamp(ts: Timestamp): boolean {
  return ts.seconds === GO_ZERO_TIMESTAMP_SECONDS && ts.nanos === 0;
}

/** Converts a Date to a Timestamp; undefined becomes Go's zero time. */
export function timestampFromDate(d?: Date): Timestamp {
  return d === undefined ? goZeroTimestamp() : wktTimestampFromDate(d);
}

/** Converts a Timestamp to a Date; a missing timestamp or Go's zero time becomes undefined. */
export function dateFromTimestamp(ts?: Timestamp): Date | undefined {
  if (ts === undefined || isGoZeroTimestamp(ts)) {
    return undefined;
  }
  return timestampDate(ts);
}

/** The current time as a Timestamp. */
export function nowTimestamp(): Timestamp {
  return timestampNow();
}
