/**
 * `berth images ls|import|export|rm|tag|label|check|inspect` (ctr: Images.List / Get / Create / Update / Delete).
 * As in ctr, import and export run in the client: the archive is read or written here, and blobs travel through
 * the Content service (import under a temporary lease).
 */
import { createWriteStream } from "node:fs";
import { stat } from "node:fs/promises";
import { Readable, type Writable } from "node:stream";
import { finished } from "node:stream/promises";
import type { Image } from "@berth/api/services/images/v1";
import type { ContentStore, Ctx } from "@berth/content-store";
import { isAlreadyExists, isNotFound, isUnavailable } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import type { Descriptor } from "@berth/oci-spec";
import { Command, Option } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { CliError, errorMessage } from "../../errors.js";
import { goRfc3339Nano } from "../../go-format.js";
import { compareStrings, TabWriter, writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";
import { formatBytes } from "../content/progress.js";
import { expireLabel, leasesClient, randomLeaseId } from "../leases/index.js";
import { imagesMountCommand, imagesUnmountCommand } from "./mount.js";
import { fetchCommand } from "./fetch.js";
import { pullCommand } from "./pull.js";
import { pushCommand } from "./push.js";

/** Loaded on use, so that other commands skip decoding this file's descriptors. */
async function imagesClient(ctx: CommandContext) {
  const { Images } = await import("@berth/api/services/images/v1");
  return ctx.client(Images);
}

/** A ContentStore over the daemon's Content service, on the command's connection. */
async function contentStore(ctx: CommandContext): Promise<ContentStore> {
  const { createContentClient } = await import("@berth/content-store/proxy");
  return createContentClient(ctx.transport());
}

/** The namespace (and lease) as a library Ctx; the transport already sends the namespace header. */
const libCtx = (ctx: CommandContext, lease?: string): Ctx =>
  lease === undefined ? { namespace: ctx.options.namespace } : { namespace: ctx.options.namespace, lease };

/** ctr's image tables: `tabwriter.NewWriter(os.Stdout, 1, 8, 1, ' ', 0)`. */
const IMAGE_TABLE = { minWidth: 1, tabWidth: 8, padding: 1 } as const;

/** containerd's `progress.Bytes`: binary units, one decimal (`1.9 MiB`, `385.0 B`). */
export function progressBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

function sortedLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort((a, b) => compareStrings(a[0], b[0])));
}

/** `k=v` pairs in sorted order, comma-joined; `-` when there are none (ctr's LABELS column). */
export function labelColumn(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort(compareStrings);
  return pairs.length > 0 ? pairs.join(",") : "-";
}

/** The image's target as a library descriptor. */
function targetOf(image: Image): Descriptor {
  const t = image.target;
  return {
    mediaType: t?.mediaType ?? "",
    digest: (t?.digest ?? "") as Descriptor["digest"],
    size: Number(t?.size ?? 0n),
    ...(t && Object.keys(t.annotations).length > 0 ? { annotations: { ...t.annotations } } : {}),
  };
}

