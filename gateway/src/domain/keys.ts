import { type AccessPolicy, ErrorCode, type KeyRecord, KeyState, Permission } from '@keyfleet/protocol';
import { GatewayError, GatewayErrorCode } from '../errors';
import type { Hsm } from '../hsm';
import { newKeyVersionEngine, type KeyVersionEngine } from '../key-versions/engine';
import type { LedgerClient } from '../ledger/ledger-client';
import { ledgerPort, ledgerRefusalCode } from '../ledger/port';
import { assertPermitted } from '../key-service/access';
import { signed, toHistory } from './records';
import type { CompromiseResult, KeyRegistration, KeyService } from './services';

export interface KeyServiceOptions {
  readonly hsm: Hsm;
  readonly ledger: LedgerClient;
  /** Generates version 1 and registers the key; default one of its own over `hsm` and `ledger`. */
  readonly engine?: KeyVersionEngine;
}

export function newKeyService(options: KeyServiceOptions): KeyService {
  const ledger = ledgerPort(options.ledger);
  const engine = options.engine ?? newKeyVersionEngine(options);
  const readKey = (keyId: string) => ledger.keys.require(keyId);

  return {
    register(_by, request) {
      return engine.register(
        {
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
          InitialState: 'active',
        },
        // The first rotation generates version 2; a version-1 object a crash left before the
        // ledger write is refused (HSM_KEY_EXISTS) until reconcile() at start-up removes it.
        { preRotate: false, delivered: false },
      );
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
