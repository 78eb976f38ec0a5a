import { createHash } from 'node:crypto';
import {
  isPermitted,
  Msp,
  Permission,
  type AccessPolicy,
  type HistoryEntry as LedgerHistoryEntry,
  type KeyRecord,
} from '@keyfleet/chaincode';
import type { Principal } from '../auth/bearer';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { Hsm } from '../hsm';
import type { LedgerClient } from '../ledger/ledger-client';
import { notFoundAs, signed, toHistory } from './records';
import type { KeyRegistration, KeyService } from './services';

export interface KeyServiceOptions {
  readonly hsm: Hsm;
  readonly ledger: LedgerClient;
}

/** The HSM label of a key version: one convention, so recovery can find what a crash left. */
export function keyVersionLabel(keyId: string, version: number): string {
  return `key:${keyId}:v${version}`;
}

export function newKeyService(options: KeyServiceOptions): KeyService {
  const { hsm, ledger } = options;

  const readKey = (keyId: string) => notFoundAs(ledger.read<KeyRecord>('GetKey', keyId), 'KEY_NOT_FOUND');

  return {
    async register(_by, request) {
      const label = keyVersionLabel(request.keyId, 1);
      // A version-1 object with no ledger record is what a crash between the HSM and the ledger
      // leaves behind: the ledger is the record of what exists, so the orphan goes.
      const known = await readKey(request.keyId).then(
        () => true,
        (err: unknown) => {
          if (err instanceof GatewayError && err.code === GatewayErrorCode.NotFound) return false;
          throw err;
        },
      );
      if (known) {
        throw new GatewayError(
          GatewayErrorCode.LedgerRejected,
          `key ${request.keyId} is already registered`,
          'KEY_EXISTS',
        );
      }
      await hsm.destroyKey({ label });

      const version = await generate(hsm, label, request);
      try {
        return await ledger.write<KeyRecord>('RegisterKey', {
          KeyID: request.keyId,
          Owner: { Type: request.owner.type, ID: request.owner.id },
          Algorithm: request.algorithm,
          Purpose: request.purpose,
          RotationPolicy: {
            IntervalSeconds: request.rotationIntervalSeconds,
            GraceSeconds: 0,
            RetentionSeconds: request.retentionSeconds,
            Triggers: ['compromise'],
          },
          AccessPolicy: toLedgerPolicy(request.accessPolicy),
          InitialVersion: { ...version, WrappedKeyDigest: null },
          InitialState: 'active',
          NextKeyCommitment: null,
        });
      } catch (err) {
        await hsm.destroyKey({ label }).catch(() => undefined);
        throw err;
      }
    },

    async get(by, keyId) {
      const record = await readKey(keyId);
      assertMayRead(by, record);
      return signed(record);
    },

    async history(_by, keyId) {
      return toHistory(
        await notFoundAs(ledger.read<LedgerHistoryEntry<KeyRecord>[]>('GetKeyHistory', keyId), 'KEY_NOT_FOUND'),
      );
    },
  };
}

async function generate(
  hsm: Hsm,
  label: string,
  request: KeyRegistration,
): Promise<{ Fingerprint: string; FingerprintType: 'kcv' | 'spki-sha256'; Pkcs11URI: string }> {
  if (request.algorithm === 'EC-P256') {
    const key = await hsm.generateEcKeyPair({ label, sign: true });
    return {
      Fingerprint: createHash('sha256').update(key.spki).digest('hex'),
      FingerprintType: 'spki-sha256',
      Pkcs11URI: key.uri,
    };
  }
  const usage = request.purpose === 'wrap' ? (['wrap', 'unwrap'] as const) : (['encrypt', 'decrypt'] as const);
  const key = await hsm.generateSecretKey({ label, type: 'aes-256', usage });
  if (key.checkValue === undefined) {
    throw new GatewayError(GatewayErrorCode.HsmFailure, 'the token gave no key check value');
  }
  return { Fingerprint: Buffer.from(key.checkValue).toString('hex'), FingerprintType: 'kcv', Pkcs11URI: key.uri };
}

/**
 * Applications reach the ledger through the gateway's own identity, which may read every key; so
 * the gateway applies the key's access policy to them itself, as the chaincode would.
 */
function assertMayRead(by: Principal, key: KeyRecord): void {
  if (by.role !== 'application') return;
  const caller = { MSPID: Msp.Operator, Role: 'application' as const, ID: by.subject };
  if (!isPermitted(key.AccessPolicy, caller, Permission.Read)) {
    throw new GatewayError(GatewayErrorCode.Forbidden, `application ${by.subject} may not read key ${key.KeyID}`);
  }
}

function toLedgerPolicy(policy: KeyRegistration['accessPolicy']): AccessPolicy {
  const principals = (list: KeyRegistration['accessPolicy']['read']) =>
    list.map((p) => ({ MSPID: p.mspId, Role: p.role, ID: p.id ?? null }));
  return {
    Read: principals(policy.read),
    Use: principals(policy.use),
    Rotate: principals(policy.rotate),
    Administer: principals(policy.administer),
  };
}
