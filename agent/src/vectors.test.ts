import { createECDH, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  deriveDeviceMasterKey,
  deriveKek,
  kekDerivationData,
  keyCheckValue,
  nextKeyCommitment,
  rotationAckDigest,
  rotationNonceDigest,
  unwrapKey,
  wrapKey,
} from './protocol.js';

/** docs/protocol-rotation.md §10. */
interface Vectors {
  deviceId: string;
  keyId: string;
  version: number;
  devicePrivateKey: string;
  devicePublicKey: string;
  keyExchangePrivateKey: string;
  keyExchangePublicKey: string;
  deviceMasterKey: string;
  kekIv: string;
  kekDerivationData: string;
  kek: string;
  dataKey: string;
  wrappedKey: string;
  kcv: string;
  nextKeyCommitment: string;
  nonce: string;
  nonceDigest: string;
  ackDigest: string;
}

/** The vectors exactly as docs/protocol-rotation.md §10 publishes them. */
function specVectors(): Vectors {
  const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'protocol-rotation.md'), 'utf8');
  const block = /<!-- rotation-test-vectors -->\s*```json\n([\s\S]+?)\n```/.exec(doc)?.[1];
  if (block === undefined) throw new Error('no test-vector block in docs/protocol-rotation.md');
  return JSON.parse(block) as Vectors;
}

/** A P-256 key pair from a fixed scalar, as KeyObjects. */
function keyPair(scalarHex: string): { privateKey: ReturnType<typeof createPrivateKey>; point: Buffer } {
  const ecdh = createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(scalarHex, 'hex'));
  const point = ecdh.getPublicKey();
  const jwk = {
    kty: 'EC',
    crv: 'P-256',
    d: Buffer.from(scalarHex, 'hex').toString('base64url'),
    x: point.subarray(1, 33).toString('base64url'),
    y: point.subarray(33).toString('base64url'),
  };
  return { privateKey: createPrivateKey({ key: jwk, format: 'jwk' }), point };
}

describe('rotation protocol test vectors (agent, software)', () => {
  const v = specVectors();
  const device = keyPair(v.devicePrivateKey);
  const kex = keyPair(v.keyExchangePrivateKey);

  it('public keys follow from the fixed scalars', () => {
    expect(device.point.toString('hex')).to.equal(v.devicePublicKey);
    expect(kex.point.toString('hex')).to.equal(v.keyExchangePublicKey);
  });

  it('both ends of the ECDH give the device master key', () => {
    const fromDevice = deriveDeviceMasterKey(device.privateKey, createPublicKey(kex.privateKey));
    const fromGateway = deriveDeviceMasterKey(kex.privateKey, createPublicKey(device.privateKey));
    expect(fromDevice.toString('hex')).to.equal(v.deviceMasterKey);
    expect(fromGateway.toString('hex')).to.equal(v.deviceMasterKey);
  });

  it('derives the KEK from the master key, device, key and version', () => {
    expect(kekDerivationData(v.deviceId, v.keyId, v.version).toString('hex')).to.equal(v.kekDerivationData);
    const kek = deriveKek(Buffer.from(v.deviceMasterKey, 'hex'), v.deviceId, v.keyId, v.version);
    expect(kek.toString('hex')).to.equal(v.kek);
    expect(
      deriveKek(Buffer.from(v.deviceMasterKey, 'hex'), v.deviceId, v.keyId, v.version + 1).toString('hex'),
    ).not.to.equal(v.kek);
  });

  it('wraps, unwraps and checks the data key', () => {
    const kek = Buffer.from(v.kek, 'hex');
    expect(wrapKey(kek, Buffer.from(v.dataKey, 'hex')).toString('hex')).to.equal(v.wrappedKey);
    expect(unwrapKey(kek, Buffer.from(v.wrappedKey, 'hex')).toString('hex')).to.equal(v.dataKey);
    expect(keyCheckValue(Buffer.from(v.dataKey, 'hex'))).to.equal(v.kcv);
  });

  it('computes the digests the ledger records', () => {
    expect(rotationNonceDigest(v.nonce)).to.equal(v.nonceDigest);
    expect(rotationAckDigest(v.keyId, v.version)).to.equal(v.ackDigest);
    expect(nextKeyCommitment(v.kcv)).to.equal(v.nextKeyCommitment);
  });

  it('refuses every single-bit change of the wrapped key (RFC 5649 integrity)', () => {
    const kek = Buffer.from(v.kek, 'hex');
    const wrapped = Buffer.from(v.wrappedKey, 'hex');
    for (let bit = 0; bit < wrapped.length * 8; bit += 13) {
      const altered = Buffer.from(wrapped);
      altered[bit >> 3] = (altered[bit >> 3] ?? 0) ^ (1 << (bit & 7));
      expect(() => unwrapKey(kek, altered), `bit ${bit}`)
        .to.throw()
        .with.property('code', 'AGENT_UNWRAP_FAILED');
    }
  });
});
