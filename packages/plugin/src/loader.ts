import { join } from "node:path";
import { FailedPreconditionError, NotFoundError } from "@berth/errdefs";
import {
  type Closable,
  type DaemonInfo,
  type InitContext,
  type Logger,
  type PluginMeta,
  type PluginStatus,
  type PluginType,
  type AnyRegistration,
  isSkipPlugin,
  pluginUri,
} from "./plugin.js";
import type { Registry } from "./registry.js";

export interface LoadOptions {
  readonly daemon: DaemonInfo;
  readonly log: Logger;
  /** Raw config tables by plugin URI (`[plugins."<uri>"]`). */
  readonly configs?: Readonly<Record<string, unknown>>;
  /** URIs not to load; listed as disabled? containerd leaves them out of the list entirely. */
  readonly disabled?: readonly string[];
  /** URIs that must load; startup fails otherwise. */
  readonly required?: readonly string[];
  readonly signal?: AbortSignal;
}

interface Loaded {
  readonly registration: AnyRegistration;
  readonly status: PluginStatus;
  readonly instance?: unknown;
}

/** The result of loading: instances by type, statuses for introspection, and an ordered close. */
export class LoadedPlugins {
  readonly #loaded: Loaded[] = [];

  add(entry: Loaded): void {
    this.#loaded.push(entry);
  }

  get statuses(): PluginStatus[] {
    return this.#loaded.map((l) => l.status);
  }

  byType<T>(type: PluginType<T>): Map<string, T> {
    const out = new Map<string, T>();
    for (const l of this.#loaded) {
      if (l.status.state === "ok" && l.registration.type.name === type.name)
        out.set(l.registration.id, l.instance as T);
    }
    return out;
  }

  single<T>(type: PluginType<T>): T {
    const all = this.byType(type);
    if (all.size === 0) throw new NotFoundError(`no plugins registered for ${type.name}`);
    if (all.size > 1) throw new FailedPreconditionError(`multiple plugins registered for ${type.name}`);
    return all.values().next().value as T;
  }

  byId<T>(type: PluginType<T>, id: string): T {
    const found = this.byType(type).get(id);
    if (found === undefined) throw new NotFoundError(`plugin ${type.name}.${id}`);
    return found;
  }

  /** Closes every instance in reverse init order; errors are logged, not thrown. */
  async close(log: Logger): Promise<void> {
    for (const l of [...this.#loaded].reverse()) {
      const inst = l.instance as Partial<Closable> | undefined;
      if (l.status.state !== "ok" || typeof inst?.close !== "function") continue;
      try {
        await inst.close();
      } catch (err) {
        log.warn({ plugin: pluginUri(l.registration), err }, "closing plugin failed");
      }
    }
  }
}

/**
 * Initialises registrations in graph order. A SkipPluginError marks a plugin skipped; any other error marks it
 * failed, unless it is required, in which case loading stops with that error.
 */
export async function loadPlugins(registry: Registry, options: LoadOptions): Promise<LoadedPlugins> {
  const disabled = new Set(options.disabled ?? []);
  const required = new Set(options.required ?? []);
  const loaded = new LoadedPlugins();
  const signal = options.signal ?? new AbortController().signal;
  const order = registry.graph((r) => disabled.has(pluginUri(r)));
  for (const uri of required) {
    if (!order.some((r) => pluginUri(r) === uri))
      throw new NotFoundError(`required plugin ${uri} is not registered or is disabled`);
  }
  for (const registration of order) {
    const uri = pluginUri(registration);
    const log = options.log.child?.({ plugin: uri }) ?? options.log;
    const meta: PluginMeta = { exports: {}, capabilities: [], platforms: [] };
    const requires = registration.requires === "*" ? ["*"] : (registration.requires ?? []).map((t) => t.name);
    const allowed = (type: PluginType<unknown>) =>
      registration.requires === "*" || (registration.requires ?? []).some((t) => t.name === type.name);
    const guard = (type: PluginType<unknown>) => {
      if (!allowed(type)) throw new FailedPreconditionError(`plugin ${uri} did not declare it requires ${type.name}`);
    };
    let config: unknown;
    const ic: InitContext<unknown> = {
      id: registration.id,
      uri,
      get config() {
        return config;
      },
      rootDir: join(options.daemon.root, uri),
      stateDir: join(options.daemon.state, uri),
      daemon: options.daemon,
      log,
      signal,
      meta,
      getSingle: (type) => {
        guard(type);
        return loaded.single(type);
      },
      getById: (type, id) => {
        guard(type);
        return loaded.byId(type, id);
      },
      getByType: (type) => {
        guard(type);
        return loaded.byType(type);
      },
      plugins: () => loaded.statuses,
    };
    const base = { type: registration.type.name, id: registration.id, requires, meta };
    try {
      config = registration.config ? registration.config.parse(options.configs?.[uri] ?? {}) : undefined;
      log.debug({ type: registration.type.name, id: registration.id }, "loading plugin");
      const instance = await registration.init(ic);
      loaded.add({ registration, instance, status: { ...base, state: "ok" } });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      if (isSkipPlugin(err)) {
        log.info({ err: error.message }, "skip loading plugin");
        loaded.add({ registration, status: { ...base, state: "skipped", error } });
      } else if (required.has(uri)) {
        throw new FailedPreconditionError(`load required plugin ${uri}`, { cause: err });
      } else {
        log.warn({ err: error.message }, "failed to load plugin");
        loaded.add({ registration, status: { ...base, state: "error", error } });
      }
    }
  }
  return loaded;
}