export interface ImageRow {
  readonly name: string;
  readonly mediaType: string;
  readonly digest: string;
  /** Bytes for the host platform, undefined when it could not be computed. */
  readonly size: number | undefined;
  readonly platforms: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

/** `REF TYPE DIGEST SIZE PLATFORMS LABELS` as `ctr images ls` prints it. */
export function formatImageTable(rows: readonly ImageRow[]): string {
  const w = new TabWriter(IMAGE_TABLE);
  w.write("REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t\n");
  for (const r of rows) {
    const platforms = r.platforms.length > 0 ? r.platforms.join(",") : "-";
    w.write(
      `${r.name}\t${r.mediaType}\t${r.digest}\t${progressBytes(r.size ?? 0)}\t${platforms}\t${labelColumn(r.labels)}\t\n`,
    );
  }
  return w.flush();
}

/** Size (host platform) and platforms of an image, as ctr computes them; failures are reported on stderr. */
async function describeImage(ctx: CommandContext, store: ContentStore, image: Image): Promise<ImageRow> {
  const { imagePlatforms, imageSize } = await import("@berth/images");
  const platforms = await import("@berth/images/platforms");
  const target = targetOf(image);
  const c = libCtx(ctx);
  let size: number | undefined;
  try {
    size = await imageSize(c, store, target, platforms.defaultMatcher());
  } catch (err) {
    ctx.out.stderr(`berth: failed calculating size for image ${image.name}: ${errorMessage(err)}\n`);
  }
  let specs: string[] = [];
  try {
    const set = new Set((await imagePlatforms(c, store, target)).map((p) => platforms.format(p)));
    specs = [...set].sort(compareStrings);
  } catch (err) {
    ctx.out.stderr(`berth: failed resolving platform for image ${image.name}: ${errorMessage(err)}\n`);
  }
  return {
    name: image.name,
    mediaType: target.mediaType,
    digest: target.digest,
    size,
    platforms: specs,
    labels: image.labels,
  };
}

function imageJson(image: Image) {
  return {
    name: image.name,
    target: {
      media_type: image.target?.mediaType ?? "",
      digest: image.target?.digest ?? "",
      size: Number(image.target?.size ?? 0n),
      ...(image.target && Object.keys(image.target.annotations).length > 0
        ? { annotations: sortedLabels(image.target.annotations) }
        : {}),
    },
    labels: sortedLabels(image.labels),
    created_at: goRfc3339Nano(image.createdAt),
    updated_at: goRfc3339Nano(image.updatedAt),
  };
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list images known to the daemon")
    .argument("[filters...]", 'filters, e.g. "name==docker.io/library/busybox:latest" or labels.foo==bar')
    .option("-q, --quiet", "print only the image refs")
    .action(async (filters: string[], opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const client = await imagesClient(ctx);
        const { images } = await client.list({ filters }, ctx.callOptions());
        if (opts.quiet) {
          if (ctx.options.json)
            writeJson(
              ctx.out,
              images.map((i) => i.name),
            );
          else ctx.out.stdout(images.map((i) => `${i.name}\n`).join(""));
          return;
        }
        const store = await contentStore(ctx);
        const rows: ImageRow[] = [];
        for (const image of images) rows.push(await describeImage(ctx, store, image));
        if (ctx.options.json) {
          writeJson(
            ctx.out,
            images.map((image, i) => ({
              ...imageJson(image),
              size: rows[i]?.size ?? null,
              platforms: rows[i]?.platforms ?? [],
            })),
          );
        } else {
          ctx.out.stdout(formatImageTable(rows));
        }
      }),
    );
}

interface ImportFlags {
  baseName?: string;
  digests?: boolean;
  skipDigestForNamed?: boolean;
  indexName?: string;
  allPlatforms?: boolean;
  platform?: string;
  unpack: boolean;
  snapshotter: string;
  label: string[];
  progress: boolean;
}

/** Creates or moves each image as `ctr images import` does: Update(target), and Create when it is missing. */
async function registerImages(
  ctx: CommandContext,
  images: ReadonlyArray<{ name: string; target: Descriptor; labels?: Record<string, string> }>,
): Promise<Image[]> {
  const client = await imagesClient(ctx);
  const out: Image[] = [];
  for (const img of images) {
    const image = {
      name: img.name,
      labels: img.labels ?? {},
      target: {
        mediaType: img.target.mediaType,
        digest: img.target.digest,
        size: BigInt(img.target.size),
        annotations: { ...(img.target.annotations ?? {}) },
      },
    };
    const paths = ["target", ...Object.keys(img.labels ?? {}).map((k) => `labels.${k}`)];
    try {
      const res = await client.update({ image, updateMask: { paths } }, ctx.callOptions());
      if (res.image) out.push(res.image);
    } catch (err) {
      if (!isNotFound(fromConnectError(err))) throw err;
      const res = await client.create({ image }, ctx.callOptions());
      if (res.image) out.push(res.image);
    }
  }
  return out;
}

