import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createWriteStream } from "node:fs";
import { finished } from "node:stream/promises";
import { Content } from "@berth/api/services/content/v1";
import { Images } from "@berth/api/services/images/v1";
import { Leases } from "@berth/api/services/leases/v1";
import type { ContentStore } from "@berth/content-store";
import { createLocalStore } from "@berth/content-store/local";
import { contentService } from "@berth/content-store/service";
import { toConnectError } from "@berth/errdefs/connect";
import { exportArchive } from "@berth/images/archive";
import { type MetadataDb, openMetadataDb } from "@berth/metadata";
import { imagesService, leasesService } from "@berth/metadata/service";
import { digestOf } from "@berth/oci-spec";
import {
  ConnectError,
  type ConnectRouter,
  type Interceptor,
  type StreamResponse,
  createRouterTransport,
} from "@connectrpc/connect";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type ImageRow,
  formatCheckTable,
  formatImageTable,
  labelColumn,
  progressBytes,
} from "../src/commands/images/index.js";
import { namespaceInterceptor } from "../src/connection.js";
import { createBufferOutput } from "../src/output.js";
import { runCli } from "../src/program.js";

describe("images table formats", () => {
  it("prints sizes as containerd's progress.Bytes", () => {
    expect(progressBytes(0)).toBe("0.0 B");
    expect(progressBytes(385)).toBe("385.0 B");
    expect(progressBytes(1052376)).toBe("1.0 MiB");
    expect(progressBytes(1985831)).toBe("1.9 MiB");
  });

  it("lays out ctr images ls and check", () => {
    const rows: ImageRow[] = [
      {
        name: "docker.io/library/busybox:docker",
        mediaType: "application/vnd.docker.distribution.manifest.v2+json",
        digest: "sha256:6aa5",
        size: 1985831,
        platforms: ["linux/amd64"],
        labels: {},
      },
      {
        name: "x:1",
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: "sha256:3299",
        size: 1052376,
        platforms: ["linux/amd64", "linux/arm64/v8"],
        labels: { z: "1", a: "2" },
      },
    ];
    expect(formatImageTable(rows).split("\n")).toEqual([
      "REF                              TYPE                                                 DIGEST      SIZE    PLATFORMS                  LABELS  ",
      "docker.io/library/busybox:docker application/vnd.docker.distribution.manifest.v2+json sha256:6aa5 1.9 MiB linux/amd64                -       ",
      "x:1                              application/vnd.oci.image.index.v1+json              sha256:3299 1.0 MiB linux/amd64,linux/arm64/v8 a=2,z=1 ",
      "",
    ]);
    expect(labelColumn({})).toBe("-");
    expect(
      formatCheckTable([
        {
          name: "x:1",
          mediaType: "application/vnd.oci.image.index.v1+json",
          digest: "sha256:3299",
          status: "complete (2/2)",
          presentSize: 1052376,
          requiredSize: 1052376,
        },
      ]).split("\n")[1],
    ).toBe("x:1 application/vnd.oci.image.index.v1+json sha256:3299 complete (2/2) 1.0 MiB/1.0 MiB false    ");
  });
});

