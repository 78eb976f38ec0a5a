/**
 * The keyfleet contract: Fabric's default contract of this chaincode, so clients name its
 * transactions plainly (`peer chaincode query -c '{"Args":["ListTrustAnchors"]}'`). It is made of
 * one module per aggregate, each a group of thin `@Transaction`s over pure rules (protocol/ and the
 * aggregate's rules.ts); every write goes through the one write path (transaction/write.ts).
 *
 * Write transactions take `(requestJson, jws)`: the request record and a compact ES256 JWS over its
 * canonical JSON made by a registered trust anchor; reads take plain string arguments. Every
 * transaction returns canonical JSON.
 */
import { Info } from 'fabric-contract-api';

import { AnchorTransactions } from './anchors/transactions.js';
import { AttestationTransactions } from './attestation/transactions.js';
import { DeviceTransactions } from './devices/transactions.js';
import { KeyTransactions } from './keys/transactions.js';
import { NonceTransactions } from './nonces/transactions.js';
import { ReferenceValueTransactions } from './reference-values/transactions.js';
import { ShardMapTransactions } from './shard-map/transactions.js';
import { contractOf } from './transaction/compose.js';

@Info({ title: 'keyfleet', description: 'Key lifecycle, device registry and attestation records for edge fleets' })
export class KeyfleetContract extends contractOf('keyfleet', [
  AnchorTransactions,
  DeviceTransactions,
  KeyTransactions,
  NonceTransactions,
  AttestationTransactions,
  ReferenceValueTransactions,
  ShardMapTransactions,
]) {}
