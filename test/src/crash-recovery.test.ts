import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, type Agent } from '@keyfleet/agent';
import type { KeyRecord } from '@keyfleet/protocol';
import { newHsm, type Hsm } from '@keyfleet/gateway';
import { createSoftHsmStore, softHsmModule, type SoftHsmStore } from '@keyfleet/gateway/testing';
import {
  freeLoopbackPort,
  newOperator,
  startGatewayProcess,
  type GatewayProcess,
  type Operator,
} from './support/gateway-process';
import { newNamespace } from './support/network';

/**
 * The gateway process killed (SIGKILL) in the middle of a rotation, at the two points that
 * matter: after the HSM made the new key and before the ledger commit, and after the commit
 * before the device got its answer. After a restart the device retries and finishes, and the
 * HSM holds exactly the versions the ledger accounts for.
 */
describe('crash recovery: the gateway killed mid-rotation', function () {
  // Four gateway starts per test (HSM login, identity check, reconcile, event catch-up: 4–7 s each
  // here, several times that on a loaded machine): a hang still fails, a slow machine does not.
  this.timeout(300_000);
  let store: SoftHsmStore;
  let chaincode: string;
  let dir: string;
  let port: number;
  let alice: Operator;
  let gateway: GatewayProcess | undefined;
  let agent: Agent;
  const url = () => `https://127.0.0.1:${String(port)}`;

  const start = async (failpoint?: string) => {
    gateway = await startGatewayProcess({
      store,
      hsmUri: store.uri,
      dir,
      port,
      jwksFile: alice.jwksFile,
      chaincode,
      env: { KEYFLEET_FAILPOINT: failpoint ?? '' },
    });
  };
  const stop = async () => {
    await gateway?.stop();
    gateway = undefined;
  };
  const operator = async (method: string, path: string, body?: unknown) => {
    const answer = await alice.call(url(), method, path, body);
    expect(answer.status, path).to.be.below(300);
    return answer.body;
  };
  /** Version objects of `keyId` in the HSM, read with a session of our own. */
  const hsmVersions = async (keyId: string): Promise<number[]> => {
    const hsm: Hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin, sessions: 1 });
    try {
      const prefix = `key:${keyId}:v`;
      return (await hsm.findKeys({ kind: 'secret' }))
        .filter((k) => k.label.startsWith(prefix))
        .map((k) => Number(k.label.slice(prefix.length)))
        .sort((a, b) => a - b);
    } finally {
      await hsm.close();
    }
  };
  const ledgerKey = async () => ((await operator('GET', '/v1/keys/edge-9-data')) as { record: KeyRecord }).record;

  before(async () => {
    chaincode = newNamespace('crash');
    store = createSoftHsmStore('keyfleet-crash');
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-crash-'));
    alice = await newOperator(dir);
    port = await freeLoopbackPort();

    await start();
    const { token } = await operator('POST', '/v1/enrolment-tokens', {
      deviceId: 'edge-9',
      group: 'lab',
      location: 'rack 1',
      function: 'gateway',
    });
    agent = newAgent({ keystorePath: join(dir, 'device.json'), gatewayUrl: url(), deviceId: 'edge-9' });
    await agent.enrol(token as string);
    await operator('POST', '/v1/devices/edge-9/keys', { keyId: 'edge-9-data' });
    expect((await agent.rotate('edge-9-data')).version).to.equal(1);
    await stop();
  });
  after(async () => {
    await stop();
    store.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [failpoint, committed] of [
    ['rotation-before-commit', false],
    ['rotation-after-commit', true],
  ] as const) {
    it(`dies at ${failpoint}; after a restart the device finishes and nothing is orphaned`, async () => {
      await start();
      const before = await ledgerKey();
      const held = (await agent.dataKey('edge-9-data'))?.version ?? 0;
      await stop();

      await start(failpoint);
      const crashed = await agent.rotate('edge-9-data').then(
        () => 'answered',
        (err: unknown) => err,
      );
      expect(crashed, 'the device got no answer').to.have.property('code', 'AGENT_GATEWAY_UNAVAILABLE');
      await (gateway as GatewayProcess).exited;
      expect((await agent.dataKey('edge-9-data'))?.version, 'the device keeps its key').to.equal(held);

      await start();
      const afterCrash = await ledgerKey();
      expect(afterCrash.LatestVersion, 'what the ledger committed').to.equal(
        before.LatestVersion + (committed ? 1 : 0),
      );

      const retried = await agent.rotate('edge-9-data');
      expect(retried.version).to.equal(before.LatestVersion + 1);
      const key = await ledgerKey();
      expect(key.ActiveVersion).to.equal(retried.version);
      expect(key.Versions.find((v) => v.Version === retried.version)?.Fingerprint).to.equal(retried.kcv);
      await stop();

      // The HSM holds every committed version and the one pre-generated next version: no orphans.
      const versions = Array.from({ length: key.LatestVersion + 1 }, (_, i) => i + 1);
      expect(await hsmVersions('edge-9-data')).to.deep.equal(versions);
    });
  }

  it('a version the ledger committed and the HSM lost is reported at start-up, and not repaired', async () => {
    await start();
    const key = await ledgerKey();
    await stop();
    const lost = key.LatestVersion + 1; // the pre-generated next version, committed as NextKeyCommitment
    const hsm = await newHsm({ uri: store.uri, modulePath: softHsmModule, pin: store.pin, sessions: 1 });
    try {
      await hsm.destroyKey({ label: `key:edge-9-data:v${String(lost)}` }, ['secret']);
    } finally {
      await hsm.close();
    }

    await start();
    const g = gateway as GatewayProcess;
    // pino writes asynchronously: the line may trail the health check by a moment.
    for (let i = 0; i < 50 && !g.output().includes('key versions the ledger records'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const report = g
      .output()
      .split('\n')
      .find((line) => line.includes('the HSM lacks key versions the ledger records'));
    expect(report, g.output()).to.not.equal(undefined);
    expect((JSON.parse(report ?? '{}') as { missing?: unknown }).missing).to.deep.equal([
      { keyId: 'edge-9-data', version: lost },
    ]);
    expect(await ledgerKey(), 'the ledger is not touched').to.deep.equal(key);
    await stop();
    const kept = Array.from({ length: key.LatestVersion }, (_, i) => i + 1);
    expect(await hsmVersions('edge-9-data'), 'nothing is made up for the lost version').to.deep.equal(kept);
  });
});