/** berth against the real Images, Content and Leases services over a metadata DB, in-process. */
describe("berth images against in-process services", () => {
  let dir: string;
  let db: MetadataDb;
  let backend: ReturnType<typeof createLocalStore>;
  let cs: ContentStore;
  const events: string[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-cli-images-"));
    backend = createLocalStore({ root: join(dir, "content") });
    db = openMetadataDb(join(dir, "meta"));
    cs = db.attachContent(backend);
    events.length = 0;
  });
  afterEach(async () => {
    await backend.close();
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  const routes = (r: ConnectRouter) => {
    r.service(Content, contentService(db.content));
    r.service(Leases, leasesService(db.leases));
    r.service(Images, imagesService(db.images, { publish: (_ns, topic) => events.push(topic) }));
  };

  const run = async (...argv: string[]) => {
    const out = createBufferOutput();
    const code = await runCli(argv, {
      env: {},
      out,
      connect: (options) => ({
        transport: createRouterTransport(routes, {
          transport: { interceptors: [namespaceInterceptor(options.namespace)] },
          router: { interceptors: [errorInterceptor] },
        }),
        close: () => {},
      }),
    });
    return { code, out: out.out, err: out.err };
  };

  /** What the daemon's server interceptor does: typed errors (of unary calls and streams) become gRPC codes. */
  async function* mapStreamErrors<T>(messages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* messages;
    } catch (err) {
      throw err instanceof ConnectError ? err : toConnectError(err);
    }
  }
  const errorInterceptor: Interceptor = (next) => async (req) => {
    try {
      const res = await next(req);
      return res.stream ? ({ ...res, message: mapStreamErrors(res.message) } as StreamResponse) : res;
    } catch (err) {
      throw err instanceof ConnectError ? err : toConnectError(err);
    }
  };

  /** An OCI archive of a one-layer linux/amd64 image, written with the images library from a scratch store. */
  async function writeArchive(path: string): Promise<string> {
    const scratch = createLocalStore({ root: join(dir, "scratch") });
    const ctx = { namespace: "x" };
    const put = async (mediaType: string, bytes: Buffer) => {
      const digest = digestOf(bytes);
      const w = await scratch.writer(ctx, { ref: digest, desc: { digest, size: bytes.length } });
      await w.write(bytes);
      await w.commit(bytes.length, digest);
      await w.close();
      return { mediaType, digest, size: bytes.length };
    };
    const layer = await put("application/vnd.oci.image.layer.v1.tar", Buffer.alloc(1024));
    const config = await put(
      "application/vnd.oci.image.config.v1+json",
      Buffer.from(
        JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layer.digest] } }),
      ),
    );
    const manifest = await put(
      "application/vnd.oci.image.manifest.v1+json",
      Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [layer] })),
    );
    const out = createWriteStream(path);
    await exportArchive(ctx, scratch, [{ name: "docker.io/library/tiny:1", target: manifest }], out);
    out.end();
    await finished(out);
    await scratch.close();
    return manifest.digest;
  }

  it("imports, lists, tags, labels, checks, inspects, exports and removes", async () => {
    const archive = join(dir, "tiny.tar");
    const manifest = await writeArchive(archive);

    let r = await run("images", "import", "--no-unpack", archive);
    expect(r).toMatchObject({ code: 0, out: "docker.io/library/tiny:1\n" });
    expect(events).toEqual(["/images/create"]);
    // the temporary lease is gone; the manifest carries the children's GC labels
    expect(db.leases.list("default")).toEqual([]);
    const info = await cs.info({ namespace: "default" }, manifest);
    expect(Object.keys(info.labels).sort()).toEqual([
      "containerd.io/gc.ref.content.config",
      "containerd.io/gc.ref.content.l.0",
    ]);
    // importing again moves the image (Update of the target)
    r = await run("images", "import", "--no-unpack", archive);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(events).toEqual(["/images/create", "/images/update"]);

    r = await run("images", "ls");
    expect(r.code).toBe(0);
    expect(r.out).toContain(`docker.io/library/tiny:1 application/vnd.oci.image.manifest.v1+json ${manifest}`);
    expect(r.out).toContain("linux/amd64");

    expect((await run("images", "tag", "docker.io/library/tiny:1", "tiny:2")).out).toBe("tiny:2\n");
    expect((await run("images", "tag", "docker.io/library/tiny:1", "tiny:2")).code).toBe(1);
    expect((await run("images", "tag", "--force", "docker.io/library/tiny:1", "tiny:2")).code).toBe(0);
    expect((await run("images", "label", "tiny:2", "b=2", "a=1")).out).toBe("a=1,b=2\n");
    expect((await run("images", "label", "tiny:2", "a=")).out).toBe("b=2\n");
    expect((await run("images", "ls", "-q", "labels.b==2")).out).toBe("tiny:2\n");

    r = await run("--json", "images", "ls");
    const listed = JSON.parse(r.out) as Array<{ name: string; size: number; platforms: string[] }>;
    expect(listed.map((i) => [i.name, i.platforms])).toEqual([
      ["docker.io/library/tiny:1", ["linux/amd64"]],
      ["tiny:2", ["linux/amd64"]],
    ]);

    r = await run("images", "check");
    expect(r.code).toBe(0);
    expect(r.out).toContain("complete (2/2)");

    r = await run("images", "inspect", "tiny:2");
    const inspected = JSON.parse(r.out) as { resolved: { chain_ids: string[] }; labels: Record<string, string> };
    expect(inspected.labels).toEqual({ b: "2" });
    expect(inspected.resolved.chain_ids).toHaveLength(1);

    const exported = join(dir, "out.tar");
    expect((await run("images", "export", exported, "tiny:2")).code).toBe(0);
    expect((await readFile(exported)).length).toBeGreaterThan(1024);

    r = await run("images", "rm", "tiny:2", "nope", "docker.io/library/tiny:1");
    expect(r).toMatchObject({
      code: 0,
      out: "tiny:2\ndocker.io/library/tiny:1\n",
      err: "berth: nope: image not found\n",
    });
    expect((await run("images", "ls", "-q")).out).toBe("");
    expect((await run("images", "tag", "nope", "x")).code).toBe(1);
  });

  it("imports into a second namespace the blobs another namespace already has", async () => {
    const archive = join(dir, "tiny.tar");
    await writeArchive(archive);
    expect((await run("-n", "one", "images", "import", "--no-unpack", archive)).code).toBe(0);
    const r = await run("-n", "two", "images", "import", "--no-unpack", archive);
    expect(r.err).toBe("");
    expect(r.out).toBe("docker.io/library/tiny:1\n");
    // linked, not copied twice: the same blobs, the same sizes, in both namespaces
    const blobs = async (namespace: string) => {
      const out: Array<[string, number]> = [];
      await cs.walk({ namespace }, (info) => {
        out.push([info.digest, info.size]);
      });
      return out.sort();
    };
    expect(await blobs("two")).toEqual(await blobs("one"));
    expect((await run("-n", "two", "images", "check")).out).toContain("complete (2/2)");
  });

  it("fails an import of a broken archive and registers nothing", async () => {
    const bad = join(dir, "bad.tar");
    const out = createWriteStream(bad);
    out.end(Buffer.alloc(4096, 7));
    await finished(out);
    const r = await run("images", "import", bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^berth: /);
    expect(db.images.list("default")).toEqual([]);
    expect(db.leases.list("default")).toEqual([]);
  });
});
