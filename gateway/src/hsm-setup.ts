/**
 * Opens a service's HSM (the operator gateway's or the verifier's): one token, or with replicas a
 * cluster over them (docs/hsm-cluster.md). In a cluster the service's keys are made replicable on
 * the first token and copied to every other under the cluster KEK before anything is served; the
 * cluster's replications and failovers queue for the ledger, written by this service once its
 * ledger is open (`records.attach`).
 */
import type { Role } from '@keyfleet/protocol';
import { ensureKeys, newHsm, parsePkcs11Uri, type GatewayKey, type Hsm } from './hsm';
import { newHsmClusterAdmin, type HsmClusterAdmin } from './hsm/cluster/cluster-admin';
import { openHsmCluster } from './hsm/cluster/cluster-hsm';
import { openPkcs11Hsm } from './hsm/pkcs11-hsm';
import { newHsmClusterRecorder, type HsmClusterRecorder } from './ledger/hsm-cluster-records';

export interface ServiceHsmOptions {
  readonly modulePath: string;
  readonly tokenUri: string;
  readonly pin: string;
  readonly sessions: number;
  /** The cluster's other tokens, in failover order; empty for one token. */
  readonly replicas: readonly string[];
  /** The keys the service needs (its inventory), made when missing. */
  readonly keys: readonly GatewayKey[];
  /** Who writes the cluster's records: the operator gateway or the verifier (HsmClusterWriters). */
  readonly writer: Role;
  readonly log: (message: string, err: unknown) => void;
}

export interface ServiceHsm {
  readonly hsm: Hsm;
  readonly cluster?: {
    readonly records: HsmClusterRecorder;
    /** The cluster KEK's check value, lowercase hex. */
    readonly kekCheckValue: string;
    readonly admin: HsmClusterAdmin;
  };
}

export async function openServiceHsm(options: ServiceHsmOptions): Promise<ServiceHsm> {
  const { modulePath, pin, sessions } = options;
  if (options.replicas.length === 0) {
    const hsm = await newHsm({ uri: options.tokenUri, modulePath, pin, sessions });
    try {
      await ensureKeys(hsm, options.keys);
    } catch (err) {
      await hsm.close().catch(() => undefined);
      throw err;
    }
    return { hsm };
  }
  const open = (uri: string) => openPkcs11Hsm({ uri, modulePath, pin, sessions });
  const members: { name: string; hsm: Awaited<ReturnType<typeof open>> }[] = [];
  try {
    for (const uri of [options.tokenUri, ...options.replicas]) {
      const hsm = await open(uri);
      members.push({ name: hsm.tokenLabel, hsm });
    }
    const [primary] = members;
    if (primary === undefined) throw new Error('unreachable: the primary token is always a member');
    await ensureKeys(primary.hsm, options.keys, { replicable: true });
    // The cluster's name is the first token's label: ledger URIs name it, whichever member answers.
    const name = parsePkcs11Uri(options.tokenUri).token ?? primary.name;
    const records = newHsmClusterRecorder({ clusterId: name, writer: options.writer, log: options.log });
    const hsm = await openHsmCluster({ name, members, listener: records });
    // Tokens joined later (the gateway's POST /v1/hsm/cluster/members) open with the same module and PIN.
    const admin = newHsmClusterAdmin(hsm, open);
    return { hsm, cluster: { records, kekCheckValue: hsm.status().kekCheckValue, admin } };
  } catch (err) {
    for (const m of members) await m.hsm.close().catch(() => undefined);
    throw err;
  }
}
