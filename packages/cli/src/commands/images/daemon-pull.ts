/**
 * `berth images pull` through berthd's Pull service (berth.services.pull.v1): the daemon talks to the registry
 * and unpacks; the CLI only sends the request (with the credentials it resolved for the ref's host and its
 * mirrors) and renders the streamed progress. A daemon without the service (containerd) answers Unimplemented
 * before any message, and the caller falls back to the client-side pull.
 */
import type { PullRequest, RegistryCredentials } from "@berth/api/services/pull/v1";
import type { PullProgressEvent, PullState } from "@berth/images/pull";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CommandContext } from "../../context.js";
import { CliError } from "../../errors.js";
import type { PullFlags } from "./pull.js";

export interface DaemonPullResult {
  readonly name: string;
  readonly target: { mediaType: string; digest: string };
  readonly fetched: number;
  readonly existing: number;
  readonly unpacked?: { manifest: string; chainID: string; applied: number; snapshotter: string };
}

/**
 * The credentials to send: `--user` (for every host the pull may contact) or the docker config.json's, for the
 * ref's registry and the mirrors of its hosts configuration. Secrets go only into the request.
 */
export async function pullCredentials(ref: string, flags: PullFlags): Promise<RegistryCredentials[]> {
  const remotes = await import("@berth/images/remotes");
  let credentials = remotes.dockerConfigCredentials();
  if (flags.user !== undefined) {
    if (!flags.user.includes(":")) throw new CliError("--user: give the password as user:password");
    credentials = remotes.staticCredentials(flags.user);
  }
  const { domain } = remotes.parseReference(ref);
  const hosts = new Set([domain]);
  try {
    const configured = await remotes.configureHosts(domain, {
      ...(flags.plainHttp ? { plainHttp: true } : {}),
      ...(flags.hostsDir ? { hostsDir: flags.hostsDir } : {}),
    });
    for (const h of configured) hosts.add(h.host);
  } catch {
    // the hosts directory is read by the daemon, which reports a bad one; here it only names mirrors
  }
  const out: RegistryCredentials[] = [];
  for (const host of hosts) {
    const c = await credentials(host);
    if (c !== undefined) out.push({ $typeName: "berth.services.pull.v1.RegistryCredentials", host, ...c });
  }
  return out;
}

const STATE_NAMES: Record<number, PullState> = {
  1: "resolved",
  2: "waiting",
  3: "downloading",
  4: "exists",
  5: "done",
};

/**
 * Runs the pull in the daemon. Resolves undefined when the daemon has no Pull service (Unimplemented before
 * any progress): the caller then pulls client-side.
 */
export async function daemonPull(
  ctx: CommandContext,
  ref: string,
  flags: PullFlags,
  onProgress: (e: PullProgressEvent) => void,
): Promise<DaemonPullResult | undefined> {
  const { Pull } = await import("@berth/api/services/pull/v1");
  const concurrency = flags.maxConcurrentDownloads ? Number(flags.maxConcurrentDownloads) : 3;
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new CliError("--max-concurrent-downloads: not a positive integer");
  if (flags.platform.length > 1) return undefined; // several platforms: only the client-side pull takes a list
  const request: MessageInitShape<typeof import("@berth/api/services/pull/v1").PullRequestSchema> = {
    reference: ref,
    platform: flags.platform[0] ?? "",
    allPlatforms: flags.allPlatforms === true,
    unpack: flags.unpack !== false,
    snapshotter: flags.snapshotter ?? "overlayfs",
    plainHttp: flags.plainHttp === true,
    skipVerify: flags.skipVerify === true,
    hostsDir: flags.hostsDir ?? "",
    // the daemon refuses more than 32 at once; the client-side pull took any number
    maxConcurrentDownloads: Math.min(concurrency, 32),
    credentials: await pullCredentials(ref, flags),
  } satisfies Partial<PullRequest>;
  const client = ctx.client(Pull);
  let result: DaemonPullResult | undefined;
  let any = false;
  try {
    for await (const msg of client.pull(request, ctx.callOptions())) {
      any = true;
      for (const b of msg.blobs) {
        const state = STATE_NAMES[b.state];
        if (state === undefined) continue;
        onProgress({
          desc: { mediaType: b.mediaType, digest: b.digest as `${string}:${string}`, size: Number(b.total) },
          state,
          offset: Number(b.offset),
        });
      }
      if (msg.image !== undefined) {
        const t = msg.image.target;
        result = {
          name: msg.image.name,
          target: { mediaType: t?.mediaType ?? "", digest: t?.digest ?? "" },
          fetched: msg.image.fetched,
          existing: msg.image.existing,
          ...(msg.unpack
            ? {
                unpacked: {
                  manifest: msg.unpack.manifest,
                  chainID: msg.unpack.chainId,
                  applied: msg.unpack.layersApplied,
                  snapshotter: msg.unpack.snapshotter,
                },
              }
            : {}),
        };
      }
    }
  } catch (err) {
    if (!any && ConnectError.from(err).code === Code.Unimplemented) return undefined;
    throw err;
  }
  if (result === undefined) throw new CliError("pull: the daemon ended the call without a result");
  return result;
}
