/**
 * @keyfleet/chaincode: the Fabric contract. The record types, error codes and pure rules it shares
 * with the gateway, the agent and the console are in @keyfleet/protocol.
 */
import './logging.js';
import { KeyfleetContract } from './contract.js';
import { HsmClusterContract } from './contract-hsm-cluster.js';
import { ShardMoveContract } from './contract-shard-moves.js';

/**
 * What fabric-contract-api loads from the package main: `keyfleet`, the default (the first), `hsm-cluster`
 * (the gateway's HSM cluster records, called as `hsm-cluster:<transaction>`) and `shard-move` (live
 * re-sharding, called as `shard-move:<transaction>`).
 */
export const contracts: (typeof KeyfleetContract | typeof HsmClusterContract | typeof ShardMoveContract)[] = [
  KeyfleetContract,
  HsmClusterContract,
  ShardMoveContract,
];

export { RoleAttribute } from './identity.js';
