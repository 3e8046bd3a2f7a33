import { Containers } from "@berth/api/services/containers/v1";
import { Tasks } from "@berth/api/services/tasks/v1";
import { type ConnectRouter, createRouterTransport } from "@connectrpc/connect";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import type { ConnectionOptions } from "../src/connection.js";
import { namespaceInterceptor } from "../src/connection.js";
import { createBufferOutput } from "../src/output.js";
import { COMMAND_MODULES, commandModuleOf, createProgram, runCli } from "../src/program.js";

function harness(routes: (router: ConnectRouter) => void) {
  const out = createBufferOutput();
  const connections: ConnectionOptions[] = [];
  const deps = {
    env: {},
    out,
    clientInfo: { version: "0.1.0", revision: "abc", nodeVersion: "v20.0.0" },
    connect: (options: ConnectionOptions) => {
      connections.push(options);
      return {
        transport: createRouterTransport(routes, {
          transport: { interceptors: [namespaceInterceptor(options.namespace)] },
        }),
        close: () => {},
      };
    },
  };
  return { out, connections, deps, run: (...argv: string[]) => runCli(argv, deps) };
}

const namesOf = (c: Command) => [c.name(), ...c.aliases()];

/** Every command's help text, depth first, keyed by its path. */
function helpTexts(command: Command, path = "berth"): Map<string, string> {
  const texts = new Map([[path, command.helpInformation()]]);
  for (const sub of command.commands) for (const [k, v] of helpTexts(sub, `${path} ${sub.name()}`)) texts.set(k, v);
  return texts;
}

describe("loading only the command that runs", () => {
  it("knows every top-level command by the names and aliases the command itself declares", async () => {
    const full = await createProgram(harness(() => {}).deps);
    expect(COMMAND_MODULES.map((m) => m.names)).toEqual(full.commands.map(namesOf));
  });

  it("finds the command after the global options, and gives up where commander's answer is not plain", () => {
    const name = (...argv: string[]) => commandModuleOf(argv)?.names[0];
    expect(name("version")).toBe("version");
    expect(name("-a", "/run/x.sock", "-n", "ns", "--timeout", "5s", "--json", "--debug", "t", "kill", "x")).toBe(
      "tasks",
    );
    expect(name("-a", "tasks", "version")).toBe("version"); // "tasks" is the address here
    expect(name("--address=/s", "--namespace=n", "--timeout=1s", "-a/s", "-nfoo", "i", "ls")).toBe("images");
    expect(name()).toBeUndefined();
    expect(name("help", "tasks")).toBeUndefined();
    expect(name("--help")).toBeUndefined();
    expect(name("--bogus", "tasks")).toBeUndefined();
    expect(name("taks")).toBeUndefined();
  });

  it("builds the invoked command exactly as the full tree has it", async () => {
    const { deps } = harness(() => {});
    const full = helpTexts(await createProgram(deps));
    for (const m of COMMAND_MODULES) {
      const lazy = await createProgram(deps, ["-a", "/s", m.names[0] as string, "--help"]);
      expect(lazy.commands.map((c) => c.name())).toEqual([m.names[0]]);
      for (const [path, text] of helpTexts(lazy)) {
        if (path !== "berth") expect(text, path).toBe(full.get(path));
      }
    }
  });

  it("shows the whole tree and suggestions when no command is named plainly", async () => {
    const h = harness(() => {});
    expect(await h.run("--help")).toBe(0);
    for (const m of COMMAND_MODULES) expect(h.out.out).toContain(`  ${m.names[0]}`);
    const typo = harness(() => {});
    expect(await typo.run("taks", "ls")).toBe(1);
    expect(typo.out.err).toContain("(Did you mean tasks?)");
  });
});

describe("a subcommand's own option wins over a global one of the same name (ctr's flag scoping)", () => {
  function killHarness() {
    const kills: { containerId: string; all: boolean; signal: number }[] = [];
    const h = harness((r) => {
      r.service(Containers, { get: (req) => ({ container: { id: req.id, labels: {} } }) });
      r.service(Tasks, {
        kill: (req) => {
          kills.push({ containerId: req.containerId, all: req.all, signal: req.signal });
          return {};
        },
        list: () => ({ tasks: [] }),
      });
    });
    return { ...h, kills };
  }

  it("takes `tasks kill -a ID` as --all, and -a before the command as the address", async () => {
    const h = killHarness();
    expect(await h.run("-a", "/run/berth-test.sock", "tasks", "kill", "-a", "c1")).toBe(0);
    expect(h.kills).toEqual([{ containerId: "c1", all: true, signal: 15 }]);
    expect(h.connections.map((c) => c.address)).toEqual(["/run/berth-test.sock"]);
  });

  it("accepts -a after the id, the long form, and no -a at all", async () => {
    const h = killHarness();
    expect(await h.run("-a", "/s", "t", "kill", "-s", "SIGKILL", "c1", "-a")).toBe(0);
    expect(await h.run("-a", "/s", "task", "kill", "--all", "c2")).toBe(0);
    expect(await h.run("-a", "/s", "tasks", "kill", "c3")).toBe(0);
    expect(h.kills).toEqual([
      { containerId: "c1", all: true, signal: 9 },
      { containerId: "c2", all: true, signal: 15 },
      { containerId: "c3", all: false, signal: 15 },
    ]);
    expect(new Set(h.connections.map((c) => c.address))).toEqual(new Set(["/s"]));
  });

  it("rejects -a with --exec-id as ctr does", async () => {
    const h = killHarness();
    expect(await h.run("-a", "/s", "tasks", "kill", "-a", "--exec-id", "e1", "c1")).toBe(1);
    expect(h.out.err).toBe("berth: specify an exec-id or all; not both\n");
    expect(h.kills).toEqual([]);
  });

  it("still reads global options after commands that do not have them", async () => {
    const h = killHarness();
    expect(await h.run("tasks", "ls", "-a", "/after.sock", "--json", "-n", "other")).toBe(0);
    expect(h.out.out).toBe("[]\n");
    expect(h.connections.map((c) => [c.address, c.namespace])).toEqual([["/after.sock", "other"]]);
    // kill has options without a short form (--exec-id): the long-only globals still reach the root
    expect(await h.run("-a", "/s", "tasks", "kill", "-a", "c1", "--timeout", "5s", "--debug", "-n", "ns2")).toBe(0);
    expect(h.kills).toEqual([{ containerId: "c1", all: true, signal: 15 }]);
    expect(h.connections.at(-1)?.namespace).toBe("ns2");
    expect(h.connections.at(-1)?.interceptors?.length).toBe(1); // --debug's tracing
  });
});
