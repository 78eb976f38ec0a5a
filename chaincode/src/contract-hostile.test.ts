import './logging.js';

import { expect } from 'chai';

import { type AttestationResult, buildMerkleTree, canonicalJson, ErrorCode, TransactionName } from '@keyfleet/protocol';
import type { TestIdentity } from './testing/identities.js';
import { Harness, expectRejected, hex } from './testing/harness.js';
import { hostileCharacters } from './testing/hostile-text.js';
import type { TestSigner } from './testing/signer.js';

type Tx = (typeof TransactionName)[keyof typeof TransactionName];

/** Signs `request` with `signer` and submits the JSON text `text` (default: the request itself). */
async function send(
  h: Harness,
  who: TestIdentity,
  tx: Tx,
  request: Record<string, unknown>,
  signer: TestSigner = h.signers.metadata,
): Promise<string> {
  const sent = h.as(who, request);
  return h.invoke(who, tx, JSON.stringify(sent), await signer.sign(sent));
}

/** Submits raw request text with a JWS over that text's parsed value (so only the text is hostile). */
async function sendText(h: Harness, who: TestIdentity, tx: Tx, text: string): Promise<string> {
  return h.invoke(who, tx, text, await h.signers.metadata.sign(null, { payload: Buffer.from(text) }));
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

const batchResult: AttestationResult = {
  DeviceID: 'dev-0001',
  NonceDigest: hex('batch-nonce'),
  EvidenceDigest: hex('batch-evidence'),
  Status: 'affirming',
  PolicyID: 'policy-gw-1',
  VerifierID: 'verifier-1',
  IssuedAt: '2026-01-01T00:00:00.000Z',
};

interface Row {
  name: string;
  code: ErrorCode;
  /** Legitimate writes the row needs first; the state is compared from after them. */
  setup?: (h: Harness) => Promise<unknown>;
  run: (h: Harness) => Promise<unknown>;
}

let replayed: Record<string, unknown> = {};

const enrol = (h: Harness, extra: Record<string, unknown>) =>
  send(h, h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0100', extra));
const regKey = (h: Harness, extra: Record<string, unknown>) =>
  send(h, h.ids.operator, TransactionName.RegisterKey, h.keyRequest('k-100', extra));
const policyWith = (principal: Record<string, unknown>, count = 1) => ({
  Read: Array.from({ length: count }, (_, i) => ({ ...principal, ID: count === 1 ? principal.ID : `id-${i}` })),
  Use: [],
  Rotate: [],
  Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
});
const attest = (h: Harness, extra: Record<string, unknown>, who = h.ids.verifier) =>
  send(h, who, TransactionName.RecordAttestation, h.attestationRequest('dev-0001', extra), h.signers.verifier);
/** One fresh nonce per member (as many as Count), unless the row names its own. */
const memberNonces = (count: unknown) =>
  Array.from({ length: typeof count === 'number' && count > 0 && count <= 256 ? count : 1 }, (_, i) => ({
    NonceDigest: hex(`member-${i}`),
    DeviceID: 'dev-0001',
  }));
const batch = (h: Harness, extra: Record<string, unknown>) =>
  send(
    h,
    h.ids.verifier,
    TransactionName.RecordAttestationBatch,
    h.req(TransactionName.RecordAttestationBatch, {
      BatchID: 'b-100',
      VerifierID: 'verifier-1',
      MerkleRoot: hex('root'),
      Count: 10,
      FirstIssuedAt: '2025-12-31T23:00:00.000Z',
      LastIssuedAt: '2025-12-31T23:59:00.000Z',
      Contraindicated: [],
      Nonces: memberNonces(extra.Count ?? 10),
      ...extra,
    }),
    h.signers.verifier,
  );
const acks = (h: Harness, list: unknown, who = h.ids.operator) =>
  send(h, who, TransactionName.RecordRotationAcks, h.req(TransactionName.RecordRotationAcks, { Acks: list }));
const refValues = (h: Harness, measurements: unknown) =>
  send(
    h,
    h.ids.operator,
    TransactionName.SetReferenceValues,
    h.req(TransactionName.SetReferenceValues, { Group: 'gw-edge', PolicyID: 'p-1', Measurements: measurements }),
  );
const keyTx = (h: Harness, tx: Tx, fields: Record<string, unknown>, who = h.ids.operator) =>
  send(h, who, tx, h.req(tx, { KeyID: 'k-1', ...fields }));

/** `text` with `"name":value,` inserted after its first `{`: a member given twice. */
const repeat = (text: string, name: string, value: unknown): string =>
  text.replace('{', `{${JSON.stringify(name)}:${JSON.stringify(value)},`);
const enrolText = (h: Harness) => JSON.stringify(h.as(h.ids.operator, h.enrolRequest('dev-0100')));

const rows: Row[] = [
  // ---- repeated members (I-JSON, RFC 7493 §2.3): refused, whichever value would have won
  ...['Action', 'RequestID', 'DeviceID', 'Group', 'Location', 'Function', 'Shard', 'CertFingerprint', 'Principal'].map(
    (name): Row => ({
      name: `request names ${name} twice`,
      code: ErrorCode.MalformedJson,
      run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, repeat(enrolText(h), name, 'dev-0999')),
    }),
  ),
  {
    name: 'request names DeviceID twice, once escaped',
    code: ErrorCode.MalformedJson,
    run: (h) =>
      sendText(
        h,
        h.ids.operator,
        TransactionName.EnrolDevice,
        enrolText(h).replace('{', '{"\\u0044eviceID":"dev-0999",'),
      ),
  },
  {
    name: 'Principal object names Kind twice',
    code: ErrorCode.MalformedJson,
    run: (h) =>
      sendText(
        h,
        h.ids.operator,
        TransactionName.EnrolDevice,
        enrolText(h).replace('"Principal":{', '"Principal":{"Kind":"device",'),
      ),
  },
  {
    name: 'inclusion proof names LeafIndex twice',
    code: ErrorCode.MalformedJson,
    run: (h) =>
      h.invoke(
        h.ids.auditor,
        TransactionName.VerifyAttestationInclusion,
        'b-1',
        JSON.stringify(batchResult),
        '{"LeafIndex":5,"LeafIndex":0,"AuditPath":[]}',
      ),
  },
  // ---- free text: controls, bidi overrides, lone surrogates never reach the ledger
  ...hostileCharacters.flatMap(([what, c]): Row[] => [
    { name: `Location with ${what}`, code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Location: `hall${c}2` }) },
    { name: `Function with ${what}`, code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Function: `${c}probe` }) },
    {
      name: `suspension reason with ${what}`,
      code: ErrorCode.InvalidArgument,
      run: (h) =>
        send(
          h,
          h.ids.operator,
          TransactionName.SuspendDevice,
          h.req(TransactionName.SuspendDevice, {
            DeviceID: 'dev-0001',
            Reason: `maintenance${c}`,
          }),
        ),
    },
  ]),
  // ---- reference values: a digest must have its algorithm's length
  ...(
    [
      ['sha-512', 64],
      ['sha-512', 96],
      ['sha-384', 64],
      ['sha-384', 128],
      ['sha-256', 96],
      ['sha-256', 128],
    ] as const
  ).map(([algorithm, digits]): Row => ({
    name: `${algorithm} reference digest of ${digits} hex digits`,
    code: ErrorCode.InvalidArgument,
    run: (h) => refValues(h, [{ Name: 'firmware', Algorithm: algorithm, Digest: 'ab'.repeat(digits / 2) }]),
  })),
  // ---- bookmarks: only a key of the query's own range
  ...(
    [
      ['garbage', 'zzzz'],
      ['another group', '\u0000device~group\u0000other\u0000dev-0001\u0000'],
      ['another record type', '\u0000key\u0000k-1\u0000'],
      ['a key before the range', '\u0000'],
    ] as const
  ).map(([what, mark]): Row => ({
    name: `device page bookmark: ${what}`,
    code: ErrorCode.InvalidArgument,
    run: (h) => h.invoke(h.ids.operator, TransactionName.ListDevicesByGroup, 'gw-edge', '10', mark),
  })),
  {
    name: 'due-keys page bookmark outside the range',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      h.invoke(h.ids.operator, TransactionName.ListKeysDueForRotation, '2026-01-01T00:00:00.000Z', '10', 'zzzz'),
  },

  // ---- malformed JSON and framing
  {
    name: 'request is not JSON',
    code: ErrorCode.MalformedJson,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, '{'),
  },
  {
    name: 'request is empty',
    code: ErrorCode.MalformedJson,
    run: (h) => h.invoke(h.ids.operator, TransactionName.EnrolDevice, '', 'a.b.c'),
  },
  {
    name: 'trailing garbage after JSON',
    code: ErrorCode.MalformedJson,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, '{}x'),
  },
  // ---- who asked: the Principal, checked against the caller before the request's schema
  { name: 'Principal missing', code: ErrorCode.PrincipalInvalid, run: (h) => enrol(h, { Principal: undefined }) },
  { name: 'Principal null', code: ErrorCode.PrincipalInvalid, run: (h) => enrol(h, { Principal: null }) },
  {
    name: 'Principal of an unknown kind',
    code: ErrorCode.PrincipalInvalid,
    run: (h) => enrol(h, { Principal: { Kind: 'root', ID: 'alice' } }),
  },
  {
    name: 'Principal id outside the id grammar',
    code: ErrorCode.PrincipalInvalid,
    run: (h) => enrol(h, { Principal: { Kind: 'operator', ID: 'alice smith' } }),
  },
  {
    name: 'Principal with an extra field',
    code: ErrorCode.PrincipalInvalid,
    run: (h) => enrol(h, { Principal: { Kind: 'operator', ID: 'alice', Role: 'operator' } }),
  },
  {
    name: 'operator caller claiming to be the verifier service',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => enrol(h, { Principal: { Kind: 'service', ID: 'verifier.appraisal' } }),
  },
  {
    name: 'operator caller naming a service without its gateway. prefix',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => enrol(h, { Principal: { Kind: 'service', ID: 'scheduler' } }),
  },
  {
    name: 'verifier caller acting for an operator',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => attest(h, { Principal: { Kind: 'operator', ID: 'alice' } }),
  },
  {
    name: "verifier caller claiming the gateway's scheduler",
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => attest(h, { Principal: { Kind: 'service', ID: 'gateway.scheduler' } }),
  },
  {
    name: 'application caller acting for another application',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => keyTx(h, TransactionName.RotateKey, { Principal: { Kind: 'application', ID: 'app-other' } }, h.ids.app),
  },
  {
    name: 'application caller acting for an operator',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => keyTx(h, TransactionName.RotateKey, { Principal: { Kind: 'operator', ID: 'alice' } }, h.ids.app),
  },
  {
    name: 'device acting for another device',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) => keyTx(h, TransactionName.RotateKey, { Principal: { Kind: 'device', ID: 'dev-0002' } }, h.ids.device),
  },
  {
    name: 'device caller claiming a gateway service',
    code: ErrorCode.PrincipalNotAllowed,
    run: (h) =>
      keyTx(h, TransactionName.RotateKey, { Principal: { Kind: 'service', ID: 'gateway.scheduler' } }, h.ids.device),
  },
  {
    name: 'request is JSON null',
    code: ErrorCode.InvalidArgument,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, 'null'),
  },
  {
    name: 'request is an array',
    code: ErrorCode.InvalidArgument,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, '[]'),
  },
  {
    name: 'request is a string',
    code: ErrorCode.InvalidArgument,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, '"dev"'),
  },
  {
    name: 'JSON nested 200 deep',
    code: ErrorCode.InvalidArgument,
    run: (h) => sendText(h, h.ids.operator, TransactionName.EnrolDevice, '['.repeat(200) + ']'.repeat(200)),
  },
  {
    name: 'request over 64 KiB',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { Function: 'x'.repeat(70_000) }),
  },
  // ---- wrong types, missing and unknown fields
  { name: 'Shard as a string', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Shard: '3' }) },
  { name: 'Shard not an integer', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Shard: 3.5 }) },
  { name: 'Shard negative', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Shard: -1 }) },
  { name: 'DeviceID a number', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { DeviceID: 42 }) },
  { name: 'Group missing', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Group: undefined }) },
  { name: 'unknown field', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { Admin: true }) },
  {
    name: '__proto__ field',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      sendText(
        h,
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(h.enrolRequest('dev-0100')).replace('{', '{"__proto__":{"Status":"active"},'),
      ),
  },
  {
    name: 'Action names another transaction',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { Action: TransactionName.RevokeDevice }),
  },
  { name: 'RequestID missing', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { RequestID: undefined }) },
  {
    name: 'fingerprint in upper-case hex',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { CertFingerprint: hex('c').toUpperCase() }),
  },
  { name: 'DeviceID with U+0000', code: ErrorCode.InvalidArgument, run: (h) => enrol(h, { DeviceID: 'dev\u0000x' }) },
  {
    name: 'DeviceID of 129 characters',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { DeviceID: 'd'.repeat(129) }),
  },
  {
    name: 'Location of 257 characters',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { Location: 'l'.repeat(257) }),
  },
  {
    name: 'Location with a newline',
    code: ErrorCode.InvalidArgument,
    run: (h) => enrol(h, { Location: 'hall\nforged log line' }),
  },
  { name: 'unknown key algorithm', code: ErrorCode.InvalidArgument, run: (h) => regKey(h, { Algorithm: 'DES' }) },
  {
    name: 'PKCS#11 URI carrying a PIN',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      regKey(h, {
        InitialVersion: {
          Fingerprint: hex('f'),
          FingerprintType: 'kcv',
          Pkcs11URI: 'pkcs11:token=kf;object=k?pin-value=1234',
          WrappedKeyDigest: null,
        },
      }),
  },
  {
    name: 'PKCS#11 URI of another scheme',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      regKey(h, {
        InitialVersion: {
          Fingerprint: hex('f'),
          FingerprintType: 'kcv',
          Pkcs11URI: 'file:///etc/passwd',
          WrappedKeyDigest: null,
        },
      }),
  },
  {
    name: 'rotation interval of zero',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      regKey(h, { RotationPolicy: { IntervalSeconds: 0, GraceSeconds: 0, RetentionSeconds: 0, Triggers: [] } }),
  },
  {
    name: 'repeated rotation trigger',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      regKey(h, {
        RotationPolicy: {
          IntervalSeconds: 3600,
          GraceSeconds: 0,
          RetentionSeconds: 0,
          Triggers: ['compromise', 'compromise'],
        },
      }),
  },
  {
    name: 'policy principal with an unknown role',
    code: ErrorCode.InvalidArgument,
    run: (h) => regKey(h, { AccessPolicy: policyWith({ MSPID: 'Org1MSP', Role: 'root', ID: null }) }),
  },
  {
    name: 'policy with 65 principals',
    code: ErrorCode.InvalidArgument,
    run: (h) => regKey(h, { AccessPolicy: policyWith({ MSPID: 'Org1MSP', Role: 'application', ID: 'x' }, 65) }),
  },
  {
    name: 'policy granting a role from the wrong MSP',
    code: ErrorCode.InvalidArgument,
    run: (h) => regKey(h, { AccessPolicy: policyWith({ MSPID: 'Org2MSP', Role: 'device', ID: null }) }),
  },
  {
    name: 'anchor JWK with private key d',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      send(
        h,
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest('a-x', 'device-ca', { ...h.signers.spare.publicJwk, d: 'A'.repeat(43) } as never),
      ),
  },
  {
    name: 'anchor point not on P-256',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      send(
        h,
        h.ids.operator,
        TransactionName.RegisterTrustAnchor,
        h.anchorRequest('a-x', 'device-ca', { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43) }),
      ),
  },
  {
    name: 'attestation status outside EAR',
    code: ErrorCode.InvalidArgument,
    run: (h) => attest(h, { Status: 'trusted' }),
  },
  {
    name: 'IssuedAt not an ISO time',
    code: ErrorCode.InvalidArgument,
    run: (h) => attest(h, { IssuedAt: 'yesterday' }),
  },
  {
    name: 'IssuedAt an impossible date',
    code: ErrorCode.InvalidArgument,
    run: (h) => attest(h, { IssuedAt: '2026-02-30T00:00:00.000Z' }),
  },
  {
    name: 'IssuedAt a day in the future',
    code: ErrorCode.InvalidArgument,
    run: (h) => attest(h, { IssuedAt: '2026-01-02T00:00:00.000Z' }),
  },
  { name: 'batch Count of zero', code: ErrorCode.InvalidArgument, run: (h) => batch(h, { Count: 0 }) },
  {
    name: 'batch range reversed',
    code: ErrorCode.InvalidArgument,
    run: (h) => batch(h, { FirstIssuedAt: '2026-01-01T00:00:00.000Z', LastIssuedAt: '2025-12-31T00:00:00.000Z' }),
  },
  {
    name: 'batch with more contraindicated than results',
    code: ErrorCode.InvalidArgument,
    run: (h) => batch(h, { Count: 1, Contraindicated: ['dev-0001', 'dev-0002'] }),
  },
  {
    name: 'batch MerkleRoot not hex',
    code: ErrorCode.InvalidArgument,
    run: (h) => batch(h, { MerkleRoot: 'z'.repeat(64) }),
  },
  { name: 'no reference measurements', code: ErrorCode.InvalidArgument, run: (h) => refValues(h, []) },
  {
    name: 'reference measurement name repeated',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      refValues(h, [
        { Name: 'bl', Algorithm: 'sha-256', Digest: hex('1') },
        { Name: 'bl', Algorithm: 'sha-256', Digest: hex('2') },
      ]),
  },
  {
    name: 'pageSize of zero',
    code: ErrorCode.InvalidArgument,
    run: (h) => h.invoke(h.ids.operator, TransactionName.ListDevicesByGroup, 'gw-edge', '0', ''),
  },
  {
    name: 'pageSize not a number',
    code: ErrorCode.InvalidArgument,
    run: (h) => h.invoke(h.ids.operator, TransactionName.ListDevicesByGroup, 'gw-edge', 'ten', ''),
  },
  {
    name: 'pageSize above the limit',
    code: ErrorCode.InvalidArgument,
    run: (h) => h.invoke(h.ids.operator, TransactionName.ListDevicesByGroup, 'gw-edge', '5000', ''),
  },
  {
    name: 'due-time not a time',
    code: ErrorCode.InvalidArgument,
    run: (h) => h.invoke(h.ids.operator, TransactionName.ListKeysDueForRotation, 'soon', '10', ''),
  },
  {
    name: 'inclusion proof not JSON',
    code: ErrorCode.MalformedJson,
    run: (h) =>
      h.invoke(h.ids.auditor, TransactionName.VerifyAttestationInclusion, 'b-1', JSON.stringify(batchResult), '{'),
  },
  // ---- unknown ids
  {
    name: 'suspend an unknown device',
    code: ErrorCode.DeviceNotFound,
    run: (h) =>
      send(
        h,
        h.ids.operator,
        TransactionName.SuspendDevice,
        h.req(TransactionName.SuspendDevice, { DeviceID: 'dev-9999', Reason: 'x' }),
      ),
  },
  {
    name: 'rotate an unknown key',
    code: ErrorCode.KeyNotFound,
    run: (h) => send(h, h.ids.operator, TransactionName.RotateKey, h.rotateRequest('k-9999', 1)),
  },
  {
    name: 'deactivate an unknown version',
    code: ErrorCode.VersionNotFound,
    run: (h) => keyTx(h, TransactionName.DeactivateKey, { Version: 9 }),
  },
  {
    name: 'read an unknown key',
    code: ErrorCode.KeyNotFound,
    run: (h) => h.invoke(h.ids.auditor, TransactionName.GetKey, 'k-9999'),
  },
  {
    name: 'read an unknown batch',
    code: ErrorCode.BatchNotFound,
    run: (h) => h.invoke(h.ids.auditor, TransactionName.GetAttestationBatch, 'b-9999'),
  },
  {
    name: 'read an unknown attestation',
    code: ErrorCode.AttestationNotFound,
    run: (h) => h.invoke(h.ids.auditor, TransactionName.GetAttestation, 'dev-0001', hex('none')),
  },
  {
    name: 'read an unknown anchor',
    code: ErrorCode.AnchorNotFound,
    run: (h) => h.invoke(h.ids.auditor, TransactionName.GetTrustAnchor, 'nope'),
  },
  {
    name: 'attest an unknown device',
    code: ErrorCode.DeviceNotFound,
    run: (h) =>
      send(h, h.ids.verifier, TransactionName.RecordAttestation, h.attestationRequest('dev-9999'), h.signers.verifier),
  },
  {
    name: 'batch naming an unknown device',
    code: ErrorCode.DeviceNotFound,
    run: (h) => batch(h, { Contraindicated: ['dev-9999'] }),
  },
  {
    name: 'key owned by an unknown device',
    code: ErrorCode.DeviceNotFound,
    run: (h) => regKey(h, { Owner: { Type: 'device', ID: 'dev-9999' } }),
  },
  // ---- replays
  {
    name: 'the same signed request twice',
    code: ErrorCode.RequestReplayed,
    setup: (h) => {
      replayed = h.enrolRequest('dev-0200');
      return send(h, h.ids.operator, TransactionName.EnrolDevice, replayed);
    },
    run: (h) => send(h, h.ids.operator, TransactionName.EnrolDevice, replayed),
  },
  {
    name: 'an old suspend request replayed after reinstatement',
    code: ErrorCode.RequestReplayed,
    setup: async (h) => {
      replayed = h.req(TransactionName.SuspendDevice, { DeviceID: 'dev-0002', Reason: 'maintenance' });
      await send(h, h.ids.operator, TransactionName.SuspendDevice, replayed);
      await send(
        h,
        h.ids.operator,
        TransactionName.ReinstateDevice,
        h.req(TransactionName.ReinstateDevice, { DeviceID: 'dev-0002', Reason: 'done' }),
      );
    },
    run: (h) => send(h, h.ids.operator, TransactionName.SuspendDevice, replayed),
  },
  {
    name: 'attestation nonce already used',
    code: ErrorCode.NonceReplayed,
    run: (h) => attest(h, { NonceDigest: hex('used-nonce') }),
  },
  {
    name: 'ConsumeNonce of a used nonce',
    code: ErrorCode.NonceReplayed,
    run: (h) =>
      send(
        h,
        h.ids.verifier,
        TransactionName.ConsumeNonce,
        h.req(TransactionName.ConsumeNonce, {
          NonceDigest: hex('used-nonce'),
          Purpose: 'attestation',
          Subject: 'dev-0001',
        }),
        h.signers.verifier,
      ),
  },
  {
    name: 'rotation nonce already used',
    code: ErrorCode.NonceReplayed,
    run: (h) =>
      send(h, h.ids.operator, TransactionName.RotateKey, h.rotateRequest('k-1', 1, { NonceDigest: hex('used-nonce') })),
  },
  {
    name: 'rotation from a stale version',
    code: ErrorCode.StaleVersion,
    run: (h) => send(h, h.ids.operator, TransactionName.RotateKey, h.rotateRequest('k-1', 7)),
  },
  // ---- signatures
  {
    name: 'no JWS',
    code: ErrorCode.SignatureMissing,
    run: (h) => h.invoke(h.ids.operator, TransactionName.EnrolDevice, JSON.stringify(h.enrolRequest('dev-0100')), ''),
  },
  {
    name: 'JWS not compact',
    code: ErrorCode.SignatureInvalid,
    run: (h) =>
      h.invoke(h.ids.operator, TransactionName.EnrolDevice, JSON.stringify(h.enrolRequest('dev-0100')), 'not a jws'),
  },
  {
    name: 'JWS by another key with the right kid',
    code: ErrorCode.SignatureInvalid,
    run: (h) => send(h, h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0100'), h.signers.rogue),
  },
  {
    name: 'JWS over an altered record',
    code: ErrorCode.SignatureInvalid,
    run: async (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify({ ...r, Group: 'camera' }),
        await h.signers.metadata.sign(r),
      );
    },
  },
  {
    name: 'JWS over non-canonical JSON',
    code: ErrorCode.SignatureInvalid,
    run: async (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(r),
        await h.signers.metadata.sign(r, { payload: Buffer.from(JSON.stringify(r, null, 1)) }),
      );
    },
  },
  {
    name: 'JWS with alg none',
    code: ErrorCode.SignatureInvalid,
    run: (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(r),
        `${b64({ alg: 'none', kid: 'hsm-metadata-1' })}.${Buffer.from(canonicalJson(r)).toString('base64url')}.AA`,
      );
    },
  },
  {
    name: 'JWS with a jku header',
    code: ErrorCode.SignatureInvalid,
    run: async (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(r),
        await h.signers.metadata.sign(r, { header: { jku: 'https://evil.example/jwks' } }),
      );
    },
  },
  {
    name: 'JWS without kid',
    code: ErrorCode.SignatureInvalid,
    run: (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(r),
        `${b64({ alg: 'ES256' })}.${Buffer.from(canonicalJson(r)).toString('base64url')}.AA`,
      );
    },
  },
  {
    name: 'JWS kid of no anchor',
    code: ErrorCode.AnchorNotFound,
    run: async (h) => {
      const r = h.enrolRequest('dev-0100');
      return h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(r),
        await h.signers.metadata.sign(r, { kid: 'who-knows' }),
      );
    },
  },
  {
    name: 'device write signed by the verifier anchor',
    code: ErrorCode.AnchorKindMismatch,
    run: (h) => send(h, h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0100'), h.signers.verifier),
  },
  {
    name: 'JWS over 96 KiB',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      h.invoke(
        h.ids.operator,
        TransactionName.EnrolDevice,
        JSON.stringify(h.enrolRequest('dev-0100')),
        'a'.repeat(100_000),
      ),
  },
  // ---- wrong roles and identities
  {
    name: 'auditor enrols a device',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.auditor, TransactionName.EnrolDevice, h.enrolRequest('dev-0100')),
  },
  {
    name: 'verifier registers a key',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.verifier, TransactionName.RegisterKey, h.keyRequest('k-100')),
  },
  {
    name: 'certificate without role attribute',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.noRole, TransactionName.EnrolDevice, h.enrolRequest('dev-0100')),
  },
  {
    name: 'certificate with role "root"',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.unknownRole, TransactionName.EnrolDevice, h.enrolRequest('dev-0100')),
  },
  {
    name: 'operator role issued by Org2',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.operatorFromOrg2, TransactionName.EnrolDevice, h.enrolRequest('dev-0100')),
  },
  {
    name: 'verifier role issued by Org1',
    code: ErrorCode.AccessDenied,
    run: (h) => attest(h, {}, h.ids.verifierFromOrg1),
  },
  {
    name: 'operator from a foreign MSP',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.foreignMsp, TransactionName.EnrolDevice, h.enrolRequest('dev-0100')),
  },
  {
    name: 'application reads a key not granted to it',
    code: ErrorCode.AccessDenied,
    run: (h) => h.invoke(h.ids.app2, TransactionName.GetKey, 'k-1'),
  },
  {
    name: 'application rotates without Rotate',
    code: ErrorCode.AccessDenied,
    run: (h) => send(h, h.ids.app, TransactionName.RotateKey, h.rotateRequest('k-1', 1)),
  },
  {
    name: 'device reads another device',
    code: ErrorCode.AccessDenied,
    run: (h) => h.invoke(h.ids.device2, TransactionName.GetDevice, 'dev-0001'),
  },
  { name: 'device records its own attestation', code: ErrorCode.AccessDenied, run: (h) => attest(h, {}, h.ids.device) },
  {
    name: 'device reads device history',
    code: ErrorCode.AccessDenied,
    run: (h) => h.invoke(h.ids.device, TransactionName.GetDeviceHistory, 'dev-0001'),
  },
  // ---- domain rules
  {
    name: 'enrol an enrolled device',
    code: ErrorCode.DeviceExists,
    run: (h) => send(h, h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001')),
  },
  {
    name: 'register a registered key',
    code: ErrorCode.KeyExists,
    run: (h) => send(h, h.ids.operator, TransactionName.RegisterKey, h.keyRequest('k-1')),
  },
  {
    name: 'destroy the active version',
    code: ErrorCode.IllegalTransition,
    run: (h) => keyTx(h, TransactionName.DestroyKeyVersion, { Version: 1 }),
  },
  {
    name: 'activate the active version',
    code: ErrorCode.IllegalTransition,
    run: (h) => keyTx(h, TransactionName.ActivateKey, { Version: 1 }),
  },
  {
    name: 'rotate to an uncommitted key',
    code: ErrorCode.NextKeyMismatch,
    run: (h) => send(h, h.ids.operator, TransactionName.RotateKey, h.rotateRequest('k-c', 1)),
  },
  {
    name: 'inclusion proof for a non-member',
    code: ErrorCode.ProofInvalid,
    run: (h) =>
      h.invoke(
        h.ids.auditor,
        TransactionName.VerifyAttestationInclusion,
        'b-1',
        JSON.stringify({ ...batchResult, Status: 'warning' }),
        JSON.stringify({ LeafIndex: 0, AuditPath: [] }),
      ),
  },
  {
    name: 'unknown transaction name',
    code: ErrorCode.UnknownTransaction,
    run: (h) => h.invoke(h.ids.operator, 'DropAllKeys'),
  },
  { name: 'second batch with the same id', code: ErrorCode.BatchExists, run: (h) => batch(h, { BatchID: 'b-1' }) },
  {
    name: 'batch member with a used nonce',
    code: ErrorCode.NonceReplayed,
    run: (h) =>
      batch(h, { Count: 2, Nonces: [memberNonces(1)[0], { NonceDigest: hex('used-nonce'), DeviceID: 'dev-0001' }] }),
  },
  {
    name: 'batch member whose nonce an earlier batch consumed',
    code: ErrorCode.NonceReplayed,
    run: (h) => batch(h, { Count: 1, Nonces: [{ NonceDigest: hex('batch-nonce'), DeviceID: 'dev-0001' }] }),
  },
  {
    name: 'batch with more nonces than Count',
    code: ErrorCode.InvalidArgument,
    run: (h) => batch(h, { Count: 1, Nonces: memberNonces(2) }),
  },
  {
    name: 'batch of 257 nonces',
    code: ErrorCode.InvalidArgument,
    run: (h) =>
      batch(h, {
        Count: 257,
        Nonces: Array.from({ length: 257 }, (_, i) => ({ NonceDigest: hex(`m${i}`), DeviceID: 'dev-0001' })),
      }),
  },
  {
    name: 'batch nonce of an unknown device',
    code: ErrorCode.DeviceNotFound,
    run: (h) => batch(h, { Count: 1, Nonces: [{ NonceDigest: hex('m'), DeviceID: 'dev-9999' }] }),
  },
  { name: 'acknowledgements not a list', code: ErrorCode.InvalidArgument, run: (h) => acks(h, { KeyID: 'k-1' }) },
  { name: 'no acknowledgements', code: ErrorCode.InvalidArgument, run: (h) => acks(h, []) },
  {
    name: 'acknowledgement of version 0',
    code: ErrorCode.InvalidArgument,
    run: (h) => acks(h, [{ NonceDigest: hex('a'), KeyID: 'k-1', Version: 0 }]),
  },
  {
    name: 'acknowledgement whose digest an attestation used',
    code: ErrorCode.NonceReplayed,
    run: (h) => acks(h, [{ NonceDigest: hex('used-nonce'), KeyID: 'k-1', Version: 2 }]),
  },
  {
    name: 'acknowledgements by a device identity',
    code: ErrorCode.AccessDenied,
    run: (h) => acks(h, [{ NonceDigest: hex('a'), KeyID: 'k-1', Version: 2 }], h.ids.device),
  },
];

