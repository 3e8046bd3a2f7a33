/** `berth version`: client and server versions (ctr: Version.Version, then Introspection.Server). */
import { Command } from "commander";
import type { ClientInfo } from "../../context.js";
import { writeJson } from "../../output.js";
import type { RunCommand } from "../../program.js";

export interface ServerInfo {
  readonly version: string;
  readonly revision: string;
  readonly uuid: string;
}

/** The text ctr prints (`fmt.Println("  Version: ", v)` puts two spaces after "Version:"). */
export function formatClientVersion(client: ClientInfo): string {
  return [
    "Client:",
    `  Version:  ${client.version}`,
    `  Revision: ${client.revision}`,
    `  Node version: ${client.nodeVersion}`,
    "",
    "",
  ].join("\n");
}

export function formatServerVersion(server: ServerInfo): string {
  return [
    "Server:",
    `  Version:  ${server.version}`,
    `  Revision: ${server.revision}`,
    `  UUID: ${server.uuid}`,
    "",
  ].join("\n");
}

export function versionCommand(run: RunCommand): Command {
  return new Command("version")
    .description("print the client and server versions")
    .action(async (_opts: unknown, command: Command) =>
      run(command, async (ctx) => {
        const client = ctx.clientInfo;
        if (!ctx.options.json) ctx.out.stdout(formatClientVersion(client));
        const [{ Version }, { Introspection }] = await Promise.all([
          import("@berth/api/services/version/v1"),
          import("@berth/api/services/introspection/v1"),
        ]);
        const v = await ctx.client(Version).version({}, ctx.callOptions());
        const s = await ctx.client(Introspection).server({}, ctx.callOptions());
        const server: ServerInfo = { version: v.version, revision: v.revision, uuid: s.uuid };
        if (ctx.options.json) {
          writeJson(ctx.out, {
            client: { version: client.version, revision: client.revision, node_version: client.nodeVersion },
            server,
          });
          return;
        }
        ctx.out.stdout(formatServerVersion(server));
        if (server.version !== client.version) ctx.out.stderr("WARNING: version mismatch\n");
      }),
    );
}
