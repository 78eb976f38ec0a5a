import { execFileSync, spawnSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { connect, hash, signers, type Gateway } from '@hyperledger/fabric-gateway';
import { expect } from 'chai';
import type { TrustAnchorRecord } from '@keyfleet/protocol';
import {
  asPrincipal,
  newLedgerClient,
  readOrganization,
  type LedgerClient,
  type LedgerTransport,
} from '@keyfleet/gateway';
import { newSoftwareKey } from '@keyfleet/gateway/testing';
import { networkScriptAt, shardNetwork } from './support/network';

const repoRoot = resolve(__dirname, '..', '..');

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

  it("deploys keyfleet again after another name's code: the chaincode servers serve keyfleet's code again", () => {
    // network.sh runs one pair of chaincode servers per network: deploying another folder replaces
    // their code, and deploying keyfleet's again (already committed) must put it back.
    shard('deploy', join(repoRoot, 'bench', 'baseline-chaincode'), '--name', 'baseline');
    shard('deploy');
    for (const channel of shards) {
      const listed = JSON.parse(
        peerCli(
          'Org2',
          'auditor',
          channel,
          'peer chaincode query -C "$KEYFLEET_CHANNEL" -n keyfleet -c \'{"Args":["ListTrustAnchors"]}\'',
        ),
      ) as TrustAnchorRecord[];
      // The baseline's code would refuse the call (it has only Put); keyfleet's answers a list.
      expect(listed, channel).to.be.an('array');
    }
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
