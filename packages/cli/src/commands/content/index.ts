/** `berth content ls|get|ingest|label|rm|active` (ctr: Content.List / Info + Read / Write / Update / Delete / ListStatuses). */
import { isNotFound, isUnavailable } from "@berth/errdefs";
import { fromConnectError } from "@berth/errdefs/connect";
import { LEASE_HEADER } from "@berth/identifiers";
import type { Info, Status } from "@berth/api/services/content/v1";
import { Command, Option } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { digestProblem, parseDigest } from "../../digest.js";
import { CliError, errorMessage } from "../../errors.js";
import { goHumanDuration, goHumanSize, goRfc3339Nano, timeMillis } from "../../go-format.js";
import { type ByteSource, FileSource } from "../../input.js";
import { compareStrings, TabWriter, writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";
import { expireLabel, leasesClient, randomLeaseId } from "../leases/index.js";
import { parseLabelArgs } from "../namespaces/index.js";
import type { IngestProgress } from "./ingest.js";
import { terminalProgress } from "./progress.js";

/** Loaded on use, so that other commands skip decoding this file's descriptors. */
async function contentClient(ctx: CommandContext) {
  const { Content } = await import("@berth/api/services/content/v1");
  return ctx.client(Content);
}

/** ctr's content tables: `tabwriter.NewWriter(os.Stdout, 1, 8, 1, '\t', 0)`. */
const CONTENT_TABLE = { minWidth: 1, tabWidth: 8, padding: 1, padChar: "\t" } as const;

function sortedLabels(labels: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).sort((a, b) => compareStrings(a[0], b[0])));
}

/** `k=v` pairs, comma-joined in key order (ctr prints Go's random map order). */
function joinLabels(labels: Readonly<Record<string, string>>): string {
  return Object.entries(sortedLabels(labels))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** `DIGEST SIZE AGE LABELS` as `ctr content ls` prints it (the last column is not tab-terminated). */
export function formatContentTable(infos: readonly Info[], now: number = Date.now()): string {
  const w = new TabWriter(CONTENT_TABLE);
  w.write("DIGEST\tSIZE\tAGE\tLABELS\n");
  for (const info of infos) {
    const labels = joinLabels(info.labels);
    w.write(
      `${info.digest}\t${goHumanSize(Number(info.size))}\t${goHumanDuration(now - timeMillis(info.createdAt))}\t${labels === "" ? "-" : labels}\n`,
    );
  }
  return w.flush();
}

/** `REF SIZE AGE` as `ctr content active` prints it: SIZE is the ingest's offset, AGE since it started. */
export function formatActiveTable(statuses: readonly Status[], now: number = Date.now()): string {
  const w = new TabWriter(CONTENT_TABLE);
  w.row("REF", "SIZE", "AGE");
  for (const s of statuses) {
    w.row(s.ref, goHumanSize(Number(s.offset)), goHumanDuration(now - timeMillis(s.startedAt)));
  }
  return w.flush();
}

function infoJson(info: Info) {
  return {
    digest: info.digest,
    size: Number(info.size),
    created_at: goRfc3339Nano(info.createdAt),
    updated_at: goRfc3339Nano(info.updatedAt),
    labels: sortedLabels(info.labels),
  };
}

function statusJson(s: Status) {
  return {
    ref: s.ref,
    offset: Number(s.offset),
    total: Number(s.total),
    expected: s.expected,
    started_at: goRfc3339Nano(s.startedAt),
    updated_at: goRfc3339Nano(s.updatedAt),
  };
}

function listCommand(run: RunCommand): Command {
  return new Command("list")
    .alias("ls")
    .description("list all blobs in the store")
    .argument("[filters...]", 'filters, e.g. "size>1000" or labels.containerd.io/gc.root')
    .option("-q, --quiet", "print only the blob digests")
    .action(async (filters: string[], opts: { quiet?: boolean }, command: Command) =>
      run(command, async (ctx) => {
        const client = await contentClient(ctx);
        const infos: Info[] = [];
        for await (const res of client.list({ filters }, ctx.callOptions())) infos.push(...res.info);
        if (ctx.options.json) writeJson(ctx.out, infos.map(infoJson));
        else if (opts.quiet) ctx.out.stdout(infos.map((i) => `${i.digest}\n`).join(""));
        else ctx.out.stdout(formatContentTable(infos));
      }),
    );
}

function getCommand(run: RunCommand): Command {
  return new Command("get")
    .description("write the data of a blob to standard output")
    .argument("<digest>", "the blob's digest")
    .action(async (digest: string, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const dgst = parseDigest(digest);
        const client = await contentClient(ctx);
        const { info } = await client.info({ digest: dgst }, ctx.callOptions());
        const size = Number(info?.size ?? 0n);
        // one Read stream for the whole blob (ctr opens one per 32 KiB)
        let offset = 0;
        if (size > 0) {
          for await (const res of client.read({ digest: dgst, offset: 0n, size: 0n }, ctx.callOptions())) {
            if (Number(res.offset) !== offset) {
              throw new CliError(`read ${dgst}: unexpected offset ${res.offset}, expected ${offset}`);
            }
            if (res.data.length === 0) continue;
            offset += res.data.length;
            await ctx.out.stdoutBytes(res.data);
          }
        }
        if (offset !== size) throw new CliError(`read ${dgst}: unexpected EOF after ${offset} of ${size} bytes`);
      }),
    );
}

