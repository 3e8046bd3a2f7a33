// Layer identity: chain IDs from diff IDs (the image-spec's ChainID algorithm, containerd's pkg/identity).
import { type Digest, digestOf, parseDigest } from "@berth/oci-spec";

/**
 * The chain ID of every prefix of the layer stack: `chain[0] = diffIDs[0]`,
 * `chain[n] = sha256(chain[n-1] + " " + diffIDs[n])`. InvalidArgument for a malformed diffID.
 */
export function chainIDs(diffIDs: readonly string[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIDs) {
    parseDigest(d);
    const prev = out[out.length - 1];
    out.push(prev === undefined ? (d as Digest) : digestOf(`${prev} ${d}`));
  }
  return out;
}

/** The chain ID of the whole stack (the top layer's); undefined for no layers. */
export function chainID(diffIDs: readonly string[]): Digest | undefined {
  return chainIDs(diffIDs).at(-1);
}
