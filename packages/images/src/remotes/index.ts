// @berth/images/remotes: the OCI distribution client (resolve, fetch into a content store, push), registry
// hosts configured as containerd's certs.d/<host>/hosts.toml, and registry auth (basic, bearer tokens).
export {
  Authorizer,
  dockerConfigCredentials,
  dockerConfigPath,
  parseChallenges,
  staticCredentials,
} from "./auth.js";
export type { Challenge, Credentials, CredentialsFn } from "./auth.js";
export { distributionSourceLabel, fetchBlob, refKey } from "./fetch.js";
export type { FetchBlobOptions, FetchProgress } from "./fetch.js";
export { configureHosts, isLocalhost, parseHostsToml } from "./hosts.js";
export type { HostCapability, HostOptions, RegistryHost } from "./hosts.js";
export { isRetryableNetworkError, send } from "./http.js";
export type { BodyFactory, HttpRequest, HttpResponse, RetryOptions, TlsOptions } from "./http.js";
export { pushImage } from "./push.js";
export type { PushOptions, PushProgress } from "./push.js";
export { MANIFEST_ACCEPT, MAX_MANIFEST_BYTES, Repository } from "./registry.js";
export type { CallOptions } from "./registry.js";
export { createResolver, parseReference } from "./resolver.js";
export type { Resolved, Resolver, ResolverOptions } from "./resolver.js";