interface IngestFlags {
  label: string[];
  expectedDigest?: string;
  expectedSize?: string;
  file?: string;
  progress: boolean;
}

function ingestCommand(run: RunCommand): Command {
  return new Command("ingest")
    .description("accept content into the store, from standard input or --file, under a temporary lease")
    .argument("<ref>", "the ingest's reference (resumable: an unfinished ingest with this ref continues)")
    .addOption(
      new Option("--label <key=value>", "label the committed blob (repeatable)")
        .argParser((v: string, prev: string[]) => [...prev, v])
        .default([]),
    )
    .option("--expected-digest <digest>", "verify the content against this digest")
    .option("--expected-size <bytes>", "verify the content's size")
    .option("--file <path>", "read this file instead of standard input")
    .option("--no-progress", "never show a progress bar")
    .action(async (ref: string, opts: IngestFlags, command: Command) =>
      run(command, async (ctx) => {
        const expectedDigest = opts.expectedDigest ?? "";
        if (expectedDigest !== "") parseDigest(expectedDigest);
        const expectedSize = opts.expectedSize === undefined ? 0 : Number(opts.expectedSize);
        if (!Number.isSafeInteger(expectedSize) || expectedSize < 0) {
          throw new CliError(`invalid value ${JSON.stringify(opts.expectedSize)} for flag --expected-size`);
        }
        if (ref === "") throw new CliError("must specify a transaction reference");

        const source: ByteSource = opts.file !== undefined ? await FileSource.open(opts.file) : ctx.stdin();
        const client = await contentClient(ctx);
        const leases = await leasesClient(ctx);
        // a temporary lease, as containerd's client WithLease: collected 24 h later if never deleted
        const { lease } = await leases.create(
          { id: randomLeaseId(), labels: expireLabel(24 * 3600 * 1000) },
          ctx.callOptions(),
        );
        const leaseId = lease?.id ?? "";
        let progress: IngestProgress | undefined;
        const size = expectedSize || source.size;
        if (
          opts.progress &&
          !ctx.options.json &&
          ctx.out.stderrTty !== undefined &&
          (size === undefined || size >= 1 << 20)
        ) {
          progress = await terminalProgress(ctx.out.stderrTty, ref);
        }
        const labels = parseLabelArgs(opts.label);
        try {
          // imported on use: the ingest path brings the direct HTTP/2 writer
          const { ingest } = await import("./ingest.js");
          const result = await ingest(client, {
            ref,
            expectedDigest,
            expectedSize,
            labels,
            source,
            progress,
            callOptions: () => ({ ...ctx.callOptions(), headers: { [LEASE_HEADER]: leaseId } }),
          });
          // The blob was already there (ctr stops here, silently): the labels asked for are applied anyway, so
          // `--label containerd.io/gc.root=…` always leaves the blob rooted.
          if (result.alreadyExists && result.digest !== undefined && Object.keys(labels).length > 0) {
            await client.update(
              {
                info: { digest: result.digest, labels },
                updateMask: { paths: Object.keys(labels).map((k) => `labels.${k}`) },
              },
              ctx.callOptions(),
            );
          }
        } finally {
          await source.close();
          try {
            await leases.delete({ id: leaseId }, ctx.callOptions());
          } catch {
            // as ctr's deferred done(): a lease left behind expires by its label
          }
        }
      }),
    );
}

