/** `berth run [flags] IMAGE ID [CMD…]` (ctr run): create a container from an image, run it, exit with its status. */
import { writeFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import { type CommandContext, ExitError } from "../../context.js";
import { CliError } from "../../errors.js";
import { PositionalCommand } from "../../positional-command.js";
import type { RunCommand } from "../../program.js";
import { DEFAULT_FIFO_DIR } from "../../task-io.js";

const collect = (value: string, previous: string[]) => [...previous, value];

/** The flags `run` and `containers create` share (ctr's ContainerFlags). */
export interface ContainerFlags {
  snapshotter?: string;
  runtime: string;
  runcBinary?: string;
  env: string[];
  mount: string[];
  label: string[];
  netHost?: boolean;
  tty?: boolean;
  cwd?: string;
  readOnly?: boolean;
  privileged?: boolean;
  memoryLimit?: string;
  cpus?: string;
  seccomp?: boolean;
  hostname?: string;
  user?: string;
  allowNewPrivs?: boolean;
}

export function addContainerFlags(command: Command): Command {
  return command
    .addOption(new Option("--snapshotter <name>", "snapshotter name (env CONTAINERD_SNAPSHOTTER; default overlayfs)"))
    .addOption(new Option("--runtime <name>", "runtime name").default("io.containerd.runc.v2"))
    .option("--runc-binary <path>", "the runc (or crun) binary the runtime should run")
    .option("--env <KEY=value>", "add an environment variable (repeatable)", collect, [])
    .option(
      "--mount <spec>",
      "add a mount, e.g. type=bind,src=/tmp,dst=/host,options=rbind:ro (repeatable)",
      collect,
      [],
    )
    .option("--label <key=value>", "add a container label (repeatable)", collect, [])
    .option("--net-host", "use the host's network (no network namespace)")
    .option("-t, --tty", "allocate a TTY for the container")
    .option("--cwd <dir>", "working directory of the process")
    .option("--read-only", "mount the container's root filesystem read-only")
    .option("--privileged", "run a privileged container")
    .option("--memory-limit <bytes>", "memory limit in bytes")
    .option("--cpus <n>", "CPUs the container may use (CFS quota), e.g. 0.5")
    .option("--seccomp", "apply the default seccomp profile")
    .option("--hostname <name>", "the container's host name")
    .option("--user <user>", "user[:group] to run as, resolved in the container's /etc/passwd and /etc/group")
    .option("--allow-new-privs", "turn off the spec's noNewPrivileges");
}

function parsePositiveNumber(raw: string, flag: string): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`invalid ${flag} ${JSON.stringify(raw)}`);
  return n;
}

/** Creates the container described by IMAGE ID [CMD…] and the flags. */
export async function createFromFlags(
  ctx: CommandContext,
  image: string,
  id: string,
  args: string[],
  flags: ContainerFlags,
) {
  const lib = await import("./container.js");
  const { validateIdentifier } = await import("@berth/identifiers");
  // before any snapshot exists: a bad id would otherwise fail only at Containers.Create
  validateIdentifier(id);
  const mounts = flags.mount.map(lib.parseMountFlag);
  const memory = flags.memoryLimit === undefined ? undefined : parsePositiveNumber(flags.memoryLimit, "--memory-limit");
  const cpus = flags.cpus === undefined ? undefined : parsePositiveNumber(flags.cpus, "--cpus");
  return lib.createContainerFromImage(ctx, {
    id,
    image,
    args,
    snapshotter: lib.snapshotterName(flags.snapshotter, process.env),
    runtime: flags.runtime,
    ...(flags.runcBinary ? { runcBinary: flags.runcBinary } : {}),
    labels: lib.parseLabels(flags.label),
    preImageOpts: (spec) => [spec.withEnv(flags.env), spec.withMounts(mounts)],
    specOpts: (spec) => [
      ...(flags.readOnly ? [spec.withRootFSReadonly] : []),
      ...(flags.cwd ? [spec.withProcessCwd(flags.cwd)] : []),
      ...(flags.tty ? [spec.withTTY] : []),
      ...(flags.privileged ? [spec.withPrivileged] : []),
      ...(flags.netHost ? [spec.withHostNetwork()] : []),
      ...(flags.hostname ? [spec.withHostname(flags.hostname)] : []),
      ...(flags.user ? [spec.withUser(flags.user)] : []),
      ...(flags.seccomp ? [spec.withDefaultSeccomp()] : []),
      ...(cpus !== undefined ? [spec.withCPUs(cpus)] : []),
      ...(flags.allowNewPrivs ? [spec.withNewPrivileges] : []),
      ...(memory !== undefined ? [spec.withMemoryLimit(memory)] : []),
    ],
  });
}

interface RunFlags extends ContainerFlags {
  rm?: boolean;
  detach?: boolean;
  fifoDir: string;
  pidFile?: string;
}

export function runCommand(run: RunCommand): Command {
  const command = new PositionalCommand("run")
    .description("run a container from an image; the exit status is the container's")
    .argument("<image>", "image name")
    .argument("<id>", "container id")
    .argument("[cmd...]", "command and arguments (default: the image's entrypoint and cmd)")
    .option("--rm", "remove the container, its task and snapshot once it has exited")
    .option("-d, --detach", "start the container and return (its output is discarded)")
    .addOption(new Option("--fifo-dir <dir>", "directory for the IO fifos").default(DEFAULT_FIFO_DIR))
    .option("--pid-file <path>", "write the task's pid to this file");
  addContainerFlags(command);
  return command.action(async (image: string, id: string, cmd: string[], flags: RunFlags, self: Command) =>
    run(self, async (ctx) => {
      if (flags.rm && flags.detach) throw new CliError("flags --detach and --rm cannot be specified together");
      const { runForeground, deleteTask } = await import("./process.js");
      const { container, mounts } = await createFromFlags(ctx, image, id, cmd, flags);
      const { Tasks } = await import("@berth/api/services/tasks/v1");
      const { Snapshots } = await import("@berth/api/services/snapshots/v1");
      const { Containers } = await import("@berth/api/services/containers/v1");
      const tasks = ctx.client(Tasks);
      let code = 0;
      let taskDeleted = false;
      try {
        code = await runForeground(ctx, {
          containerId: id,
          execId: "",
          terminal: flags.tty === true,
          detach: flags.detach === true,
          fifoDir: flags.fifoDir,
          create: async (stdio) => {
            await tasks.create({ containerId: id, rootfs: mounts, ...stdio }, ctx.callOptions());
          },
          onStarted: async (pid) => {
            if (flags.pidFile) await writeFile(flags.pidFile, `${pid}`);
          },
        });
        if (!flags.detach) {
          await deleteTask(ctx, id);
          taskDeleted = true;
        }
      } finally {
        if (flags.rm) {
          if (!taskDeleted) await deleteTask(ctx, id).catch(() => undefined);
          await ctx
            .client(Snapshots)
            .remove({ snapshotter: container.snapshotter, key: container.snapshotKey }, ctx.callOptions())
            .catch(() => undefined);
          await ctx.client(Containers).delete({ id }, ctx.callOptions());
        }
      }
      if (code !== 0) throw new ExitError(code);
    }),
  );
}
