/**
 * Docker image references as distribution/reference reads them: normalisation (`alpine` →
 * `docker.io/library/alpine:latest`), the familiar form (the reverse), and the OCI ref name containerd derives
 * (the tag part).
 */
import { InvalidArgumentError } from "@berth/errdefs";

const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[_.]|__|[-]+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const ANCHORED_ID_RE = /^[a-f0-9]{64}$/;
const NAME_TOTAL_LENGTH_MAX = 255;

export const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DEFAULT_DOMAIN = "index.docker.io";
const OFFICIAL_REPO_PREFIX = "library/";

/** A parsed, normalised reference: `domain/path[:tag][@digest]`. */
export interface DockerReference {
  readonly domain: string;
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
}

function invalid(ref: string, why: string): Error {
  return new InvalidArgumentError(`invalid reference ${JSON.stringify(ref)}: ${why}`);
}

/** Parses a reference the way `reference.ParseNormalizedNamed` does (docker.io and library/ filled in). */
export function parseNormalizedNamed(ref: string): DockerReference {
  if (ANCHORED_ID_RE.test(ref)) {
    throw invalid(ref, "cannot specify 64-byte hexadecimal strings");
  }
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(ref, "invalid digest");
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) throw invalid(ref, "invalid tag");
  }
  let domain: string;
  let path: string;
  const slash = rest.indexOf("/");
  const first = slash < 0 ? "" : rest.slice(0, slash);
  if (slash < 0 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = OFFICIAL_REPO_PREFIX + path;
  if (path.toLowerCase() !== path) throw invalid(ref, "repository name must be lowercase");
  if (!DOMAIN_RE.test(domain)) throw invalid(ref, "invalid domain");
  if (path === "" || !path.split("/").every((c) => PATH_COMPONENT_RE.test(c))) {
    throw invalid(ref, "invalid reference format");
  }
  if (domain.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(ref, `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return { domain, path, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** The full string form: `docker.io/library/alpine:latest`. */
export function formatReference(r: DockerReference): string {
  return `${r.domain}/${r.path}${r.tag === undefined ? "" : `:${r.tag}`}${r.digest === undefined ? "" : `@${r.digest}`}`;
}

/**
 * containerd's normalisation of an archive's RepoTags (`reference.ParseDockerRef`): full domain and path,
 * `:latest` when neither tag nor digest is given, and only the digest when both are.
 */
export function normalizeReference(ref: string): string {
  const r = parseNormalizedNamed(ref);
  if (r.digest !== undefined) return formatReference({ domain: r.domain, path: r.path, digest: r.digest });
  return formatReference({ ...r, tag: r.tag ?? "latest" });
}

/** The familiar form Docker prints (`alpine:latest`), with `:latest` added when there is no tag. */
export function familiarizeReference(ref: string): string {
  const r = parseNormalizedNamed(ref);
  const tagged = r.tag === undefined && r.digest === undefined ? { ...r, tag: "latest" } : r;
  let name = `${tagged.domain}/${tagged.path}`;
  if (tagged.domain === DEFAULT_DOMAIN) {
    name = tagged.path;
    const rest = name.slice(OFFICIAL_REPO_PREFIX.length);
    if (name.startsWith(OFFICIAL_REPO_PREFIX) && !rest.includes("/")) name = rest;
  }
  return `${name}${tagged.tag === undefined ? "" : `:${tagged.tag}`}${tagged.digest === undefined ? "" : `@${tagged.digest}`}`;
}

/**
 * The OCI ref name containerd writes beside the full name (`org.opencontainers.image.ref.name`): the object
 * after the locator (`latest`, `v1@sha256:…`, `@sha256:…`), or the name itself when it has no host part.
 */
export function ociReferenceName(name: string): string {
  if (name.includes("://")) return name;
  const slash = name.indexOf("/");
  if (slash <= 0) return name;
  const host = name.slice(0, slash);
  const hostColon = host.lastIndexOf(":");
  if (hostColon >= 0 && !host.endsWith("]") && !/^[0-9]*$/.test(host.slice(hostColon + 1))) return name;
  const path = name.slice(slash);
  const m = /[:@]/.exec(path);
  if (m === null) return "";
  const object = path.slice(m.index);
  return object.startsWith(":") ? object.slice(1) : object;
}
