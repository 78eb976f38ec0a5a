import { LocalLedger, newCa, newIdentity } from '@keyfleet/chaincode/testing';
import { expect } from 'chai';
import { ErrorCode, type KeyRecord, type Page, type ShardMapRecord } from '@keyfleet/protocol';
import { GatewayError } from '../errors';
import { newLocalTransport } from '../testing/local-transport';
import { newSoftwareKey } from '../testing/software-key';
import { newLedgerClient, type LedgerClient } from './ledger-client';
import { ledgerPort, ledgerRefusalCode } from './port';
import { asPrincipal } from './principal-context';
import { newShardDirectory, type ShardHit } from './shard-directory';
import { newShardRouter, parseBookmark, type ShardChannel, type ShardRouter } from './shard-router';

const channels = ['keyfleet', 'keyfleet-shard1', 'keyfleet-shard2'];
const any = { Group: null, Location: null, Function: null };
const alice = { Kind: 'operator', ID: 'alice' } as const;
const fingerprint = (id: string) => Buffer.from(id.padEnd(32, '.')).toString('hex').slice(0, 64);

/** Three shard channels and a governance channel, each the contract in process, as one operator. */
async function newWorld() {
  const org1 = await newCa('Org1');
  const operator = await newIdentity(org1, {
    mspId: 'Org1MSP',
    cn: 'gateway-1',
    ou: 'admin',
    attrs: { role: 'operator' },
  });
  const key = newSoftwareKey('metadata-signing');
  const { x, y } = key.publicKey.export({ format: 'jwk' });
  const open = async (channel: string): Promise<ShardChannel & { local: LocalLedger }> => {
    const local = new LocalLedger();
    const transport = newLocalTransport(local, { mspId: operator.mspId, certificatePem: operator.pem });
    const client = newLedgerClient({ transport, signingKey: key, anchorId: 'hsm-metadata-1' });
    await asPrincipal(alice, () =>
      client.write('RegisterTrustAnchor', {
        AnchorID: 'hsm-metadata-1',
        Kind: 'metadata-signing',
        PublicKey: { kty: 'EC', crv: 'P-256', x, y },
        Description: `the metadata key on ${channel}`,
      }),
    );
    return { channel, client, local };
  };
  const shards: (ShardChannel & { local: LocalLedger })[] = [];
  for (const channel of channels) shards.push(await open(channel));
  const governance = await open('keyfleet-governance');
  let clock = 0;
  const router = (options: { mapTtlMs?: number } = {}): ShardRouter =>
    newShardRouter({ shards, governance, now: () => clock, ...options });
  return {
    shards,
    governance,
    router,
    tick: (ms: number) => (clock += ms),
    /** Which shards hold this device, read from each channel directly (not through a router). */
    async holders(deviceId: string): Promise<number[]> {
      const found: number[] = [];
      for (const [index, { client }] of shards.entries()) {
        if ((await ledgerPort(client).devices.get(deviceId)) !== null) found.push(index);
      }
      return found;
    },
    async keyHolders(keyId: string): Promise<number[]> {
      const found: number[] = [];
      for (const [index, { client }] of shards.entries()) {
        if ((await ledgerPort(client).keys.get(keyId)) !== null) found.push(index);
      }
      return found;
    },
  };
}
type World = Awaited<ReturnType<typeof newWorld>>;

const enrol = (ledger: LedgerClient, id: string, group: string, location = 'lab', fn = 'sensor') =>
  asPrincipal(alice, () =>
    ledgerPort(ledger).devices.enrol({
      DeviceID: id,
      Group: group,
      Location: location,
      Function: fn,
      CertFingerprint: fingerprint(id),
      EnrolmentNonceDigest: null,
    }),
  );

const setMap = (ledger: LedgerClient, revision: number, rules: unknown[], fallback = 'keyfleet') =>
  asPrincipal(alice, () =>
    ledger.write<ShardMapRecord>('SetShardMap', {
      ExpectedRevision: revision,
      Shards: channels,
      Rules: rules,
      Default: fallback,
    }),
  );

