import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage } from "@bufbuild/protobuf";
import { anyPack, anyUnpack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { MetricsSchema as CgroupsV1MetricsSchema } from "../src/gen/containerd/cgroups/stats/v1/metrics_pb.js";
import { MetricsSchema as CgroupsV2MetricsSchema } from "../src/gen/containerd/cgroups/stats/v2/metrics_pb.js";
import { ContainerCreateSchema } from "../src/gen/containerd/events/container_pb.js";
import { SnapshotPrepareSchema } from "../src/gen/containerd/events/snapshot_pb.js";
import { TaskCreateSchema, TaskDeleteSchema, TaskExitSchema } from "../src/gen/containerd/events/task_pb.js";
import { OptionsSchema, ProcessDetailsSchema } from "../src/gen/containerd/runc/options/oci_pb.js";
import {
  ConnectResponseSchema,
  CreateTaskRequestSchema,
  DeleteResponseSchema,
  StateResponseSchema,
  Task,
} from "../src/gen/containerd/runtime/task/v2/shim_pb.js";
import {
  EnvelopeSchema,
  Events,
  ForwardRequestSchema,
} from "../src/gen/containerd/services/ttrpc/events/v1/events_pb.js";
import { Status } from "../src/gen/containerd/types/task/task_pb.js";

function fieldNo(schema: DescMessage, name: string): number | undefined {
  return schema.fields.find((f) => f.name === name)?.number;
}

// Go's zero time, which containerd always emits for an unset non-nullable timestamp.
const goZeroTime = { seconds: -62135596800n, nanos: 0 };

describe("containerd.events", () => {
  it("round-trips TaskExit, packed the way shims forward it", () => {
    const exit = create(TaskExitSchema, {
      containerId: "c1",
      id: "c1",
      pid: 4242,
      exitStatus: 137,
      exitedAt: timestampFromMs(1_700_000_000_123),
    });
    const decoded = fromBinary(TaskExitSchema, toBinary(TaskExitSchema, exit));
    expect(decoded).toEqual(exit);

    const packed = anyPack(TaskExitSchema, exit);
    // Type URLs carry no type.googleapis.com/ prefix in containerd; the full name is what matters.
    expect(TaskExitSchema.typeName).toBe("containerd.events.TaskExit");
    expect(packed.typeUrl.endsWith("containerd.events.TaskExit")).toBe(true);
    const forward = create(ForwardRequestSchema, {
      envelope: create(EnvelopeSchema, {
        timestamp: timestampFromMs(1_700_000_000_000),
        namespace: "default",
        topic: "/tasks/exit",
        event: { typeUrl: "containerd.events.TaskExit", value: packed.value },
      }),
    });
    const back = fromBinary(ForwardRequestSchema, toBinary(ForwardRequestSchema, forward));
    expect(back.envelope?.topic).toBe("/tasks/exit");
    const event = back.envelope?.event;
    expect(event?.typeUrl).toBe("containerd.events.TaskExit");
    expect(fromBinary(TaskExitSchema, event?.value ?? new Uint8Array())).toEqual(exit);
  });

  it("keeps containerd's field numbers", () => {
    expect(fieldNo(TaskExitSchema, "exited_at")).toBe(5);
    expect(fieldNo(TaskExitSchema, "exit_status")).toBe(4);
    expect(fieldNo(TaskDeleteSchema, "id")).toBe(5);
    expect(fieldNo(TaskDeleteSchema, "exited_at")).toBe(4);
    expect(fieldNo(TaskCreateSchema, "pid")).toBe(6);
    expect(fieldNo(TaskCreateSchema, "io")).toBe(4);
    expect(fieldNo(SnapshotPrepareSchema, "snapshotter")).toBe(5);
    expect(ContainerCreateSchema.nestedMessages.map((m) => m.typeName)).toEqual([
      "containerd.events.ContainerCreate.Runtime",
    ]);
    expect(fieldNo(EnvelopeSchema, "event")).toBe(4);
    expect(EnvelopeSchema.typeName).toBe("containerd.services.events.ttrpc.v1.Envelope");
    expect(Events.typeName).toBe("containerd.services.events.ttrpc.v1.Events");
    expect(Object.keys(Events.method)).toEqual(["forward"]);
  });
});

describe("containerd.task.v2 (shim API)", () => {
  it("round-trips CreateTaskRequest with packed runc options", () => {
    const opts = create(OptionsSchema, { binaryName: "runc", systemdCgroup: true });
    const req = create(CreateTaskRequestSchema, {
      id: "c1",
      bundle: "/run/containerd/io.containerd.runtime.v2.task/default/c1",
      rootfs: [{ type: "overlay", source: "overlay", options: ["lowerdir=/a", "upperdir=/b", "workdir=/c"] }],
      terminal: false,
      stdin: "/run/containerd/fifo/x/c1-stdin",
      stdout: "/run/containerd/fifo/x/c1-stdout",
      options: anyPack(OptionsSchema, opts),
    });
    const decoded = fromBinary(CreateTaskRequestSchema, toBinary(CreateTaskRequestSchema, req));
    expect(decoded).toEqual(req);
    expect(decoded.options && anyUnpack(decoded.options, OptionsSchema)).toEqual(opts);
  });

  it("keeps containerd's field numbers", () => {
    expect(fieldNo(CreateTaskRequestSchema, "options")).toBe(10);
    expect(fieldNo(CreateTaskRequestSchema, "terminal")).toBe(4);
    expect(fieldNo(CreateTaskRequestSchema, "checkpoint")).toBe(8);
    expect(fieldNo(ConnectResponseSchema, "version")).toBe(3);
    expect(fieldNo(StateResponseSchema, "exec_id")).toBe(11);
    expect(fieldNo(DeleteResponseSchema, "exited_at")).toBe(3);
  });

  it("declares the 17 unary RPCs of containerd.task.v2.Task", () => {
    expect(Task.typeName).toBe("containerd.task.v2.Task");
    expect(Task.methods.map((m) => m.name)).toEqual([
      "State",
      "Create",
      "Start",
      "Delete",
      "Pids",
      "Pause",
      "Resume",
      "Checkpoint",
      "Kill",
      "Exec",
      "ResizePty",
      "CloseIO",
      "Update",
      "Wait",
      "Stats",
      "Connect",
      "Shutdown",
    ]);
    expect(Task.methods.every((m) => m.methodKind === "unary")).toBe(true);
  });

  it("carries the Go zero time and the task status enum", () => {
    const state = create(StateResponseSchema, { id: "c1", pid: 7, status: Status.RUNNING, exitedAt: goZeroTime });
    const decoded = fromBinary(StateResponseSchema, toBinary(StateResponseSchema, state));
    expect(decoded.status).toBe(Status.RUNNING);
    expect(decoded.exitedAt?.seconds).toBe(-62135596800n);
  });
});

describe("containerd.runc.v1", () => {
  it("round-trips Options", () => {
    const opts = create(OptionsSchema, {
      noPivotRoot: true,
      noNewKeyring: true,
      shimCgroup: "/shim",
      ioUid: 1000,
      ioGid: 1000,
      binaryName: "/usr/bin/runc",
      root: "/run/containerd/runc",
      criuPath: "/usr/sbin/criu",
      systemdCgroup: true,
      criuImagePath: "/img",
      criuWorkPath: "/work",
    });
    expect(fromBinary(OptionsSchema, toBinary(OptionsSchema, opts))).toEqual(opts);
    // ctr sends the options Any with empty bytes: that must decode to all defaults.
    expect(fromBinary(OptionsSchema, new Uint8Array())).toEqual(create(OptionsSchema));
    expect(OptionsSchema.typeName).toBe("containerd.runc.v1.Options");
    expect(fieldNo(OptionsSchema, "systemd_cgroup")).toBe(9);
    expect(fieldNo(OptionsSchema, "criu_work_path")).toBe(11);
    expect(fieldNo(ProcessDetailsSchema, "exec_id")).toBe(1);
  });
});

describe("cgroup metrics", () => {
  it("round-trips io.containerd.cgroups.v1.Metrics", () => {
    const m = create(CgroupsV1MetricsSchema, {
      hugetlb: [{ pagesize: "2MB", usage: 0n, max: 4096n }],
      pids: { current: 3n, limit: 100n },
      cpu: {
        usage: { total: 123_456_789n, kernel: 1n, user: 2n, perCpu: [10n, 20n] },
        throttling: { periods: 5n, throttledPeriods: 1n, throttledTime: 99n },
      },
      memory: { cache: 4096n, rss: 8192n, totalRss: 8192n, usage: { usage: 12288n, limit: 1n << 62n } },
      blkio: { ioServiceBytesRecursive: [{ op: "Read", major: 8n, minor: 0n, value: 512n }] },
      network: [{ name: "eth0", rxBytes: 1n, txBytes: 2n }],
    });
    const decoded = fromBinary(CgroupsV1MetricsSchema, toBinary(CgroupsV1MetricsSchema, m));
    expect(decoded).toEqual(m);
    expect(CgroupsV1MetricsSchema.typeName).toBe("io.containerd.cgroups.v1.Metrics");
    expect(fieldNo(CgroupsV1MetricsSchema, "blkio")).toBe(5);
    expect(fieldNo(CgroupsV1MetricsSchema, "memory_oom_control")).toBe(9);
  });

  it("keeps the v2 layout (no field 3)", () => {
    expect(CgroupsV2MetricsSchema.typeName).toBe("io.containerd.cgroups.v2.Metrics");
    expect(CgroupsV2MetricsSchema.fields.map((f) => f.number)).toEqual([1, 2, 4, 5, 6, 7, 8, 9]);
    const m = create(CgroupsV2MetricsSchema, {
      memory: { usage: 1n, swapLimit: 2n },
      io: { usage: [{ major: 8n, rbytes: 3n }] },
    });
    expect(fromBinary(CgroupsV2MetricsSchema, toBinary(CgroupsV2MetricsSchema, m))).toEqual(m);
  });
});
