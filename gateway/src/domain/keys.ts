import { createHash } from 'node:crypto';
import { type AccessPolicy, ErrorCode, type KeyRecord, KeyState, Permission, versionLabel } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import { HsmErrorCode, isHsmError, type Hsm, type KeyKind } from '../hsm';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort, ledgerRefusalCode } from '../ledger/port';
import { assertPermitted } from '../key-service/access';
import { signed, toHistory } from './records';
import type { CompromiseResult, KeyRegistration, KeyService } from './services';

export interface KeyServiceOptions {
  readonly hsm: Hsm;
  readonly ledger: LedgerClient;
}

export function newKeyService(options: KeyServiceOptions): KeyService {
  const { hsm } = options;
  const ledger = ledgerPort(options.ledger);
  const readKey = (keyId: string) => ledger.keys.require(keyId);

  return {
    async register(_by, request) {
      const label = versionLabel(request.keyId, 1);
      // A version-1 object left by a crash before the ledger write makes the HSM refuse the label
      // (HSM_KEY_EXISTS): rotation's reconcile() at start-up removes such orphans.
      const version = await generate(hsm, label, request);
      try {
        return await ledger.keys.register({
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
          InitialVersion: { ...version.ledger, WrappedKeyDigest: null },
          InitialState: 'active',
          NextKeyCommitment: null,
        });
      } catch (err) {
        // A definite refusal leaves nothing behind; an unknown outcome (the write may have
        // committed) leaves the key for reconcile(), which asks the ledger.
        if (!(err instanceof GatewayError && err.code === GatewayErrorCode.LedgerUnavailable)) {
          await hsm.destroyKey({ id: version.id }, version.kinds).catch(() => undefined);
        }
        throw err;
      }
    },

    async get(by, keyId) {
      const record = await readKey(keyId);
      // The gateway's own identity reads every key; the caller's right is checked here, by the key's policy.
      assertPermitted(by, record, Permission.Read);
      return signed(record);
    },

    async markCompromised(by, keyId, version, reason) {
      const before = await readKey(keyId);
      assertPermitted(by, before, Permission.Administer);
      const target = before.Versions.find((candidate) => candidate.Version === version);
      if (target === undefined) {
        throw new GatewayError(
          GatewayErrorCode.NotFound,
          `key ${keyId} has no version ${version}`,
          'VERSION_NOT_FOUND',
        );
      }
      const already = (key: KeyRecord): CompromiseResult | null => {
        const found = key.Versions.find((candidate) => candidate.Version === version);
        if (found?.State !== KeyState.Compromised || found.CompromisedAt === null) return null;
        const result = { keyId, version, transactionId: null, nextRotationDue: key.NextRotationDue };
        return { outcome: 'already-compromised', ...result, compromisedAt: found.CompromisedAt };
      };
      const known = already(before);
      if (known !== null) return known;
      try {
        const { transactionId, record } = await ledger.keys.markCompromised({
          KeyID: keyId,
          Version: version,
          Reason: reason,
        });
        const marked = record.Versions.find((candidate) => candidate.Version === version);
        return {
          outcome: 'compromised',
          keyId,
          version,
          transactionId,
          compromisedAt: marked?.CompromisedAt ?? '',
          nextRotationDue: record.NextRotationDue,
        };
      } catch (err) {
        // Another request marked it first (here or at another gateway): the same answer as a repeat.
        if (ledgerRefusalCode(err) === ErrorCode.IllegalTransition) {
          const raced = already(await readKey(keyId));
          if (raced !== null) return raced;
        }
        throw err;
      }
    },

    async history(_by, keyId) {
      return toHistory(await ledger.keys.history(keyId));
    },
  };
}

async function generate(hsm: Hsm, label: string, request: KeyRegistration): Promise<GeneratedVersion> {
  try {
    if (request.algorithm === 'EC-P256') {
      const key = await hsm.generateEcKeyPair({ label, sign: true });
      return {
        ledger: {
          Fingerprint: createHash('sha256').update(key.spki).digest('hex'),
          FingerprintType: 'spki-sha256',
          Pkcs11URI: key.uri,
        },
        id: key.id,
        kinds: ['private', 'public'],
      };
    }
    const usage = request.purpose === 'wrap' ? (['wrap', 'unwrap'] as const) : (['encrypt', 'decrypt'] as const);
    const key = await hsm.generateSecretKey({ label, type: 'aes-256', usage });
    if (key.checkValue === undefined) {
      await hsm.destroyKey({ id: key.id }, ['secret']);
      throw new GatewayError(GatewayErrorCode.HsmFailure, 'the token gave no key check value');
    }
    return {
      ledger: { Fingerprint: Buffer.from(key.checkValue).toString('hex'), FingerprintType: 'kcv', Pkcs11URI: key.uri },
      id: key.id,
      kinds: ['secret'],
    };
  } catch (err) {
    if (isHsmError(err) && err.code === HsmErrorCode.KeyExists) {
      throw new GatewayError(
        GatewayErrorCode.LedgerRejected,
        `the HSM holds ${label} from an interrupted registration; a gateway restart reconciles it`,
        err.code,
        { cause: err },
      );
    }
    throw err;
  }
}

/** A new key version: what the ledger records, and how to find the HSM objects again. */
interface GeneratedVersion {
  readonly ledger: { Fingerprint: string; FingerprintType: 'kcv' | 'spki-sha256'; Pkcs11URI: string };
  readonly id: Uint8Array;
  readonly kinds: readonly KeyKind[];
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