describe('hostile inputs: each rejected with its code, writing nothing', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0002'));
    await h.write(h.ids.operator, TransactionName.RegisterKey, h.keyRequest('k-1'));
    await h.write(
      h.ids.operator,
      TransactionName.RegisterKey,
      h.keyRequest('k-c', { NextKeyCommitment: hex('committed') }),
    );
    await h.write(
      h.ids.verifier,
      TransactionName.RecordAttestation,
      h.attestationRequest('dev-0001', { NonceDigest: hex('used-nonce') }),
      h.signers.verifier,
    );
    await h.write(
      h.ids.verifier,
      TransactionName.RecordAttestationBatch,
      h.req(TransactionName.RecordAttestationBatch, {
        BatchID: 'b-1',
        VerifierID: 'verifier-1',
        MerkleRoot: buildMerkleTree([batchResult]).Root,
        Count: 1,
        FirstIssuedAt: batchResult.IssuedAt,
        LastIssuedAt: batchResult.IssuedAt,
        Contraindicated: [],
        Nonces: [{ NonceDigest: batchResult.NonceDigest, DeviceID: batchResult.DeviceID }],
      }),
      h.signers.verifier,
    );
  });

  it('has at least 50 rows', () => {
    expect(rows.length).to.be.at.least(50);
  });

  for (const row of rows) {
    it(`${row.name} -> ${row.code}`, async () => {
      if (row.setup !== undefined) await row.setup(h);
      const before = h.stub.snapshot();
      await expectRejected(h, row.run(h), row.code);
      expect(h.stub.snapshot()).to.equal(before);
    });
  }
});
