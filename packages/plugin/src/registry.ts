import { AlreadyExistsError, InvalidArgumentError } from "@berth/errdefs";
import { type AnyRegistration, pluginUri } from "./plugin.js";

/**
 * Holds registrations (values, no global state) and orders them by their requirements:
 * depth-first, registration order breaking ties, as containerd's plugin graph does.
 */
export class Registry {
  readonly #registrations: AnyRegistration[] = [];

  register(registration: AnyRegistration): this {
    const { type, id, requires } = registration;
    if (!type?.name) throw new InvalidArgumentError("plugin: no type");
    if (!id) throw new InvalidArgumentError(`plugin ${type.name}: no id`);
    const uri = pluginUri(registration);
    if (this.#registrations.some((r) => pluginUri(r) === uri)) throw new AlreadyExistsError(`plugin ${uri}`);
    if (Array.isArray(requires) && requires.some((t) => t.name === type.name)) {
      throw new InvalidArgumentError(`plugin ${uri}: requires its own type`);
    }
    if (requires !== undefined && requires !== "*" && !Array.isArray(requires)) {
      throw new InvalidArgumentError(`plugin ${uri}: requires must be a list of types or "*"`);
    }
    this.#registrations.push(registration);
    return this;
  }

  registerAll(registrations: Iterable<AnyRegistration>): this {
    for (const r of registrations) this.register(r);
    return this;
  }

  get registrations(): readonly AnyRegistration[] {
    return this.#registrations;
  }

  /** Registrations in init order. A plugin requiring "*" comes after every other. Throws on cycles. */
  graph(disabled: (r: AnyRegistration) => boolean = () => false): AnyRegistration[] {
    const enabled = this.#registrations.filter((r) => !disabled(r));
    const ordered: AnyRegistration[] = [];
    const state = new Map<AnyRegistration, "visiting" | "done">();
    const visit = (r: AnyRegistration, path: string[]): void => {
      const s = state.get(r);
      if (s === "done") return;
      if (s === "visiting") {
        throw new InvalidArgumentError(`plugin dependency cycle: ${[...path, pluginUri(r)].join(" -> ")}`);
      }
      state.set(r, "visiting");
      if (Array.isArray(r.requires)) {
        for (const t of r.requires) {
          for (const dep of enabled)
            if (dep.type.name === t.name && dep.requires !== "*") visit(dep, [...path, pluginUri(r)]);
        }
      }
      state.set(r, "done");
      ordered.push(r);
    };
    for (const r of enabled) if (r.requires !== "*") visit(r, []);
    for (const r of enabled) if (r.requires === "*") visit(r, []);
    return ordered;
  }
}