function importCommand(run: RunCommand): Command {
  return new Command("import")
    .description('import images from an OCI image layout or Docker save archive ("-" reads standard input)')
    .argument("<file>", "the archive (tar, optionally gzip-compressed)")
    .option("--base-name <name>", "base image name for tag-only refs; only refs with this prefix are imported")
    .option("--digests", "also name every manifest <base name>@<digest>")
    .option("--skip-digest-for-named", "with --digests, skip the digest name of manifests that have a name")
    .option("--index-name <name>", "also name the archive's index")
    .option("--all-platforms", "import content for all platforms")
    .option("--platform <platform>", "import content for this platform only (default: the host's)")
    .option("--no-unpack", "do not unpack the images (default: unpack for the platform, as ctr)")
    .option("--snapshotter <name>", "snapshotter to unpack into", process.env.CONTAINERD_SNAPSHOTTER || "overlayfs")
    .addOption(
      new Option("--label <key=value>", "label every imported image (repeatable)")
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option("--no-progress", "never show progress")
    .action(async (file: string, opts: ImportFlags, command: Command) =>
      run(command, async (ctx) => {
        const { importImages } = await import("@berth/images/archive");
        const platforms = await import("@berth/images/platforms");
        const labels: Record<string, string> = {};
        for (const l of opts.label) {
          const i = l.indexOf("=");
          labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? "" : l.slice(i + 1);
        }
        const source =
          file === "-"
            ? Readable.from(stdinChunks(ctx))
            : (await import("node:fs")).createReadStream(file, { highWaterMark: 1 << 20 });
        let total: number | undefined;
        if (file !== "-") total = (await stat(file)).size;
        const { Content } = await import("@berth/api/services/content/v1");
        const { withDirectWriters } = await import("./direct-writer.js");
        const store = await withDirectWriters(await contentStore(ctx), ctx.client(Content), () => ctx.callOptions());
        const leases = await leasesClient(ctx);
        const { lease } = await leases.create(
          { id: randomLeaseId(), labels: expireLabel(24 * 3600 * 1000) },
          ctx.callOptions(),
        );
        const leaseId = lease?.id ?? "";
        const tty = opts.progress && !ctx.options.json ? ctx.out.stderrTty : undefined;
        let blobs = 0;
        let bytes = 0;
        const onBlob = (b: { size: number }) => {
          blobs++;
          bytes += b.size;
          tty?.write(
            `\rimporting: ${blobs} blobs, ${formatBytes(bytes)}${total ? ` (archive ${formatBytes(total)})` : ""}`,
          );
        };
        try {
          const result = await importImages({ ...libCtx(ctx), lease: leaseId }, store, source, {
            onBlob,
            ...(opts.baseName ? { baseName: opts.baseName } : {}),
            ...(opts.indexName ? { indexName: opts.indexName } : {}),
            ...(opts.digests ? { digests: true } : {}),
            ...(opts.skipDigestForNamed ? { skipDigestForNamed: true } : {}),
            ...(opts.allPlatforms ? { allPlatforms: true } : {}),
            ...(opts.platform ? { platform: platforms.only(platforms.parse(opts.platform)) } : {}),
            ...(Object.keys(labels).length > 0 ? { labels } : {}),
          });
          if (tty) tty.write("\n");
          const images = await registerImages(
            ctx,
            result.images.map((i) => ({ name: i.name, target: i.target, ...(i.labels ? { labels: i.labels } : {}) })),
          );
          const unpacked = opts.unpack
            ? await (await import("./import-unpack.js")).unpackImported(ctx, leaseId, store, result.images, {
                snapshotter: opts.snapshotter,
                ...(opts.platform ? { platform: opts.platform } : {}),
                print: !ctx.options.json,
              })
            : undefined;
          if (ctx.options.json) {
            writeJson(ctx.out, {
              format: result.format,
              images: images.map(imageJson),
              ...(unpacked ? { unpacked } : {}),
            });
          } else ctx.out.stdout(images.map((i) => `${i.name}\n`).join(""));
        } finally {
          source.destroy();
          try {
            await leases.delete({ id: leaseId }, ctx.callOptions());
          } catch {
            // as ctr's deferred done(): a lease left behind expires by its label
          }
        }
      }),
    );
}

async function* stdinChunks(ctx: CommandContext): AsyncGenerator<Uint8Array> {
  const input = ctx.stdin();
  try {
    for (;;) {
      const chunk = await input.read(1 << 20);
      if (chunk.byteLength === 0) return;
      yield Buffer.from(chunk);
    }
  } finally {
    await input.close();
  }
}

interface ExportFlags {
  platform: string[];
  allPlatforms?: boolean;
  skipManifestJson?: boolean;
  skipNonDistributable?: boolean;
}

function exportCommand(run: RunCommand): Command {
  return new Command("export")
    .description('export images as an OCI image layout archive ("-" writes standard output)')
    .argument("<out>", "the archive to write")
    .argument("<images...>", "image names")
    .addOption(
      new Option("--platform <platform>", "export content for this platform (repeatable; default: the host's)")
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option("--all-platforms", "export content for all platforms")
    .option("--skip-manifest-json", "do not add Docker's manifest.json")
    .option("--skip-non-distributable", "leave out non-distributable layers")
    .action(async (outPath: string, names: string[], opts: ExportFlags, command: Command) =>
      run(command, async (ctx) => {
        const { exportArchive } = await import("@berth/images/archive");
        const platforms = await import("@berth/images/platforms");
        const client = await imagesClient(ctx);
        const images = [];
        for (const name of names) {
          const { image } = await client.get({ name }, ctx.callOptions());
          if (image === undefined) throw new CliError(`image ${JSON.stringify(name)}: not found`);
          images.push({ name: image.name, target: targetOf(image) });
        }
        const platform =
          opts.platform.length > 0
            ? platforms.ordered(...opts.platform.map((p) => platforms.parse(p)))
            : platforms.defaultStrict();
        const store = await contentStore(ctx);
        const out: Writable = outPath === "-" ? process.stdout : createWriteStream(outPath);
        try {
          await exportArchive(libCtx(ctx), store, images, out, {
            platform,
            ...(opts.allPlatforms ? { allPlatforms: true } : {}),
            ...(opts.skipManifestJson ? { skipDockerManifest: true } : {}),
            ...(opts.skipNonDistributable ? { skipNonDistributable: true } : {}),
          });
        } finally {
          if (out !== process.stdout) {
            out.end();
            await finished(out).catch(() => {});
          }
        }
      }),
    );
}

function removeCommand(run: RunCommand): Command {
  return new Command("delete")
    .aliases(["del", "remove", "rm"])
    .description("remove images by name; each removed name is printed")
    .argument("<names...>", "image names")
    .option("--sync", "wait for the garbage collection that follows each removal")
    .action(async (names: string[], opts: { sync?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const client = await imagesClient(ctx);
        let failed = false;
        for (const name of names) {
          try {
            await client.delete({ name, sync: opts.sync === true }, ctx.callOptions());
          } catch (err) {
            const typed = fromConnectError(err);
            if (isUnavailable(typed)) throw err;
            if (isNotFound(typed)) {
              // ctr: a warning, not a failure
              ctx.out.stderr(`berth: ${name}: image not found\n`);
            } else {
              failed = true;
              ctx.out.stderr(`berth: unable to delete ${name}: ${errorMessage(err, ctx.options.address)}\n`);
            }
            continue;
          }
          ctx.out.stdout(`${name}\n`);
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

function tagCommand(run: RunCommand): Command {
  return new Command("tag")
    .description("give an image more names (new images with the same target)")
    .argument("<source>", "the existing image")
    .argument("<targets...>", "the new names")
    .option("--force", "replace an existing image with a target name")
    .action(async (source: string, targets: string[], opts: { force?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const client = await imagesClient(ctx);
        const { image } = await client.get({ name: source }, ctx.callOptions());
        if (image === undefined) throw new CliError(`image ${JSON.stringify(source)}: not found`);
        for (const name of targets) {
          const created = { name, labels: {}, ...(image.target ? { target: image.target } : {}) };
          try {
            await client.create({ image: created }, ctx.callOptions());
          } catch (err) {
            if (!opts.force || !isAlreadyExists(fromConnectError(err))) throw err;
            await client.delete({ name }, ctx.callOptions());
            await client.create({ image: created }, ctx.callOptions());
          }
          ctx.out.stdout(`${name}\n`);
        }
      }),
    );
}

function labelCommand(run: RunCommand): Command {
  return new Command("label")
    .description("add, change or remove labels of an image; an empty value removes the label")
    .argument("<name>", "the image")
    .argument("[labels...]", "labels as key=value (key= removes)")
    .action(async (name: string, labelArgs: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const labels: Record<string, string> = {};
        for (const arg of labelArgs) {
          const i = arg.indexOf("=");
          labels[i < 0 ? arg : arg.slice(0, i)] = i < 0 ? "" : arg.slice(i + 1);
        }
        const client = await imagesClient(ctx);
        const paths = Object.keys(labels).map((k) => `labels.${k}`);
        const res =
          paths.length === 0
            ? await client.get({ name }, ctx.callOptions())
            : await client.update({ image: { name, labels }, updateMask: { paths } }, ctx.callOptions());
        const result = res.image?.labels ?? {};
        if (ctx.options.json) writeJson(ctx.out, { name, labels: sortedLabels(result) });
        else ctx.out.stdout(`${labelColumn(result) === "-" ? "" : labelColumn(result)}\n`);
      }),
    );
}

export interface CheckRow {
  readonly name: string;
  readonly mediaType: string;
  readonly digest: string;
  readonly status: string;
  readonly presentSize: number;
  readonly requiredSize: number;
}

/** `REF TYPE DIGEST STATUS SIZE UNPACKED` as `ctr images check` prints it (berth does not unpack: false). */
export function formatCheckTable(rows: readonly CheckRow[]): string {
  const w = new TabWriter(IMAGE_TABLE);
  w.write("REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tUNPACKED\t\n");
  for (const r of rows) {
    w.write(
      `${r.name}\t${r.mediaType}\t${r.digest}\t${r.status}\t${progressBytes(r.presentSize)}/${progressBytes(r.requiredSize)}\tfalse\t\n`,
    );
  }
  return w.flush();
}

function checkCommand(run: RunCommand): Command {
  return new Command("check")
    .description("check that an image's content for the host platform is all present")
    .argument("[filters...]", "filters, as for ls")
    .option("-q, --quiet", "print only the names of incomplete images")
    .action(async (filters: string[], opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const { check } = await import("@berth/images");
        const platforms = await import("@berth/images/platforms");
        const client = await imagesClient(ctx);
        const { images } = await client.list({ filters }, ctx.callOptions());
        const store = await contentStore(ctx);
        const rows: CheckRow[] = [];
        let failed = false;
        for (const image of images) {
          const target = targetOf(image);
          let status: string;
          let presentSize = 0;
          let requiredSize = 0;
          try {
            const r = await check(libCtx(ctx), store, target, platforms.defaultMatcher());
            status = r.missing.length > 0 ? "incomplete" : "complete";
            presentSize = r.present.reduce((n, d) => n + d.size, 0);
            requiredSize = r.required.reduce((n, d) => n + d.size, 0);
            status = r.available
              ? `${status} (${r.present.length}/${r.required.length})`
              : `unavailable (${r.present.length}/?)`;
          } catch (err) {
            failed = true;
            status = "error";
            ctx.out.stderr(`berth: unable to check ${image.name}: ${errorMessage(err)}\n`);
          }
          rows.push({
            name: image.name,
            mediaType: target.mediaType,
            digest: target.digest,
            status,
            presentSize,
            requiredSize,
          });
        }
        if (ctx.options.json) {
          writeJson(
            ctx.out,
            rows.map((r) => ({
              name: r.name,
              media_type: r.mediaType,
              digest: r.digest,
              status: r.status,
              present_size: r.presentSize,
              required_size: r.requiredSize,
            })),
          );
        } else if (opts.quiet) {
          ctx.out.stdout(
            rows
              .filter((r) => !r.status.startsWith("complete"))
              .map((r) => `${r.name}\n`)
              .join(""),
          );
        } else {
          ctx.out.stdout(formatCheckTable(rows));
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

function inspectCommand(run: RunCommand): Command {
  return new Command("inspect")
    .description("print an image record with its platforms, manifests, configs and layers as JSON")
    .argument("<name>", "the image")
    .action(async (name: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const lib = await import("@berth/images");
        const platforms = await import("@berth/images/platforms");
        const client = await imagesClient(ctx);
        const { image } = await client.get({ name }, ctx.callOptions());
        if (image === undefined) throw new CliError(`image ${JSON.stringify(name)}: not found`);
        const store = await contentStore(ctx);
        const c = libCtx(ctx);
        const target = targetOf(image);
        const row = await describeImage(ctx, store, image);
        let manifest: unknown = null;
        try {
          const resolved = await lib.resolveManifest(c, store, target, platforms.defaultMatcher());
          const config = await lib.readConfig(c, store, resolved.manifest.config);
          manifest = {
            manifest: resolved.manifest,
            config: resolved.manifest.config,
            platform: config.os
              ? platforms.format({
                  os: config.os,
                  architecture: config.architecture ?? "",
                  ...(config.variant ? { variant: config.variant } : {}),
                })
              : null,
            diff_ids: config.rootfs?.diff_ids ?? [],
            chain_ids: lib.chainIDs(config.rootfs?.diff_ids ?? []),
          };
        } catch (err) {
          ctx.out.stderr(`berth: cannot resolve the host platform's manifest of ${name}: ${errorMessage(err)}\n`);
        }
        writeJson(ctx.out, {
          ...imageJson(image),
          size: row.size ?? null,
          platforms: row.platforms,
          host_platform: platforms.defaultString(),
          resolved: manifest,
        });
      }),
    );
}

export function imagesCommand(run: RunCommand): Command {
  return new Command("images")
    .alias("image")
    .alias("i")
    .description("manage images")
    .addCommand(checkCommand(run))
    .addCommand(exportCommand(run))
    .addCommand(fetchCommand(run))
    .addCommand(importCommand(run))
    .addCommand(inspectCommand(run))
    .addCommand(labelCommand(run))
    .addCommand(imagesMountCommand(run))
    .addCommand(imagesUnmountCommand(run))
    .addCommand(listCommand(run))
    .addCommand(pullCommand(run))
    .addCommand(pushCommand(run))
    .addCommand(removeCommand(run))
    .addCommand(tagCommand(run));
}
