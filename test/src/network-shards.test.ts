import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers, type Gateway } from '@hyperledger/fabric-gateway';
import { expect } from 'chai';
import type { DeviceRecord, KeyRecord, TrustAnchorRecord } from '@keyfleet/protocol';
import {
  asPrincipal,
  ledgerPort,
  newLedgerClient,
  readOrganization,
  type LedgerClient,
  type LedgerTransport,
} from '@keyfleet/gateway';
import { newSoftwareKey } from '@keyfleet/gateway/testing';
import { newFleet, runScenario, type Fleet, type FleetSummary } from '@keyfleet/agent/fleet';
import { networkScriptAt, shardNetwork } from './support/network';
import { startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';

const repoRoot = resolve(__dirname, '..', '..');
const cli = join(repoRoot, 'gateway', 'dist', 'cli', 'keyfleet.js');
const execFileAsync = promisify(execFile);

/**
 * `network.sh up --shards N` (issue 15 item 1, the network's part): N shard channels plus the
 * governance channel, keyfleet's chaincode committed on each. Its own network on
 * KEYFLEET_TEST_PORT_BASE+610 (support/network.ts), up only in this suite.
 */
describe('a sharded network (up --shards 2): a channel per shard and a governance channel', function () {
  this.timeout(300_000);
  const { dir } = shardNetwork;
  const shard = (...args: string[]) => networkScriptAt(dir, shardNetwork.portBase, ...args);
  const connection = join(dir, 'connection.json');
  const shards = ['keyfleet', 'keyfleet-shard1'];
  const everyChannel = [...shards, 'keyfleet-governance'];

  before(() => {
    shard('up', '--shards', '2');
    shard('deploy');
  });
  after(() => {
    shard('down');
  });

  /** Fabric's peer CLI as IDENTITY of ORG on CHANNEL, with what `network.sh env … --channel` exports. */
  const peerCli = (org: string, identity: string, channel: string, command: string, ...args: string[]) =>
    execFileSync('bash', ['-c', `${shard('env', org, identity, '--channel', channel)}\n${command}`, 'cli', ...args], {
      encoding: 'utf8',
    });

  it('lists the shard channels and the governance channel; shard 0 is keyfleet, as unsharded', () => {
    const profile = JSON.parse(readFileSync(connection, 'utf8')) as { channel: string; channels: unknown };
    expect(profile.channel).to.equal('keyfleet');
    expect(profile.channels).to.deep.equal({ shards, governance: 'keyfleet-governance' });
  });

  it('commits the same chaincode definition on every channel, as Org2 sees it', () => {
    const definitions = everyChannel.map(
      (channel) =>
        JSON.parse(
          peerCli(
            'Org2',
            'admin',
            channel,
            'peer lifecycle chaincode querycommitted -C "$KEYFLEET_CHANNEL" -n keyfleet -O json',
          ),
        ) as { sequence: number; version: string; approvals: Record<string, boolean> },
    );
    for (const definition of definitions) {
      expect(definition).to.deep.include({ sequence: 1, approvals: { Org1MSP: true, Org2MSP: true } });
      expect(definition.version).to.equal(definitions[0]?.version);
    }
  });

  it('commits a write on each shard through fabric-gateway; Org2 reads it on that shard only', async () => {
    const before = heights(shard('status'));
    const anchors = new Map<string, string>();
    for (const [index, channel] of shards.entries()) {
      const anchorId = `shard-${String(index)}-metadata`;
      anchors.set(channel, anchorId);
      await onChannel(channel, anchorId, async (ledger, record) => {
        expect(record).to.include({ AnchorID: anchorId, Kind: 'metadata-signing' });
        const read = await ledger.read<TrustAnchorRecord>('GetTrustAnchor', anchorId);
        expect(read).to.deep.equal(record);
      });
    }
    // Fabric's own CLI, as Org2's auditor: each shard holds its own write and not the other's.
    for (const channel of shards) {
      const listed = JSON.parse(
        peerCli(
          'Org2',
          'auditor',
          channel,
          'peer chaincode query -C "$KEYFLEET_CHANNEL" -n keyfleet -c \'{"Args":["ListTrustAnchors"]}\'',
        ),
      ) as TrustAnchorRecord[];
      expect(
        listed.map((a) => a.AnchorID),
        channel,
      ).to.deep.equal([anchors.get(channel)]);
    }
    const governance = JSON.parse(
      peerCli(
        'Org2',
        'auditor',
        'keyfleet-governance',
        'peer chaincode query -C "$KEYFLEET_CHANNEL" -n keyfleet -c \'{"Args":["ListTrustAnchors"]}\'',
      ),
    ) as unknown[];
    expect(governance).to.deep.equal([]);

    // status: every channel on every peer; the shards grew, the governance channel did not.
    const after = heights(shard('status'));
    expect([...after.keys()].sort()).to.deep.equal(
      ['peer0.org1', 'peer0.org2'].flatMap((peer) => everyChannel.map((c) => `${peer} ${c}`)).sort(),
    );
    for (const peer of ['peer0.org1', 'peer0.org2']) {
      for (const channel of shards) {
        expect(after.get(`${peer} ${channel}`), `${peer} ${channel}`).to.be.above(
          before.get(`${peer} ${channel}`) ?? 0,
        );
      }
      const governanceHeight = `${peer} keyfleet-governance`;
      expect(after.get(governanceHeight)).to.equal(before.get(governanceHeight));
    }
  });

  it('keeps the shard map on the governance channel: an operator writes it, Org2 reads and resolves it', async () => {
    const profile = JSON.parse(readFileSync(connection, 'utf8')) as {
      channels: { shards: string[]; governance: string };
    };
    const { governance } = profile.channels;
    const map = await onChannel(governance, 'governance-metadata', async (ledger) => {
      const any = { Group: null, Location: null, Function: null };
      const { record } = await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        ledger.write<{ Revision: number }>('SetShardMap', {
          ExpectedRevision: 0,
          Shards: profile.channels.shards,
          Rules: [{ Match: { ...any, Group: 'meters' }, Shard: 'keyfleet-shard1' }],
          Default: 'keyfleet',
        }),
      );
      return record;
    });
    expect(map).to.include({ Revision: 1 });
    const query = (...args: string[]) =>
      JSON.parse(
        peerCli(
          'Org2',
          'auditor',
          governance,
          'peer chaincode query -C "$KEYFLEET_CHANNEL" -n keyfleet -c "$1"',
          JSON.stringify({ Args: args }),
        ),
      ) as unknown;
    expect(query('GetShardMap')).to.deep.equal(map);
    expect(query('ResolveShard', 'meters', 'north', '')).to.deep.equal({
      Shard: 'keyfleet-shard1',
      Rule: 0,
      Revision: 1,
    });
    expect(query('ResolveShard', 'pumps', '', '')).to.deep.equal({ Shard: 'keyfleet', Rule: null, Revision: 1 });
    // The map is the governance channel's alone.
    expect(() =>
      peerCli(
        'Org2',
        'auditor',
        'keyfleet',
        'peer chaincode query -C keyfleet -n keyfleet -c \'{"Args":["GetShardMap"]}\'',
      ),
    ).to.throw(/SHARD_MAP_NOT_FOUND/);
  });

  it('refuses env for a channel it does not have, and up with another shard count', () => {
    for (const channel of ['keyfleet-shard2', 'other', 'KEYFLEET', 'keyfleet-governance2']) {
      expect(refusal('env', 'Org2', 'auditor', '--channel', channel), channel).to.include(
        `--channel ${channel}: not a channel of this network (${everyChannel.join(' ')})`,
      );
    }
    expect(refusal('up', '--shards', '3')).to.include('has other channels');
    expect(shard('env', 'Org2', 'auditor', '--channel', 'keyfleet-shard1')).to.include(
      "export KEYFLEET_CHANNEL='keyfleet-shard1'",
    );
  });

  it('refuses a shard count that is not 1 to 8, and makes nothing', () => {
    const elsewhere = `${dir}-refused`;
    const hostile: [string, string][] = [
      ['0', 'a number of shard channels from 1 to 8'],
      ['9', 'a number of shard channels from 1 to 8'],
      ['-1', 'a number of shard channels from 1 to 8'],
      ['two', 'a number of shard channels from 1 to 8'],
      ['2x', 'a number of shard channels from 1 to 8'],
      ['01', 'a number of shard channels from 1 to 8'],
      ['', '--shards needs a number'],
    ];
    for (const [count, message] of hostile) {
      expect(refusalAt(elsewhere, 'up', '--shards', count), count).to.include(message);
      expect(() => readdirSync(elsewhere), count).to.throw(/ENOENT/);
    }
  });

  /**
   * The gateway and the verifier on this network (issue 15 item 1): a map written through the
   * gateway, a fleet of two groups enrolled, attested and rotated through it, and each device's
   * records found by Org2's peer CLI on its shard and nowhere else.
   */
  describe('the gateway routes each request by the shard map', function () {
    let f: GatewayFixture;
    let workDir: string;
    let fleet: Fleet;
    let summary: FleetSummary;
    const groupShard: Record<string, string> = { 'grid-1': 'keyfleet', 'grid-2': 'keyfleet-shard1' };
    // A namespace of its own on every channel: the writes above registered other metadata anchors.
    const chaincode = 'kf-routed';

    /** `peer chaincode query` as Org2's auditor on CHANNEL: the parsed answer, or the error's text. */
    const query = (channel: string, ...args: string[]): { found: unknown } | { refused: string } => {
      try {
        return {
          found: JSON.parse(
            peerCli(
              'Org2',
              'auditor',
              channel,
              'peer chaincode query -C "$KEYFLEET_CHANNEL" -n "$2" -c "$1" 2>&1',
              JSON.stringify({ Args: args }),
              chaincode,
            ),
          ) as unknown,
        };
      } catch (err) {
        return { refused: String((err as { stdout?: string }).stdout ?? err) };
      }
    };
    /** The channels on which Org2's auditor finds the record. */
    const holders = (...args: string[]) => everyChannel.filter((channel) => 'found' in query(channel, ...args));

    const keyfleetCli = async (...args: string[]) => {
      const { stdout } = await execFileAsync(process.execPath, [cli, ...args, '--json'], {
        env: {
          ...process.env,
          KEYFLEET_URL: f.url,
          KEYFLEET_CA_FILE: join(f.dataDir, 'device-ca.pem'),
          KEYFLEET_CREDENTIALS: await f.credentialsFile(f.callers.operator),
          KEYFLEET_FABRIC_CONNECTION: connection,
        },
      });
      return JSON.parse(stdout) as Record<string, unknown>;
    };

    before(async () => {
      shard('deploy', '--name', chaincode);
      f = await startGatewayFixture({}, {}, { network: { connectionProfile: connection, chaincode } });
      const { map } = (await f.operator('GET', '/v1/shards')) as { map: { Revision: number } | null };
      await f.operator('PUT', '/v1/shards/map', {
        expectedRevision: map?.Revision ?? 0,
        shards,
        rules: [{ match: { group: 'grid-2', location: null, function: null }, shard: 'keyfleet-shard1' }],
        default: 'keyfleet',
      });
      workDir = mkdtempSync(join(tmpdir(), 'keyfleet-shard-fleet-'));
      fleet = newFleet({
        gatewayUrl: f.url,
        size: 6,
        tampered: 1,
        concurrency: 4,
        group: 'grid',
        groups: 2,
        idPrefix: 'sh',
        workDir,
        operatorAuthorization: () => f.bearer(f.callers.operator),
      });
      summary = await runScenario(fleet, { rounds: 1 });
    });
    after(async () => {
      // Unset when `before` failed early.
      await (f as GatewayFixture | undefined)?.close();
      const dir = workDir as string | undefined;
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    const devices = () =>
      fleet.devices().map((d, i) => ({
        ...d,
        group: fleet.groups[i % 2] ?? '',
        channel: groupShard[fleet.groups[i % 2] ?? ''] ?? '',
      }));

    it('enrols, attests and rotates the whole fleet through the router', () => {
      expect(fleet.groups).to.deep.equal(['grid-1', 'grid-2']);
      expect(summary.enrolled).to.equal(6);
      expect(summary.verdicts).to.deep.equal({ affirming: 5, contraindicated: 1 });
      expect(summary.rotations).to.equal(5);
    });

    it('keeps each device, its key and its attestations on its shard only, as Org2 reads them', () => {
      for (const device of devices()) {
        expect(holders('GetDevice', device.id), device.id).to.deep.equal([device.channel]);
        expect(holders('GetKey', device.keyId), device.keyId).to.deep.equal([device.channel]);
        const record = query(device.channel, 'GetDevice', device.id);
        const found = ('found' in record ? record.found : expect.fail(JSON.stringify(record))) as DeviceRecord;
        expect(found.Shard, device.id).to.equal(shards.indexOf(device.channel));
        expect(found.Group).to.equal(device.group);
        const attestations = everyChannel.map((channel) => {
          const page = query(channel, 'ListAttestations', device.id, '10', '');
          return 'found' in page ? (page.found as { Records: unknown[] }).Records.length : 0;
        });
        expect(attestations, device.id).to.deep.equal(everyChannel.map((c) => (c === device.channel ? 1 : 0)));
      }
    });

    it('rotates and attests the devices of the non-zero shard there', () => {
      const onShard1 = devices().filter((d) => d.channel === 'keyfleet-shard1');
      expect(onShard1).to.have.length(3);
      for (const device of onShard1) {
        const key = query('keyfleet-shard1', 'GetKey', device.keyId);
        const record = ('found' in key ? key.found : expect.fail(JSON.stringify(key))) as KeyRecord;
        const deviceRecord = query('keyfleet-shard1', 'GetDevice', device.id);
        const status = (('found' in deviceRecord ? deviceRecord.found : {}) as DeviceRecord).LastAttestation?.Status;
        if (device.tampered) {
          expect(status, device.id).to.equal('contraindicated');
          expect(record.ActiveVersion, device.keyId).to.equal(1);
        } else {
          expect(status, device.id).to.equal('affirming');
          expect(record.ActiveVersion, device.keyId).to.equal(2);
        }
      }
    });

    it('finds keys due for rotation on every shard, as the scheduler asks', async () => {
      const router = f.gateway.shardRouter ?? expect.fail('the gateway did not open its shards');
      expect(router.channels).to.deep.equal(shards);
      const later = new Date(Date.now() + 3650 * 86_400_000).toISOString();
      const due: string[] = [];
      let bookmark = '';
      do {
        const page = await ledgerPort(router).keys.dueForRotation(later, 2, bookmark);
        due.push(...page.Records.map((k) => k.KeyID));
        bookmark = page.Bookmark;
      } while (bookmark !== '');
      expect(due.sort()).to.deep.equal(
        devices()
          .map((d) => d.keyId)
          .sort(),
      );
    });

    it('shows the map and each shard’s devices, keys and height in keyfleet shards', async () => {
      const overview = (await keyfleetCli('shards')) as {
        map: { Rules: unknown[]; Default: string };
        shards: { channel: string; devices: number; keys: number; blockHeight: number }[];
      };
      expect(overview.map.Default).to.equal('keyfleet');
      expect(overview.map.Rules).to.have.length(1);
      const status = heights(shard('status'));
      expect(overview.shards.map((s) => [s.channel, s.devices, s.keys])).to.deep.equal([
        ['keyfleet', 3, 3],
        ['keyfleet-shard1', 3, 3],
      ]);
      for (const s of overview.shards) {
        expect(s.blockHeight, s.channel).to.be.above(1);
        expect(s.blockHeight, s.channel).to.be.at.most(status.get(`peer0.org1 ${s.channel}`) ?? 0);
      }
    });

    it('audits a device of shard 1: its history from its shard, its blocks found there', async () => {
      const device = devices().find((d) => d.channel === 'keyfleet-shard1') ?? expect.fail('no device on shard 1');
      const audit = (await keyfleetCli('audit', 'device', device.id)) as {
        entries: { transactionId: string }[];
        blocks: Record<string, number>;
      };
      expect(audit.entries.length).to.be.at.least(2);
      for (const { transactionId } of audit.entries) {
        expect(audit.blocks[transactionId], transactionId).to.be.a('number');
      }
    });
  });

  /** Runs network.sh on this network, expecting it to fail: its standard error. */
  function refusal(...args: string[]): string {
    return refusalAt(dir, ...args);
  }

  function refusalAt(at: string, ...args: string[]): string {
    const run = spawnSync('bash', [join(repoRoot, 'network', 'network.sh'), ...args, '--dir', at], {
      env: { ...process.env, KEYFLEET_NETWORK_PORT_BASE: String(shardNetwork.portBase) },
      encoding: 'utf8',
    });
    expect(run.status, `network.sh ${args.join(' ')}`).to.not.equal(0);
    return run.stderr;
  }

  /**
   * Runs `use` with a ledger client on CHANNEL (as Org1's operator, principal alice) after the
   * bootstrap write of a fresh namespace there: a metadata-signing anchor signed by its own key.
   */
  async function onChannel<T>(
    channel: string,
    anchorId: string,
    use: (ledger: LedgerClient, anchor: TrustAnchorRecord) => Promise<T>,
  ): Promise<T> {
    const { gateway, client, transport } = openChannel(channel);
    try {
      const key = newSoftwareKey(anchorId);
      const { x, y } = key.publicKey.export({ format: 'jwk' });
      const ledger = newLedgerClient({ transport, signingKey: key, anchorId });
      const { record } = await asPrincipal({ Kind: 'operator', ID: 'alice' }, () =>
        ledger.write<TrustAnchorRecord>('RegisterTrustAnchor', {
          AnchorID: anchorId,
          Kind: 'metadata-signing',
          PublicKey: { kty: 'EC', crv: 'P-256', x, y },
          Description: `the metadata-signing key of ${channel}`,
        }),
      );
      return await use(ledger, record);
    } finally {
      gateway.close();
      client.close();
    }
  }

  /** Org1's operator (a file identity from Org1's CA) on CHANNEL, through the Fabric Gateway. */
  function openChannel(channel: string): { gateway: Gateway; client: grpc.Client; transport: LedgerTransport } {
    const org = readOrganization(connection, 'Org1');
    const peer = org.peers[0] ?? expect.fail('no peer of Org1');
    const operator = org.identities.operator ?? expect.fail('no operator identity');
    const [keyFile] = readdirSync(operator.privateKeyDir);
    const client = new grpc.Client(peer.endpoint, grpc.credentials.createSsl(readFileSync(peer.tlsRootCert)), {
      'grpc.ssl_target_name_override': peer.hostAlias,
    });
    const deadline = () => ({ deadline: Date.now() + 30_000 });
    const gateway = connect({
      client,
      identity: { mspId: org.mspId, credentials: readFileSync(operator.certificate) },
      signer: signers.newPrivateKeySigner(createPrivateKey(readFileSync(join(operator.privateKeyDir, keyFile ?? '')))),
      hash: hash.sha256,
      evaluateOptions: deadline,
      endorseOptions: deadline,
      submitOptions: deadline,
      commitStatusOptions: deadline,
    });
    const contract = gateway.getNetwork(channel).getContract('keyfleet');
    const transport: LedgerTransport = {
      async submit(transaction, args) {
        const endorsed = await contract.newProposal(transaction, { arguments: [...args] }).endorse();
        const status = await (await endorsed.submit()).getStatus();
        expect(status.successful, `${transaction} on ${channel}: status ${String(status.code)}`).to.be.true;
        return { payload: endorsed.getResult(), transactionId: endorsed.getTransactionId() };
      },
      evaluate: (transaction, args) => contract.evaluateTransaction(transaction, ...args),
      close: () => Promise.resolve(),
    };
    return { gateway, client, transport };
  }
});

/** `network.sh status`'s height lines: "PEER CHANNEL" → block height. */
function heights(status: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const [, peer, channel, height] of status.matchAll(/^(\S+)\s+(\S+) block height (\d+)$/gm)) {
    found.set(`${peer ?? ''} ${channel ?? ''}`, Number(height));
  }
  return found;
}
