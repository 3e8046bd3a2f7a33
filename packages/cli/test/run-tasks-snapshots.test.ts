import { Containers } from "@berth/api/services/containers/v1";
import { Snapshots } from "@berth/api/services/snapshots/v1";
import { Tasks } from "@berth/api/services/tasks/v1";
import { Status } from "@berth/api/types/task";
import { Code, type ConnectRouter, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { containerInfoJson, formatContainerTable } from "../src/commands/containers/index.js";
import { parseLabels, parseMountFlag } from "../src/commands/run/container.js";
import { formatMountCommands, formatTree, snapshotInfoJson } from "../src/commands/snapshots/index.js";
import { namespaceInterceptor } from "../src/connection.js";
import { createBufferOutput } from "../src/output.js";
import { PositionalCommand } from "../src/positional-command.js";
import { runCli } from "../src/program.js";
import { parseSignal } from "../src/signals.js";

function harness(routes: (router: ConnectRouter) => void) {
  const out = createBufferOutput();
  return {
    out,
    run: (...argv: string[]) =>
      runCli(argv, {
        env: {},
        out,
        connect: (options) => ({
          transport: createRouterTransport(routes, {
            transport: { interceptors: [namespaceInterceptor(options.namespace)] },
          }),
          close: () => {},
        }),
      }),
  };
}

describe("options end at the first operand (ctr's flag parsing)", () => {
  const parse = (argv: string[]) => {
    let seen: { args: string[]; opts: Record<string, unknown> } | undefined;
    const program = new Command("p").option("-a, --address <a>").exitOverride();
    const run = new PositionalCommand("run")
      .argument("<image>")
      .argument("<id>")
      .argument("[cmd...]")
      .option("--rm")
      .option("--env <e>", "", (v: string, p: string[]) => [...p, v], [] as string[])
      .action((image: string, id: string, cmd: string[], opts: Record<string, unknown>) => {
        seen = { args: [image, id, ...cmd], opts };
      });
    program.addCommand(run);
    program.parse(argv, { from: "user" });
    return seen;
  };

  it("leaves the container command's flags alone", () => {
    expect(parse(["run", "--rm", "--env", "A=1", "img", "c1", "sh", "-c", "exit 3"])).toEqual({
      args: ["img", "c1", "sh", "-c", "exit 3"],
      opts: { rm: true, env: ["A=1"] },
    });
    expect(parse(["run", "img", "c1", "ls", "--rm", "-l"])).toEqual({
      args: ["img", "c1", "ls", "--rm", "-l"],
      opts: { env: [] },
    });
  });

  it("takes `--` as the end of options", () => {
    expect(parse(["run", "--rm", "--", "img", "c1", "--help"])?.args).toEqual(["img", "c1", "--help"]);
  });
});

describe("argument parsers", () => {
  it("parses ctr's --mount", () => {
    expect(parseMountFlag("type=bind,src=/a,dst=/b,options=rbind:ro")).toEqual({
      type: "bind",
      source: "/a",
      destination: "/b",
      options: ["rbind", "ro"],
    });
    expect(() => parseMountFlag("type=bind,src=/a")).toThrow(/no destination/);
    expect(() => parseMountFlag("type=bind,bogus=1,dst=/b")).toThrow(/not supported/);
  });

  it("parses labels and signals", () => {
    expect(parseLabels(["a=b", "c", "d=e=f"])).toEqual({ a: "b", c: "", d: "e=f" });
    expect(parseSignal("SIGKILL")).toBe(9);
    expect(parseSignal("term")).toBe(15);
    expect(parseSignal("9")).toBe(9);
    expect(() => parseSignal("SIGNOPE")).toThrow(/invalid signal/);
    expect(() => parseSignal("0")).toThrow(/invalid signal/);
  });
});

describe("formats", () => {
  it("prints ctr's snapshot tree, placeholders for parents not listed", () => {
    expect(
      formatTree([
        { name: "a", parent: "" },
        { name: "b", parent: "a" },
        { name: "c", parent: "b" },
        { name: "x", parent: "missing" },
      ]),
    ).toBe(" a\n  \\_ b\n    \\_ c\n missing\n  \\_ x\n");
  });

  it("prints mount commands and snapshot info as ctr", () => {
    expect(
      formatMountCommands("/mnt", [{ type: "bind", source: "/s", target: "", options: ["rbind", "ro"] } as never]),
    ).toBe("mount -t bind /s /mnt -o rbind,ro\n");
    const info = snapshotInfoJson({
      name: "k",
      parent: "",
      kind: 2,
      labels: {},
      createdAt: { seconds: 1700000000n, nanos: 5 },
      updatedAt: { seconds: 1700000000n, nanos: 5 },
    } as never);
    expect(info).toEqual({
      Kind: "Active",
      Name: "k",
      Created: "2023-11-14T22:13:20.000000005Z",
      Updated: "2023-11-14T22:13:20.000000005Z",
    });
  });

  it("prints containers as ctr's table and Go struct", () => {
    const c = {
      id: "c1",
      image: "",
      labels: {},
      runtime: {
        name: "io.containerd.runc.v2",
        options: { typeUrl: "containerd.runc.v1.Options", value: new Uint8Array() },
      },
      snapshotter: "overlayfs",
      snapshotKey: "c1",
      extensions: {},
      spec: { typeUrl: "x", value: new TextEncoder().encode('{"ociVersion":"1.0.2-dev"}') },
    } as never;
    expect(formatContainerTable([c])).toBe(
      "CONTAINER    IMAGE    RUNTIME                  \nc1           -        io.containerd.runc.v2    \n",
    );
    expect(containerInfoJson(c)).toMatchObject({
      ID: "c1",
      Labels: null,
      Runtime: { Name: "io.containerd.runc.v2", Options: { type_url: "containerd.runc.v1.Options" } },
      Extensions: null,
      Spec: { ociVersion: "1.0.2-dev" },
    });
  });
});

describe("commands over an in-memory daemon", () => {
  it("tasks ls prints TASK PID STATUS", async () => {
    const h = harness((r) =>
      r.service(Tasks, {
        list: () => ({
          tasks: [
            { id: "t1", pid: 42, status: Status.RUNNING },
            { id: "t2", pid: 0, status: Status.STOPPED },
          ],
        }),
      }),
    );
    expect(await h.run("tasks", "ls")).toBe(0);
    expect(h.out.out).toBe("TASK    PID    STATUS    \nt1      42     RUNNING\nt2      0      STOPPED\n");
  });

  it("containers label sends a field mask and prints the labels sorted", async () => {
    let mask: string[] = [];
    const h = harness((r) =>
      r.service(Containers, {
        update: (req) => {
          mask = req.updateMask?.paths ?? [];
          return { container: { id: "c1", labels: { z: "1", a: "2" } } };
        },
      }),
    );
    expect(await h.run("containers", "label", "c1", "a=2", "gone=")).toBe(0);
    expect(mask.sort()).toEqual(["labels.a", "labels.gone"]);
    expect(h.out.out).toBe("a=2,z=1\n");
  });

  it("snapshots rm of a parent reports the daemon's failed precondition", async () => {
    const h = harness((r) =>
      r.service(Snapshots, {
        remove: () => {
          throw new ConnectError("cannot remove snapshot with child", Code.FailedPrecondition);
        },
      }),
    );
    expect(await h.run("snapshots", "rm", "p")).toBe(1);
    expect(h.out.err).toBe('berth: failed to remove "p": cannot remove snapshot with child\n');
  });

  it("run refuses a bad container id before touching the daemon", async () => {
    const h = harness(() => {});
    expect(await h.run("run", "--rm", "img", "bad/id", "true")).toBe(1);
    expect(h.out.err).toMatch(/^berth: identifier "bad\/id" must match .*: invalid argument\n$/);
  });
});
