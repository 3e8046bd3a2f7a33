import { Task } from "@berth/api/task/v2";
import {
  NAMESPACE_METADATA_KEY,
  type TtrpcClient,
  type TtrpcServiceClient,
  connectTtrpcClient,
  createTtrpcServiceClient,
} from "@berth/ttrpc";
import type { GenService } from "@bufbuild/protobuf/codegenv2";

type TaskMethods = typeof Task extends GenService<infer S> ? S : never;

/** containerd.task.v2.Task as typed async methods (`state`, `create`, `wait`, …). */
export type ShimTaskClient = TtrpcServiceClient<TaskMethods>;

/** A connection to one shim: the typed Task client and the ttrpc connection under it. */
export interface ShimConnection {
  readonly task: ShimTaskClient;
  readonly conn: TtrpcClient;
  readonly address: string;
}

/**
 * Connects to a shim's ttrpc address (`unix:///run/containerd/s/…`); every call carries the namespace as
 * containerd's `containerd-namespace-ttrpc` metadata. Rejects with Unavailable when nothing listens there.
 */
export async function connectShim(address: string, namespace: string): Promise<ShimConnection> {
  const conn = await connectTtrpcClient(address, { metadata: { [NAMESPACE_METADATA_KEY]: namespace } });
  return { task: createTtrpcServiceClient(conn, Task), conn, address };
}
