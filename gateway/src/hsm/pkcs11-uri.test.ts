import { expect } from 'chai';
import { HsmError } from './hsm-error.js';
import { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from './pkcs11-uri.js';

describe('parsePkcs11Uri', () => {
  const valid: [string, Pkcs11Uri][] = [
    ['pkcs11:', {}],
    ['pkcs11:token=keyfleet', { token: 'keyfleet' }],
    ['PKCS11:token=keyfleet', { token: 'keyfleet' }],
    ['pkcs11:token=keyfleet;object=device-ca', { token: 'keyfleet', object: 'device-ca' }],
    ['pkcs11:object=my%20key;type=private', { object: 'my key', type: 'private' }],
    ['pkcs11:token=Fl%C3%BCgel', { token: 'Flügel' }],
    ['pkcs11:id=%01%02%ff', { id: new Uint8Array([1, 2, 255]) }],
    ['pkcs11:token=a=b', { token: 'a=b' }],
    ['pkcs11:slot-id=0;token=t', { slotId: 0, token: 't' }],
    ['pkcs11:library-version=2.6', { libraryVersion: '2.6' }],
    [
      'pkcs11:manufacturer=SoftHSM%20project;serial=abc;model=SoftHSM%20v2',
      {
        manufacturer: 'SoftHSM project',
        serial: 'abc',
        model: 'SoftHSM v2',
      },
    ],
    [
      'pkcs11:token=t?module-path=/usr/lib/softhsm/libsofthsm2.so',
      {
        token: 't',
        modulePath: '/usr/lib/softhsm/libsofthsm2.so',
      },
    ],
    ['pkcs11:token=t?pin-source=file:/run/secrets/pin', { token: 't', pinSource: '/run/secrets/pin' }],
    ['pkcs11:token=t?pin-source=file:///run/secrets/pin', { token: 't', pinSource: '/run/secrets/pin' }],
    [
      'pkcs11:token=t?pin-source=%2Frun%2Fpin&module-name=softhsm2',
      {
        token: 't',
        pinSource: '/run/pin',
        moduleName: 'softhsm2',
      },
    ],
    ['pkcs11:token=t;x-vendor=anything', { token: 't' }],
  ];
  for (const [uri, expected] of valid) {
    it(`parses ${uri}`, () => {
      expect(parsePkcs11Uri(uri)).to.deep.equal(expected);
    });
  }

  // [input, fragment of the reason]
  const hostile: [string, string][] = [
    ['', 'scheme'],
    ['pkcs12:token=a', 'scheme'],
    ['token=a', 'scheme'],
    [' pkcs11:token=a', 'scheme'],
    ['pkcs11:token=a#frag', 'fragment'],
    ['pkcs11:token=a b', 'percent-encoded'],
    ['pkcs11:token=a/b', 'percent-encoded'],
    ['pkcs11:token=a"b', 'percent-encoded'],
    ['pkcs11:token=\u00e9', 'percent-encoded'],
    ['pkcs11:token=a\nb', 'percent-encoded'],
    ['pkcs11:token=%', 'malformed'],
    ['pkcs11:token=%4', 'malformed'],
    ['pkcs11:token=%zz', 'malformed'],
    ['pkcs11:token=%00admin', 'control'],
    ['pkcs11:object=a%0Ab', 'control'],
    ['pkcs11:token=%C3%28', 'UTF-8'],
    ['pkcs11:token=%FF', 'UTF-8'],
    ['pkcs11:token=', 'empty'],
    ['pkcs11:token', 'name=value'],
    ['pkcs11:=x', 'name=value'],
    ['pkcs11:token=a;', 'name=value'],
    ['pkcs11:token=a;;object=b', 'name=value'],
    ['pkcs11:token=a;token=b', 'twice'],
    ['pkcs11:Token=a', 'unknown path attribute'],
    ['pkcs11:pin-value=1234', 'unknown path attribute'],
    ['pkcs11:token=a?pin-value=1234', 'pin-value'],
    ['pkcs11:token=a?pin-source=relative/file', 'absolute'],
    ['pkcs11:token=a?pin-source=file://evil.example/pin', 'local absolute'],
    ['pkcs11:token=a?module-path=libsofthsm2.so', 'absolute'],
    ['pkcs11:token=a?module-path=/usr/../tmp/evil.so', 'absolute'],
    ['pkcs11:token=a?module-name=../evil', 'bare'],
    ['pkcs11:token=a?module-path=/a&module-path=/b', 'twice'],
    ['pkcs11:token=a?unknown=1', 'unknown query attribute'],
    ['pkcs11:token=a?module-path=/a;b', 'percent-encoded'],
    ['pkcs11:type=secret', '"type"'],
    ['pkcs11:slot-id=-1', 'slot-id'],
    ['pkcs11:slot-id=01', 'slot-id'],
    ['pkcs11:slot-id=4294967296', 'slot-id'],
    ['pkcs11:slot-id=1e3', 'slot-id'],
    ['pkcs11:library-version=v2', 'library-version'],
    ['pkcs11:id=', 'id'],
    [`pkcs11:token=${'a'.repeat(33)}`, '32 bytes'],
    [`pkcs11:token=${'%C3%A9'.repeat(17)}`, '32 bytes'],
    [`pkcs11:object=${'a'.repeat(5000)}`, 'longer than'],
  ];
  for (const [uri, reason] of hostile) {
    it(`rejects ${JSON.stringify(uri.slice(0, 60))}`, () => {
      let caught: unknown;
      try {
        parsePkcs11Uri(uri);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(HsmError);
      const err = caught as HsmError;
      expect(err.code).to.equal('HSM_INVALID_URI');
      expect(err.message).to.include(reason);
    });
  }

  it('never echoes a pin-value in its error', () => {
    expect(() => parsePkcs11Uri('pkcs11:token=a?pin-value=s3cr3t-PIN'))
      .to.throw(HsmError)
      .and.satisfy((err: HsmError) => !err.message.includes('s3cr3t'));
  });
});

describe('formatPkcs11Uri', () => {
  const cases = [
    { token: 'keyfleet', object: 'device-ca', type: 'private' as const },
    { token: 'a;b=c?d&e/f#g%h', object: 'spaces and ünïcode', id: new Uint8Array([0, 59, 255, 37]) },
    { object: 'k' },
  ];
  for (const parts of cases) {
    it(`round-trips ${JSON.stringify(parts.object)}`, () => {
      expect(parsePkcs11Uri(formatPkcs11Uri(parts))).to.deep.equal(parts);
    });
  }
});
