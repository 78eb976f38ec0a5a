/**
 * @keyfleet/chaincode/testing: test doubles for other packages' tests, never for production code.
 * The contract in process over an in-memory stub (LocalLedger), and Fabric-CA-like identities.
 */
export {
  LocalLedger,
  type LocalCreator,
  type LocalLedgerOptions,
  type LocalResult,
  type LocalTransaction,
} from './local-ledger.js';
export { newCa, newIdentity, type IdentityOptions, type TestCa, type TestIdentity } from './identities.js';
export { fixtures, Harness, type Identities, type Signers } from './harness.js';
export { hostileCharacters } from './hostile-text.js';
/** The shard-move contract, for a mover's tests over two harnesses (two shard channels). */
export { ShardMoveContract } from '../contract-shard-moves.js';
