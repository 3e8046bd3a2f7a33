import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { FieldMaskSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { Containers, ContainerSchema } from "../src/gen/containerd/services/containers/v1/containers_pb.js";
import * as content from "../src/gen/containerd/services/content/v1/content_pb.js";
import * as diff from "../src/gen/containerd/services/diff/v1/diff_pb.js";
import * as events from "../src/gen/containerd/services/events/v1/events_pb.js";
import * as images from "../src/gen/containerd/services/images/v1/images_pb.js";
import * as introspection from "../src/gen/containerd/services/introspection/v1/introspection_pb.js";
import * as leases from "../src/gen/containerd/services/leases/v1/leases_pb.js";
import * as namespaces from "../src/gen/containerd/services/namespaces/v1/namespaces_pb.js";
import * as snapshots from "../src/gen/containerd/services/snapshots/v1/snapshots_pb.js";
import * as tasks from "../src/gen/containerd/services/tasks/v1/tasks_pb.js";
import { Version } from "../src/gen/containerd/services/version/v1/version_pb.js";
import { DescriptorSchema } from "../src/gen/containerd/types/descriptor_pb.js";
import { MetricSchema } from "../src/gen/containerd/types/metrics_pb.js";
import { MountSchema } from "../src/gen/containerd/types/mount_pb.js";
import { PlatformSchema } from "../src/gen/containerd/types/platform_pb.js";
import { ProcessInfoSchema, ProcessSchema, Status } from "../src/gen/containerd/types/task/task_pb.js";
import { StatusSchema as RpcStatusSchema } from "../src/gen/google/rpc/status_pb.js";
import { Health, HealthCheckResponse_ServingStatus } from "../src/gen/grpc/health/v1/health_pb.js";
import { packAny, packJsonAny, SPEC_TYPE_URL } from "../src/index.js";

/** Field name -> number, using the proto (snake_case) names. */
function fieldNumbers(schema: DescMessage): Record<string, number> {
  return Object.fromEntries(schema.fields.map((f) => [f.name, f.number]));
}

describe("field numbers match containerd 1.6", () => {
  const cases: [DescMessage, Record<string, number>][] = [
    [DescriptorSchema, { media_type: 1, digest: 2, size: 3, annotations: 5 }],
    [MountSchema, { type: 1, source: 2, target: 3, options: 4 }],
    [PlatformSchema, { os: 1, architecture: 2, variant: 3 }],
    [MetricSchema, { timestamp: 1, id: 2, data: 3 }],
    [
      ProcessSchema,
      {
        container_id: 1,
        id: 2,
        pid: 3,
        status: 4,
        stdin: 5,
        stdout: 6,
        stderr: 7,
        terminal: 8,
        exit_status: 9,
        exited_at: 10,
      },
    ],
    [ProcessInfoSchema, { pid: 1, info: 2 }],
    [RpcStatusSchema, { code: 1, message: 2, details: 3 }],
    [diff.DiffResponseSchema, { diff: 3 }],
    [diff.DiffRequestSchema, { left: 1, right: 2, media_type: 3, ref: 4, labels: 5 }],
    [diff.ApplyRequestSchema, { diff: 1, mounts: 2, payloads: 3 }],
    [images.ImageSchema, { name: 1, labels: 2, target: 3, created_at: 7, updated_at: 8 }],
    [images.DeleteImageRequestSchema, { name: 1, sync: 2 }],
    [images.ImageCreateSchema, { name: 1, labels: 2 }],
    [
      ContainerSchema,
      {
        id: 1,
        labels: 2,
        image: 3,
        runtime: 4,
        spec: 5,
        snapshotter: 6,
        snapshot_key: 7,
        created_at: 8,
        updated_at: 9,
        extensions: 10,
      },
    ],
    [content.InfoSchema, { digest: 1, size: 2, created_at: 3, updated_at: 4, labels: 5 }],
    [content.StatusSchema, { started_at: 1, updated_at: 2, ref: 3, offset: 4, total: 5, expected: 6 }],
    [content.WriteContentRequestSchema, { action: 1, ref: 2, total: 3, expected: 4, offset: 5, data: 6, labels: 7 }],
    [content.WriteContentResponseSchema, { action: 1, started_at: 2, updated_at: 3, offset: 4, total: 5, digest: 6 }],
    [content.ReadContentRequestSchema, { digest: 1, offset: 2, size: 3 }],
    [leases.LeaseSchema, { id: 1, created_at: 2, labels: 3 }],
    [leases.CreateRequestSchema, { id: 1, labels: 3 }],
    [leases.AddResourceRequestSchema, { id: 1, resource: 2 }],
    [namespaces.UpdateNamespaceRequestSchema, { namespace: 1, update_mask: 2 }],
    [snapshots.InfoSchema, { name: 1, parent: 2, kind: 3, created_at: 4, updated_at: 5, labels: 6 }],
    [snapshots.CommitSnapshotRequestSchema, { snapshotter: 1, name: 2, key: 3, labels: 4 }],
    [snapshots.UpdateSnapshotRequestSchema, { snapshotter: 1, info: 2, update_mask: 3 }],
    [snapshots.UsageResponseSchema, { size: 1, inodes: 2 }],
    [
      tasks.CreateTaskRequestSchema,
      {
        container_id: 1,
        rootfs: 3,
        stdin: 4,
        stdout: 5,
        stderr: 6,
        terminal: 7,
        checkpoint: 8,
        options: 9,
        runtime_path: 10,
      },
    ],
    [tasks.DeleteResponseSchema, { id: 1, pid: 2, exit_status: 3, exited_at: 4 }],
    [
      tasks.ExecProcessRequestSchema,
      { container_id: 1, stdin: 2, stdout: 3, stderr: 4, terminal: 5, spec: 6, exec_id: 7 },
    ],
    [tasks.KillRequestSchema, { container_id: 1, exec_id: 2, signal: 3, all: 4 }],
    [tasks.WaitResponseSchema, { exit_status: 1, exited_at: 2 }],
    [events.EnvelopeSchema, { timestamp: 1, namespace: 2, topic: 3, event: 4 }],
    [events.PublishRequestSchema, { topic: 1, event: 2 }],
    [
      introspection.PluginSchema,
      { type: 1, id: 2, requires: 3, platforms: 4, exports: 5, capabilities: 6, init_err: 7 },
    ],
  ];
  it.each(cases)("%s", (schema, expected) => {
    expect(fieldNumbers(schema)).toEqual(expected);
  });

  it("enums keep containerd's names and values", () => {
    expect(Status.STOPPED).toBe(3);
    expect(Status.PAUSING).toBe(5);
    expect(snapshots.Kind.COMMITTED).toBe(3);
    expect(content.WriteAction.COMMIT).toBe(2);
    expect(HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN).toBe(3);
  });
});

describe("services", () => {
  const kinds = (svc: DescService) => Object.fromEntries(svc.methods.map((m) => [m.name, m.methodKind]));

  it("have containerd's full names", () => {
    const names = [
      Containers,
      content.Content,
      diff.Diff,
      events.Events,
      images.Images,
      introspection.Introspection,
      leases.Leases,
      namespaces.Namespaces,
      snapshots.Snapshots,
      tasks.Tasks,
      Version,
      Health,
    ].map((s) => s.typeName);
    expect(names).toEqual([
      "containerd.services.containers.v1.Containers",
      "containerd.services.content.v1.Content",
      "containerd.services.diff.v1.Diff",
      "containerd.services.events.v1.Events",
      "containerd.services.images.v1.Images",
      "containerd.services.introspection.v1.Introspection",
      "containerd.services.leases.v1.Leases",
      "containerd.services.namespaces.v1.Namespaces",
      "containerd.services.snapshots.v1.Snapshots",
      "containerd.services.tasks.v1.Tasks",
      "containerd.services.version.v1.Version",
      "grpc.health.v1.Health",
    ]);
  });

  it("have the streaming kinds of the catalogue", () => {
    expect(kinds(content.Content)).toEqual({
      Info: "unary",
      Update: "unary",
      List: "server_streaming",
      Delete: "unary",
      Read: "server_streaming",
      Status: "unary",
      ListStatuses: "unary",
      Write: "bidi_streaming",
      Abort: "unary",
    });
    expect(kinds(Containers).ListStream).toBe("server_streaming");
    expect(kinds(snapshots.Snapshots).List).toBe("server_streaming");
    expect(kinds(events.Events).Subscribe).toBe("server_streaming");
    expect(kinds(Health)).toEqual({ Check: "unary", Watch: "server_streaming" });
    expect(Object.keys(kinds(tasks.Tasks))).toHaveLength(17);
    expect(Object.values(kinds(tasks.Tasks)).every((k) => k === "unary")).toBe(true);
    expect(tasks.Tasks.method.kill.output.typeName).toBe("google.protobuf.Empty");
  });
});

describe("round trips", () => {
  it("Container with runtime options, JSON spec and extensions", () => {
    const container = create(ContainerSchema, {
      id: "t1",
      labels: { "io.containerd.image.config.stop-signal": "SIGTERM" },
      image: "docker.io/library/busybox:latest",
      runtime: {
        name: "io.containerd.runc.v2",
        options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array() },
      },
      spec: packJsonAny(SPEC_TYPE_URL, { ociVersion: "1.0.2-dev", root: { path: "rootfs" } }),
      snapshotter: "overlayfs",
      snapshotKey: "t1",
      createdAt: timestampFromMs(1_700_000_000_123),
      extensions: { ext: packAny(MountSchema, create(MountSchema, { type: "bind" })) },
    });
    const back = fromBinary(ContainerSchema, toBinary(ContainerSchema, container));
    expect(back).toEqual(container);
    expect(back.extensions.ext?.typeUrl).toBe("containerd.types.Mount");
  });

  it("Content.Write request with labels", () => {
    const req = create(content.WriteContentRequestSchema, {
      action: content.WriteAction.COMMIT,
      ref: "layer-sha256:abc",
      total: 3n,
      expected: `sha256:${"0".repeat(64)}`,
      offset: 0n,
      data: new Uint8Array([1, 2, 3]),
      labels: { "containerd.io/gc.root": "x" },
    });
    expect(fromBinary(content.WriteContentRequestSchema, toBinary(content.WriteContentRequestSchema, req))).toEqual(
      req,
    );
  });

  it("Images.Update with a field mask", () => {
    const req = create(images.UpdateImageRequestSchema, {
      image: {
        name: "docker.io/library/busybox:latest",
        target: { mediaType: "application/vnd.oci.image.index.v1+json", digest: "sha256:aa", size: 10n },
      },
      updateMask: create(FieldMaskSchema, { paths: ["target"] }),
    });
    expect(fromBinary(images.UpdateImageRequestSchema, toBinary(images.UpdateImageRequestSchema, req))).toEqual(req);
  });

  it("DiffResponse.diff is written with tag 3", () => {
    const bytes = toBinary(
      diff.DiffResponseSchema,
      create(diff.DiffResponseSchema, { diff: create(DescriptorSchema, { size: 1n }) }),
    );
    // tag = (3 << 3) | 2 (length-delimited)
    expect(bytes[0]).toBe(0x1a);
  });

  it("Tasks.List response with an exited process", () => {
    const res = create(tasks.ListTasksResponseSchema, {
      tasks: [{ id: "t1", containerId: "t1", pid: 42, status: Status.STOPPED, exitStatus: 137 }],
    });
    expect(fromBinary(tasks.ListTasksResponseSchema, toBinary(tasks.ListTasksResponseSchema, res))).toEqual(res);
  });
});