function labelCommand(run: RunCommand): Command {
  return new Command("label")
    .description("add, change or remove labels of a blob; an empty value removes the label")
    .argument("<digest>", "the blob's digest")
    .argument("[labels...]", "labels as key=value (key= removes)")
    .action(async (digest: string, labelArgs: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const labels = parseLabelArgs(labelArgs);
        const dgst = parseDigest(digest);
        const client = await contentClient(ctx);
        const paths = Object.keys(labels).map((k) => `labels.${k}`);
        const set = Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
        // one Update with every path; nothing to change: just Info
        const res =
          paths.length === 0
            ? await client.info({ digest: dgst }, ctx.callOptions())
            : await client.update({ info: { digest: dgst, labels: set }, updateMask: { paths } }, ctx.callOptions());
        const result = res.info?.labels ?? {};
        if (ctx.options.json) writeJson(ctx.out, { digest: dgst, labels: sortedLabels(result) });
        else ctx.out.stdout(`${joinLabels(result)}\n`);
      }),
    );
}

function removeCommand(run: RunCommand): Command {
  return new Command("delete")
    .aliases(["del", "remove", "rm"])
    .description("delete blobs from this namespace; each deleted (or already missing) digest is printed")
    .argument("<digests...>", "blob digests")
    .action(async (digests: string[], _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = await contentClient(ctx);
        let failed = false;
        const fail = (digest: string, message: string) => {
          failed = true;
          ctx.out.stderr(`berth: could not delete ${digest}: ${message}\n`);
        };
        for (const digest of digests) {
          const problem = digestProblem(digest);
          if (problem !== undefined) {
            fail(digest, problem);
            continue;
          }
          try {
            await client.delete({ digest }, ctx.callOptions());
          } catch (err) {
            const typed = fromConnectError(err);
            if (isUnavailable(typed)) throw err; // no daemon: stop here
            // ctr: a missing blob is neither an error nor printed
            if (!isNotFound(typed)) fail(digest, errorMessage(err, ctx.options.address));
            continue;
          }
          ctx.out.stdout(`${digest}\n`);
        }
        if (failed) throw new ExitError(1);
      }),
    );
}

function activeCommand(run: RunCommand): Command {
  return new Command("active")
    .description("display the ingests in progress")
    .argument("[filter]", 'a filter on the ingests, e.g. ref==layer-1 or "ref~=^layer"')
    .action(async (filter: string | undefined, _opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = await contentClient(ctx);
        const { statuses } = await client.listStatuses({ filters: [filter ?? ""] }, ctx.callOptions());
        if (ctx.options.json) writeJson(ctx.out, statuses.map(statusJson));
        else ctx.out.stdout(formatActiveTable(statuses));
      }),
    );
}

export function contentCommand(run: RunCommand): Command {
  return new Command("content")
    .description("manage content")
    .addCommand(activeCommand(run))
    .addCommand(removeCommand(run))
    .addCommand(getCommand(run))
    .addCommand(ingestCommand(run))
    .addCommand(listCommand(run))
    .addCommand(labelCommand(run));
}
