/**
 * @keyfleet/chaincode: the Fabric contract. The record types, error codes and pure rules it shares
 * with the gateway, the agent and the console are in @keyfleet/protocol.
 */
import './logging.js';
import { KeyfleetContract } from './contract.js';

/** What fabric-contract-api loads from the package main: one contract, named `keyfleet`, the default. */
export const contracts: (typeof KeyfleetContract)[] = [KeyfleetContract];

export { RoleAttribute } from './identity.js';
