/**
 * @keyfleet/chaincode: the Fabric contract. The record types, error codes and pure rules it shares
 * with the gateway, the agent and the console are in @keyfleet/protocol.
 */
import './logging.js';
import { KeyfleetContract } from './contract.js';
import { HsmClusterContract } from './contract-hsm-cluster.js';

/**
 * What fabric-contract-api loads from the package main: `keyfleet`, the default (the first), and
 * `hsm-cluster` (the gateway's HSM cluster records, called as `hsm-cluster:<transaction>`).
 */
export const contracts: (typeof KeyfleetContract | typeof HsmClusterContract)[] = [
  KeyfleetContract,
  HsmClusterContract,
];

export { RoleAttribute } from './identity.js';