const registerKey = (ledger: LedgerClient, keyId: string, owner: { Type: string; ID: string }) =>
  asPrincipal(alice, () =>
    ledger.write<KeyRecord>('RegisterKey', {
      KeyID: keyId,
      Owner: owner,
      Algorithm: 'AES-256',
      Purpose: 'encrypt',
      RotationPolicy: { IntervalSeconds: 86_400, GraceSeconds: 3_600, RetentionSeconds: 86_400, Triggers: [] },
      AccessPolicy: {
        Read: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
        Use: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
        Rotate: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
        Administer: [{ MSPID: 'Org1MSP', Role: 'operator', ID: null }],
      },
      InitialVersion: {
        Fingerprint: fingerprint(`${keyId}:1`),
        FingerprintType: 'spki-sha256',
        Pkcs11URI: `pkcs11:token=keyfleet;object=${keyId}-v1;type=secret-key`,
        WrappedKeyDigest: null,
      },
      InitialState: 'active',
      NextKeyCommitment: null,
    }),
  );

const rules = [
  { Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard1' },
  { Match: { ...any, Group: 'pumps', Location: 'north' }, Shard: 'keyfleet-shard2' },
];

/** The LEDGER_REJECTED code (or other gateway code) a promise fails with. */
async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof GatewayError) return ledgerRefusalCode(err) ?? err.detail ?? err.code;
    throw err;
  }
  return expect.fail('expected a refusal');
}

