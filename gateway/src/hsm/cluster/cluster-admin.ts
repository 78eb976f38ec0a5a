/**
 * The operator's handle on a running gateway's HSM cluster (docs/hsm-cluster.md, "Adding a token
 * while the gateway runs"): its state, and joining a token (a new one, after the SO's ceremony
 * gave it the cluster KEK, or a member that fell out of sync) without a restart. The join copies
 * every key the token lacks under the cluster KEK, destroys on it the keys the cluster no longer
 * holds, and goes on the ledger like every other replication.
 */
import { HsmTokenLabelPattern } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../../errors.js';
import type { ReplicaHsm } from '../hsm.js';
import { clusterKekLabel } from './ceremony.js';
import { HsmErrorCode, isHsmError } from '../hsm-error.js';
import { formatPkcs11Uri } from '../pkcs11-uri.js';
import type { ClusterStatus, HsmCluster, JoinResult } from './cluster-hsm.js';

export interface JoinOutcome extends JoinResult {
  /** The token's label. */
  readonly token: string;
  /** The cluster after the join. */
  readonly cluster: ClusterStatus;
}

export interface HsmClusterAdmin {
  status(): ClusterStatus;
  /**
   * Joins the token labelled `token` (same PKCS#11 module and user PIN as the other members).
   * A member already in sync is left as it is (nothing copied).
   *
   * @throws GatewayError `NOT_FOUND` (no such token), `BAD_REQUEST` (it holds no cluster KEK, or
   *   another one: run the ceremony), `HSM_FAILURE` (the copy failed)
   */
  join(token: string): Promise<JoinOutcome>;
}

/** The ledger's rule for a member's label (@keyfleet/protocol), so every join can be recorded. */
export const tokenLabelPattern = HsmTokenLabelPattern.source;

export function newHsmClusterAdmin(cluster: HsmCluster, open: (uri: string) => Promise<ReplicaHsm>): HsmClusterAdmin {
  // One join at a time: two requests for the same token must not both open and copy.
  let queue: Promise<unknown> = Promise.resolve();

  const joinNow = async (token: string): Promise<JoinOutcome> => {
    if (!HsmTokenLabelPattern.test(token)) {
      throw new GatewayError(GatewayErrorCode.BadRequest, `token must match ${tokenLabelPattern}`);
    }
    if (cluster.status().inSync.includes(token)) {
      return { token, copied: [], removed: [], cluster: cluster.status() };
    }
    let hsm: Awaited<ReturnType<typeof open>>;
    try {
      hsm = await open(formatPkcs11Uri({ token }));
    } catch (err) {
      if (isHsmError(err) && err.code === HsmErrorCode.TokenNotFound) {
        throw new GatewayError(GatewayErrorCode.NotFound, `no HSM token is labelled "${token}"`, err.code);
      }
      throw err;
    }
    try {
      // Said plainly before anything is copied: a token the SO's ceremony has not been run on.
      if ((await hsm.findKeys({ label: clusterKekLabel, kind: 'secret' })).length !== 1) {
        throw new GatewayError(
          GatewayErrorCode.BadRequest,
          `token "${token}" holds no cluster KEK: the SO's ceremony (cli.js cluster-init) must add it first`,
          HsmErrorCode.KeyNotFound,
        );
      }
      const result = await cluster.join({ name: hsm.tokenLabel, hsm });
      return { token, ...result, cluster: cluster.status() };
    } catch (err) {
      await hsm.close().catch(() => undefined);
      // Another KEK, or a copy whose check value differs: what the HSM says names no secret.
      if (isHsmError(err) && err.code === HsmErrorCode.IntegrityFailed) {
        throw new GatewayError(GatewayErrorCode.BadRequest, err.message, err.code, { cause: err });
      }
      throw err;
    }
  };

  return {
    status: () => cluster.status(),
    join(token) {
      const joined = queue.then(() => joinNow(token));
      queue = joined.catch(() => undefined);
      return joined;
    },
  };
}
