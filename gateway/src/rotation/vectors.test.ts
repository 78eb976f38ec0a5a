import { expect } from 'chai';
import { createCipheriv, createDecipheriv, createECDH } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { newHsm, type Hsm } from '../hsm';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '../testing/softhsm';
import { withDeviceMasterKey, wrapForDevice } from './device-wrap';
import { kekDerivationData, nextKeyCommitment, rotationAckDigest, rotationNonceDigest } from '@keyfleet/protocol';

/** docs/protocol-rotation.md §10, read from the spec itself so code and document cannot drift. */
interface Vectors {
  deviceId: string;
  keyId: string;
  version: number;
  devicePrivateKey: string;
  devicePublicKey: string;
  keyExchangePrivateKey: string;
  deviceMasterKey: string;
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

function specVectors(): Vectors {
  const doc = readFileSync(join(__dirname, '..', '..', '..', 'docs', 'protocol-rotation.md'), 'utf8');
  const block = /<!-- rotation-test-vectors -->\s*```json\n([\s\S]+?)\n```/.exec(doc)?.[1];
  if (block === undefined) throw new Error('no test-vector block in docs/protocol-rotation.md');
  return JSON.parse(block) as Vectors;
}

const rfc5649Aiv = Buffer.from('a65959a6', 'hex');
const hex = (text: string): Buffer => Buffer.from(text, 'hex');

function softwareWrap(kek: Uint8Array, key: Uint8Array): Buffer {
  const cipher = createCipheriv('id-aes256-wrap-pad', kek, rfc5649Aiv);
  return Buffer.concat([cipher.update(key), cipher.final()]);
}

function softwareUnwrap(kek: Uint8Array, wrapped: Uint8Array): Buffer {
  const decipher = createDecipheriv('id-aes256-wrap-pad', kek, rfc5649Aiv);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

describe('rotation protocol test vectors (gateway, SoftHSM)', function () {
  this.timeout(60_000);
  const v = specVectors();
  let store: SoftHsmStore;
  let hsm: Hsm;

  before(async () => {
    store = createSoftHsmStore();
    hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin });
    // A transport key whose value software knows (ECDH with a local key) brings the vector's
    // master key and data key into the token, as if the HSM had derived and generated them.
    const hsmSide = await hsm.generateEcKeyPair({ label: 'transport-kex', sign: false, derive: true });
    const peer = createECDH('prime256v1');
    peer.generateKeys();
    await hsm.deriveEcdh({ label: 'transport-kex' }, peer.getPublicKey(), {
      label: 'transport',
      type: 'aes-256',
      usage: ['unwrap'],
      token: false,
    });
    const transport = peer.computeSecret(Buffer.from(hsmSide.point));
    await hsm.unwrapKey({ label: 'transport' }, softwareWrap(transport, hex(v.deviceMasterKey)), {
      label: 'vector-dmk',
      type: 'aes-256',
      usage: ['derive'],
      token: false,
    });
    await hsm.unwrapKey({ label: 'transport' }, softwareWrap(transport, hex(v.dataKey)), {
      label: 'vector-key',
      type: 'aes-256',
      usage: ['encrypt', 'decrypt'],
      extractable: true,
      token: false,
    });
  });

  after(async () => {
    await hsm.close();
    store.remove();
  });

  it('the HSM derivation and wrap (production wrapForDevice) give the vector bytes', async () => {
    const wrapped = await wrapForDevice(
      hsm,
      { label: 'vector-dmk' },
      { deviceId: v.deviceId, keyId: v.keyId, version: v.version },
      { label: 'vector-key' },
    );
    expect(Buffer.from(wrapped).toString('hex')).to.equal(v.wrappedKey);
    // The KEK was a session object and is gone.
    const left = (await hsm.findKeys({ kind: 'secret' })).map((k) => k.label);
    expect(left.filter((label) => label.startsWith('kek:'))).to.deep.equal([]);
    expect(softwareUnwrap(hex(v.kek), wrapped).toString('hex')).to.equal(v.dataKey);
  });

  it('binds the KEK to the version: another version wraps differently', async () => {
    const wrapped = await wrapForDevice(
      hsm,
      { label: 'vector-dmk' },
      { deviceId: v.deviceId, keyId: v.keyId, version: v.version + 1 },
      { label: 'vector-key' },
    );
    expect(Buffer.from(wrapped).toString('hex')).not.to.equal(v.wrappedKey);
  });

  it('the HSM ECDH with the vector device key gives a wrap the device opens in software', async () => {
    const kex = await hsm.generateEcKeyPair({ label: 'device-kex', sign: false, derive: true });
    const wrapped = await withDeviceMasterKey(hsm, 'device-kex', hex(v.devicePublicKey), (dmk) =>
      wrapForDevice(hsm, dmk, { deviceId: v.deviceId, keyId: v.keyId, version: v.version }, { label: 'vector-key' }),
    );
    const device = createECDH('prime256v1');
    device.setPrivateKey(hex(v.devicePrivateKey));
    const masterKey = device.computeSecret(Buffer.from(kex.point));
    const cbc = createCipheriv('aes-256-cbc', masterKey, Buffer.alloc(16)).setAutoPadding(false);
    const kek = Buffer.concat([cbc.update(kekDerivationData(v.deviceId, v.keyId, v.version)), cbc.final()]);
    expect(softwareUnwrap(kek, wrapped).toString('hex')).to.equal(v.dataKey);
    const left = (await hsm.findKeys({ kind: 'secret' })).map((k) => k.label);
    expect(left.filter((label) => label.startsWith('dmk:') || label.startsWith('kek:'))).to.deep.equal([]);
  });

  it('computes the derivation data and ledger digests of the vectors', () => {
    expect(kekDerivationData(v.deviceId, v.keyId, v.version).toString('hex')).to.equal(v.kekDerivationData);
    expect(rotationNonceDigest(v.nonce)).to.equal(v.nonceDigest);
    expect(rotationAckDigest(v.keyId, v.version)).to.equal(v.ackDigest);
    expect(nextKeyCommitment(v.kcv)).to.equal(v.nextKeyCommitment);
  });
});
