/**
 * Fabric's own routing of a transaction to the chaincode's contracts: fabric-shim's
 * ChaincodeFromContract, the object the chaincode server hands every invocation to. It splits
 * `contract:name` (no prefix: the default contract, keyfleet), finds the transaction in the
 * `@Transaction` metadata, checks the argument count and types, calls it, and answers a status
 * and a payload or message; a name it does not know goes to the contract's unknownTransaction.
 * The unit tests (harness.ts) and LocalLedger dispatch through it, so what they call is what a
 * peer calls.
 */
import { createRequire } from 'node:module';

import { JSONSerializer } from 'fabric-contract-api';
import type { ChaincodeStub } from 'fabric-shim-api';

import { contracts } from '../index.js';
import type { MapStub } from './map-stub.js';

/** The shim's answer to one invocation: `shim.success(payload)` or `shim.error(message)`. */
interface ShimResponse {
  status: number;
  payload?: Uint8Array;
  message?: string;
}

interface Chaincode {
  Invoke(stub: ChaincodeStub): Promise<ShimResponse>;
}

type ChaincodeFromContract = new (
  contractClasses: unknown[],
  serializers: { transaction: string; serializers: Record<string, unknown> },
  metadata: object,
  title: string,
  version: string,
) => Chaincode;

// The routing class is internal to fabric-shim (its package has no exports map and no types for it),
// so it is loaded by path; fabric-shim is pinned, and a change there fails every chaincode test.
const load = createRequire(__filename);
const Router = load('fabric-shim/lib/contract-spi/chaincodefromcontract.js') as ChaincodeFromContract;
const shimLogger = load('fabric-shim/lib/logger.js') as { getLogger(name: string): { silent: boolean } };

let chaincode: Chaincode | undefined;

/** The chaincode as the chaincode server builds it from the package's `contracts` (bootstrap.js). */
function router(): Chaincode {
  if (chaincode === undefined) {
    // The router logs every refused transaction at error level: right for a chaincode server, noise
    // in tests that refuse hundreds on purpose. The refusal itself still reaches the caller.
    for (const name of ['contracts-spi/chaincodefromcontract.js', 'contracts-spi/datamarshall.js']) {
      shimLogger.getLogger(name).silent = true;
    }
    chaincode = new Router(
      [...contracts], // the router appends its system contract to the list it is given
      { transaction: 'jsonSerializer', serializers: { jsonSerializer: JSONSerializer } },
      {},
      'keyfleet',
      '0.1.0',
    );
  }
  return chaincode;
}

/** Runs the stub's open transaction through Fabric's routing: its payload, or an Error with the chaincode's message. */
export async function route(stub: MapStub): Promise<string> {
  const response = await router().Invoke(stub as unknown as ChaincodeStub);
  if (response.status !== 200) throw new Error(response.message ?? `chaincode answered status ${response.status}`);
  return Buffer.from(response.payload ?? new Uint8Array()).toString('utf8');
}
