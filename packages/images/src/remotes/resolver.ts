/**
 * A resolver (containerd's remotes.Resolver): turns a reference into a descriptor and gives the repository to
 * fetch from or push to, with hosts from `certs.d`-style configuration and one Authorizer shared by all calls.
 */
import { InvalidArgumentError } from "@berth/errdefs";
import type { Descriptor } from "@berth/oci-spec";
import { type DockerReference, formatReference, parseNormalizedNamed } from "../reference.js";
import { Authorizer, type CredentialsFn } from "./auth.js";
import { type HostOptions, type RegistryHost, configureHosts } from "./hosts.js";
import type { RetryOptions } from "./http.js";
import { type CallOptions, Repository } from "./registry.js";

export interface ResolverOptions extends HostOptions {
  /** Credentials per host; anonymous when absent or when it answers undefined. */
  readonly credentials?: CredentialsFn;
  /** Replaces the hosts configuration (tests, embedders). */
  readonly hosts?: (domain: string) => Promise<RegistryHost[]>;
  readonly retry?: RetryOptions;
}

export interface Resolved {
  /** The normalised reference (`docker.io/library/busybox:latest`). */
  readonly name: string;
  readonly desc: Descriptor;
  readonly repository: Repository;
}

export interface Resolver {
  resolve(ref: string, opts?: CallOptions): Promise<Resolved>;
  /** The repository of `ref` (its tag or digest is ignored). */
  repository(ref: string | DockerReference): Promise<Repository>;
}

/** Parses a reference and adds `:latest` when it has neither tag nor digest. */
export function parseReference(ref: string): DockerReference {
  const r = parseNormalizedNamed(ref);
  return r.tag === undefined && r.digest === undefined ? { ...r, tag: "latest" } : r;
}

export function createResolver(options: ResolverOptions = {}): Resolver {
  const auth = new Authorizer(options.credentials);
  const hostsFor = options.hosts ?? ((domain: string) => configureHosts(domain, options));
  const repositories = new Map<string, Promise<Repository>>();
  const repository = (ref: string | DockerReference): Promise<Repository> => {
    const r = typeof ref === "string" ? parseNormalizedNamed(ref) : ref;
    const key = `${r.domain}/${r.path}`;
    let repo = repositories.get(key);
    if (repo === undefined) {
      repo = hostsFor(r.domain).then((hosts) => new Repository(r.domain, r.path, hosts, auth, options.retry));
      repositories.set(key, repo);
    }
    return repo;
  };
  return {
    repository,
    async resolve(ref, opts = {}) {
      const r = parseReference(ref);
      const object = r.digest ?? r.tag;
      if (object === undefined) throw new InvalidArgumentError(`reference ${ref}: no tag or digest`);
      const repo = await repository(r);
      const desc = await repo.resolve(object, opts);
      return { name: formatReference(r), desc, repository: repo };
    },
  };
}