describe('the shard router: each call on the channel that holds its record', function () {
  this.timeout(20_000);
  let w: World;
  beforeEach(async () => {
    w = await newWorld();
  });

  it('places every device on shard 0 while no map is written', async () => {
    const router = w.router();
    const { record } = await enrol(router, 'dev-1', 'meters');
    expect(record.Shard).to.equal(0);
    expect(await w.holders('dev-1')).to.deep.equal([0]);
  });

  it('places devices by the map, writes the shard in the record, and finds them again from a fresh router', async () => {
    await setMap(w.router(), 0, rules);
    const router = w.router();
    const devices: [string, string, string, number][] = [
      ['m-1', 'meters', 'lab', 1],
      ['m-2', 'meters', 'north', 1],
      ['p-1', 'pumps', 'north', 2],
      ['p-2', 'pumps', 'south', 0],
      ['x-1', 'other', 'lab', 0],
    ];
    for (const [id, group, location, shard] of devices) {
      const { record } = await enrol(router, id, group, location);
      expect(record.Shard, id).to.equal(shard);
      expect(await w.holders(id), id).to.deep.equal([shard]);
    }
    // A router that enrolled nothing (another gateway) asks the shards and finds each one.
    const other = ledgerPort(w.router());
    for (const [id, group] of devices) {
      expect((await other.devices.require(id)).Group, id).to.equal(group);
    }
    expect(await other.devices.get('nobody')).to.equal(null);
    expect(await refusal(other.devices.require('nobody'))).to.equal(ErrorCode.DeviceNotFound);
  });

  it('reads a device’s history over every shard it lived on, newest first; found nowhere is NOT_FOUND', async () => {
    // The device's first life on shard 0, a later one on shard 2 (as after a move), written directly.
    const first = await enrol(w.shards[0]?.client ?? expect.fail(), 'mover-1', 'meters');
    await new Promise((done) => setTimeout(done, 5));
    const second = await enrol(w.shards[2]?.client ?? expect.fail(), 'mover-1', 'meters');
    const history = await ledgerPort(w.router()).devices.history('mover-1');
    expect(history.map((e) => e.TxID)).to.deep.equal([second.transactionId, first.transactionId]);
    expect(await refusal(ledgerPort(w.router()).devices.history('nobody'))).to.equal(ErrorCode.DeviceNotFound);
  });

  it('writes a device’s status changes and keys on its shard; application keys on shard 0', async () => {
    await setMap(w.router(), 0, rules);
    await enrol(w.router(), 'p-1', 'pumps', 'north');
    const router = w.router();
    await asPrincipal(alice, () => ledgerPort(router).devices.suspend({ DeviceID: 'p-1', Reason: 'test' }));
    expect((await ledgerPort(w.shards[2]?.client ?? expect.fail()).devices.require('p-1')).Status).to.equal(
      'suspended',
    );
    await asPrincipal(alice, () => ledgerPort(router).devices.reinstate({ DeviceID: 'p-1', Reason: 'test' }));

    await registerKey(router, 'k-device', { Type: 'device', ID: 'p-1' });
    await registerKey(router, 'k-app', { Type: 'application', ID: 'billing' });
    expect(await w.keyHolders('k-device')).to.deep.equal([2]);
    expect(await w.keyHolders('k-app')).to.deep.equal([0]);

    // Another gateway finds the device's key through the shards, and writes to it there.
    const other = w.router();
    await asPrincipal(alice, () =>
      ledgerPort(other).keys.markCompromised({ KeyID: 'k-device', Version: 1, Reason: 'test' }),
    );
    const onShard = await ledgerPort(w.shards[2]?.client ?? expect.fail()).keys.require('k-device');
    expect(onShard.Versions[0]?.State).to.equal('compromised');
  });

  it('pages a list through every shard, each record once, with its own bookmarks', async () => {
    await setMap(w.router(), 0, rules);
    const router = w.router();
    const pumps = ['p-1', 'p-2', 'p-3', 'p-4', 'p-5'];
    for (const [i, id] of pumps.entries()) await enrol(router, id, 'pumps', i % 2 === 0 ? 'north' : 'south');
    await enrol(router, 'm-1', 'meters');
    for (const size of [1, 2, 3, 10]) {
      const seen: string[] = [];
      let bookmark = '';
      for (let pages = 0; pages < 20; pages++) {
        const page = await ledgerPort(router).devices.listByGroup('pumps', size, bookmark);
        expect(page.Records.length, `page size ${String(size)}`).to.be.at.most(size);
        seen.push(...page.Records.map((d) => d.DeviceID));
        bookmark = page.Bookmark;
        if (bookmark === '') break;
      }
      expect([...seen].sort(), `page size ${String(size)}`).to.deep.equal(pumps);
    }
  });

  it('refuses a bookmark it did not hand out with INVALID_ARGUMENT, as the contract does', async () => {
    const router = w.router();
    const hostile = ['x', '3:', '9:', '-1:', '01:', '1', ':', '1x:', '9999:', ' 1:', '1:\u0000device~group'];
    for (const mark of hostile) {
      expect(await refusal(ledgerPort(router).devices.listByGroup('pumps', 5, mark)), JSON.stringify(mark)).to.equal(
        ErrorCode.InvalidArgument,
      );
    }
  });

  it('parses only the bookmarks it makes', () => {
    const table: [string, number, ReturnType<typeof parseBookmark>][] = [
      ['', 3, { shard: 0, bookmark: '' }],
      ['0:', 3, { shard: 0, bookmark: '' }],
      ['2:abc:def', 3, { shard: 2, bookmark: 'abc:def' }],
      ['3:', 3, null],
      ['02:', 3, null],
      ['a:', 3, null],
      ['-0:', 3, null],
      ['1', 3, null],
      ['1e1:', 30, null],
    ];
    for (const [mark, shards, parsed] of table) expect(parseBookmark(mark, shards), mark).to.deep.equal(parsed);
  });

  it('lists keys due for rotation on every shard', async () => {
    await setMap(w.router(), 0, rules);
    const router = w.router();
    await enrol(router, 'm-1', 'meters');
    await enrol(router, 'p-1', 'pumps', 'north');
    await registerKey(router, 'k-m', { Type: 'device', ID: 'm-1' });
    await registerKey(router, 'k-p', { Type: 'device', ID: 'p-1' });
    await registerKey(router, 'k-a', { Type: 'application', ID: 'billing' });
    const later = new Date(Date.now() + 400 * 86_400_000).toISOString();
    const due: string[] = [];
    let bookmark = '';
    do {
      const page: Page<{ KeyID: string }> = await ledgerPort(router).keys.dueForRotation(later, 1, bookmark);
      due.push(...page.Records.map((k) => k.KeyID));
      bookmark = page.Bookmark;
    } while (bookmark !== '');
    expect(due.sort()).to.deep.equal(['k-a', 'k-m', 'k-p']);
  });

  it('records acknowledgements of keys on several shards, one write per shard, outcomes in order', async () => {
    await setMap(w.router(), 0, rules);
    const router = w.router();
    await enrol(router, 'm-1', 'meters');
    await enrol(router, 'p-1', 'pumps', 'north');
    await registerKey(router, 'k-m', { Type: 'device', ID: 'm-1' });
    await registerKey(router, 'k-p', { Type: 'device', ID: 'p-1' });
    const acks = [
      { NonceDigest: 'a1'.repeat(32), KeyID: 'k-p', Version: 1 },
      { NonceDigest: 'b2'.repeat(32), KeyID: 'k-m', Version: 1 },
      { NonceDigest: 'c3'.repeat(32), KeyID: 'k-p', Version: 1 },
    ];
    const { record } = await asPrincipal(alice, () => ledgerPort(w.router()).nonces.recordRotationAcks({ Acks: acks }));
    expect(record.Acks.map((a) => a.NonceDigest)).to.deep.equal(acks.map((a) => a.NonceDigest));
    const where = async (digest: string) => {
      const found: number[] = [];
      for (const [i, { client }] of w.shards.entries()) {
        if ((await ledgerPort(client).nonces.get(digest)) !== null) found.push(i);
      }
      return found;
    };
    expect(await where(acks[0]?.NonceDigest ?? '')).to.deep.equal([2]);
    expect(await where(acks[1]?.NonceDigest ?? '')).to.deep.equal([1]);
    // GetNonce asks every shard.
    expect(await ledgerPort(w.router()).nonces.get(acks[1]?.NonceDigest ?? '')).to.not.equal(null);
  });

  it('keeps reading the map for its TTL; a SetShardMap through the router takes effect at once', async () => {
    const router = w.router({ mapTtlMs: 5_000 });
    await enrol(router, 'a-1', 'meters'); // no map yet: shard 0, and "no map" is cached too
    await setMap(w.governance.client, 0, rules); // another gateway writes the map
    await enrol(router, 'a-2', 'meters');
    expect(await w.holders('a-2')).to.deep.equal([0]);
    w.tick(5_000);
    await enrol(router, 'a-3', 'meters');
    expect(await w.holders('a-3')).to.deep.equal([1]);
    await setMap(router, 1, [{ Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard2' }]);
    await enrol(router, 'a-4', 'meters');
    expect(await w.holders('a-4')).to.deep.equal([2]);
  });

  it('refuses to place a device on a channel the network lacks, and writes nothing', async () => {
    const threeOfTwo = newShardRouter({ shards: w.shards.slice(0, 2), governance: w.governance });
    await setMap(w.router(), 0, [{ Match: { ...any, Group: 'pumps' }, Shard: 'keyfleet-shard2' }]);
    expect(await refusal(enrol(threeOfTwo, 'p-9', 'pumps'))).to.equal('SHARD_UNKNOWN');
    expect(await w.holders('p-9')).to.deep.equal([]);
  });

  it('will not guess when a device is on two shards, unless told how to choose', async () => {
    await enrol(w.shards[0]?.client ?? expect.fail(), 'twin', 'meters');
    await enrol(w.shards[2]?.client ?? expect.fail(), 'twin', 'meters');
    expect(await refusal(ledgerPort(w.router()).devices.get('twin'))).to.equal('SHARD_AMBIGUOUS');
    const chooser = newShardRouter({
      shards: w.shards,
      governance: w.governance,
      chooseShard: (_id, hits) => Math.max(...hits.map((h) => h.shard)),
    });
    await asPrincipal(alice, () => ledgerPort(chooser).devices.suspend({ DeviceID: 'twin', Reason: 'moved' }));
    expect((await ledgerPort(w.shards[2]?.client ?? expect.fail()).devices.require('twin')).Status).to.equal(
      'suspended',
    );
    expect((await ledgerPort(w.shards[0]?.client ?? expect.fail()).devices.require('twin')).Status).to.equal('active');
  });

  it('routes a device by assignDevice from then on (the re-sharding seam)', async () => {
    const router = w.router();
    await enrol(router, 'mover', 'meters');
    await enrol(w.shards[1]?.client ?? expect.fail(), 'mover', 'meters'); // the move's copy on shard 1
    router.directory.assignDevice('mover', 1);
    await asPrincipal(alice, () =>
      ledgerPort(router).devices.revoke({ DeviceID: 'mover', Reason: 'unspecified', Comment: null }),
    );
    expect((await ledgerPort(w.shards[1]?.client ?? expect.fail()).devices.require('mover')).Status).to.equal(
      'revoked',
    );
    expect((await ledgerPort(w.shards[0]?.client ?? expect.fail()).devices.require('mover')).Status).to.equal('active');
  });

  it('registers trust anchors on every channel, the governance channel too', async () => {
    const router = w.router();
    const key = newSoftwareKey('device-ca');
    const { x, y } = key.publicKey.export({ format: 'jwk' });
    await asPrincipal(alice, () =>
      ledgerPort(router).anchors.register({
        AnchorID: 'device-ca-1',
        Kind: 'device-ca',
        PublicKey: { kty: 'EC', crv: 'P-256', x: x ?? '', y: y ?? '' },
        Description: 'the device CA',
      }),
    );
    for (const { channel, client } of [...w.shards, w.governance]) {
      const ids = (await ledgerPort(client).anchors.list()).map((a) => a.AnchorID);
      expect(ids, channel).to.include('device-ca-1');
    }
  });

  it('answers an unknown device’s reads from shard 0, with the contract’s own refusal', async () => {
    const hostile = ['', 'a'.repeat(300), 'dev/../x', 'dev\u0000'];
    for (const id of hostile) {
      const code = await refusal(ledgerPort(w.router()).devices.require(id));
      expect([ErrorCode.InvalidArgument, ErrorCode.DeviceNotFound], JSON.stringify(id)).to.include(code);
    }
  });
});

describe('the shard directory: device → shard, one lookup at a time', () => {
  const probeOf = (devices: Record<string, number[]>) => {
    const calls: string[] = [];
    const hits = (id: string): ShardHit<unknown>[] => (devices[id] ?? []).map((shard) => ({ shard, record: {} }));
    return {
      calls,
      probe: {
        device: async (id: string) => {
          calls.push(id);
          await Promise.resolve();
          return hits(id);
        },
        key: () => Promise.resolve([]),
        batch: () => Promise.resolve([]),
      },
    };
  };

  it('asks the shards once for concurrent misses and remembers the answer', async () => {
    const { calls, probe } = probeOf({ d: [2] });
    const directory = newShardDirectory({ probe });
    const answers = await Promise.all([1, 2, 3, 4].map(() => directory.deviceShard('d')));
    expect(answers).to.deep.equal([2, 2, 2, 2]);
    expect(await directory.deviceShard('d')).to.equal(2);
    expect(calls).to.deep.equal(['d']);
  });

  it('caches no miss, and forgets on request', async () => {
    const { calls, probe } = probeOf({ d: [1] });
    const directory = newShardDirectory({ probe });
    expect(await directory.deviceShard('nobody')).to.equal(null);
    expect(await directory.deviceShard('nobody')).to.equal(null);
    await directory.deviceShard('d');
    directory.forgetDevice('d');
    await directory.deviceShard('d');
    expect(calls).to.deep.equal(['nobody', 'nobody', 'd', 'd']);
  });

  it('keeps at most its capacity, dropping the oldest', async () => {
    const { calls, probe } = probeOf({ a: [0], b: [1], c: [2] });
    const directory = newShardDirectory({ probe, capacity: 2 });
    for (const id of ['a', 'b', 'c', 'a']) await directory.deviceShard(id);
    expect(calls).to.deep.equal(['a', 'b', 'c', 'a']);
  });

  it('finds a device key through its owner: the key moves when the device does', async () => {
    const { probe } = probeOf({});
    const directory = newShardDirectory({ probe });
    directory.assignDevice('d', 1);
    directory.noteKey('k', { device: 'd' });
    directory.noteKey('app', 'home');
    expect(await directory.keyShard('k')).to.equal(1);
    directory.assignDevice('d', 3);
    expect(await directory.keyShard('k')).to.equal(3);
    expect(await directory.keyShard('app')).to.equal(0);
  });
});
