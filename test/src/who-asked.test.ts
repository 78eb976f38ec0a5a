import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { newAgent, type Agent, type AttestationOutcome } from '@keyfleet/agent';
import type { DeviceRecord, KeyRecord } from '@keyfleet/protocol';
import { newDeviceCsr, softHsmModule, startGatewayFixture, type GatewayFixture } from './support/gateway-fixture';
import { connectionProfile, peerQuery } from './support/network';

const run = promisify(execFile);
const cli = resolve(__dirname, '../../gateway/dist/cli/keyfleet.js');

/**
 * Who asked, on the real network: the principal the gateway authenticated is inside every
 * HSM-signed write, and an auditor finds the transaction in its block through Fabric's qscc with
 * an Org2 identity of its own (`keyfleet audit tx`), checking the signature against a pinned key.
 */
describe('who asked: the principal of every write, and the auditor’s offline check', function () {
  this.timeout(120_000);
  let f: GatewayFixture;
  let dir: string;
  let transactionId: string;
  const deviceId = 'who-1';

  const keyfleet = async (...args: string[]) => {
    try {
      const { stdout } = await run(process.execPath, [cli, ...args, '--json'], {
        env: {
          ...process.env,
          KEYFLEET_URL: f.url,
          KEYFLEET_CA_FILE: join(f.dataDir, 'device-ca.pem'),
          KEYFLEET_CREDENTIALS: await f.credentialsFile(f.callers.auditor),
          KEYFLEET_FABRIC_CONNECTION: connectionProfile,
        },
      });
      return { code: 0, body: JSON.parse(stdout) as Record<string, unknown> };
    } catch (err) {
      const failed = err as { code: number; stdout: string };
      return { code: failed.code, body: JSON.parse(failed.stdout) as Record<string, unknown> };
    }
  };

  before(async () => {
    f = await startGatewayFixture();
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-who-'));
    const operator = await f.bearer(f.callers.operator);
    const post = async (path: string, body: unknown, auth?: string) => {
      const response = await fetch(`${f.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
        body: JSON.stringify(body),
      });
      expect(response.status, path).to.equal(201);
      return (await response.json()) as Record<string, unknown>;
    };
    const { token } = await post(
      '/v1/enrolment-tokens',
      { deviceId, group: 'lab', location: 'bench', function: 'probe' },
      operator,
    );
    const { csr } = await newDeviceCsr(deviceId);
    ({ transactionId } = (await post('/v1/devices', { enrolmentToken: token, csr })) as { transactionId: string });
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const auditor = { org: 'Org2', name: 'auditor' };

  it('records the operator who issued the enrolment token as the one who asked', async () => {
    const device = await f.ledger.evaluate<DeviceRecord & { Proof: { Principal: unknown; TxID: string } }>(
      'GetDevice',
      deviceId,
    );
    expect(device.Proof.TxID).to.equal(transactionId);
    expect(device.Proof.Principal).to.deep.equal({ Kind: 'operator', ID: f.callers.operator.subject });
  });

  it('finds the write in its block through qscc and checks its HSM signature against a pinned key', async () => {
    const pinned = join(dir, 'metadata-signing.pem');
    writeFileSync(pinned, (await f.gateway.hsm.getPublicKey({ label: 'metadata-signing' })).pem);
    const fromBlocks = (await f.ledger.transactions()).find((t) => t.transactionId === transactionId);

    const { code, body } = await keyfleet('audit', 'tx', transactionId, '--anchor', pinned);
    expect(code).to.equal(0);
    expect(body).to.deep.include({
      found: true,
      blockNumber: fromBlocks?.blockNumber ?? expect.fail('not in the blocks'),
      valid: true,
      chaincode: f.chaincode,
      method: 'EnrolDevice',
      principal: { Kind: 'operator', ID: f.callers.operator.subject },
      signature: 'valid',
    });
    expect((body.creator as { subject: string }).subject).to.match(/CN=keyfleet-gateway/);
  });

  it('says INVALID against another key, and NOT FOUND for a transaction no block holds', async () => {
    const other = join(dir, 'verifier.pem');
    writeFileSync(other, (await f.verifier.hsm.getPublicKey({ label: 'verifier' })).pem);
    const wrongKey = await keyfleet('audit', 'tx', transactionId, '--anchor', other);
    expect(wrongKey.code).to.equal(1);
    expect(wrongKey.body).to.include({ found: true, signature: 'invalid' });

    const missing = await keyfleet('audit', 'tx', 'f'.repeat(64));
    expect(missing.code).to.equal(1);
    expect(missing.body).to.deep.equal({ found: false, transactionId: 'f'.repeat(64) });
  });

  it('shows who and the block in the device’s audit trail', async () => {
    const { code, body } = await keyfleet('audit', 'device', deviceId);
    expect(code).to.equal(0);
    const blocks = body.blocks as Record<string, number>;
    const fromBlocks = (await f.ledger.transactions()).find((t) => t.transactionId === transactionId);
    expect(blocks[transactionId]).to.equal(fromBlocks?.blockNumber);
  });

  describe('a rotated and attested device, as Fabric’s own tools and an offline auditor see it', () => {
    const rotatedId = 'who-2';
    const keyId = 'who-2-data';
    let agent: Agent;
    let attested: AttestationOutcome;
    let firmware: string;

    before(async () => {
      firmware = join(dir, 'firmware.bin');
      writeFileSync(firmware, 'firmware 3.1');
      const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
        deviceId: rotatedId,
        group: 'rooftop',
        location: 'roof',
        function: 'anemometer',
      });
      agent = newAgent({ keystorePath: join(dir, 'keystore.json'), gatewayUrl: f.url, deviceId: rotatedId });
      await agent.enrol(token as string);
      await f.operator('POST', `/v1/devices/${rotatedId}/keys`, { keyId });
      // The first call fetches the provisioned version 1; the second rotates to version 2.
      expect((await agent.rotate(keyId)).version).to.equal(1);
      expect((await agent.rotate(keyId)).version).to.equal(2);
      await f.operator('PUT', '/v1/reference-values/rooftop', {
        policyId: 'rooftop-1',
        measurements: [
          { name: 'firmware', algorithm: 'sha-256', digest: createHash('sha256').update('firmware 3.1').digest('hex') },
        ],
      });
      attested = await agent.attest({
        measuredFiles: [{ name: 'firmware', path: firmware }],
        hwmodel: 'kf-anemo-v2',
        swname: 'keyfleet-agent',
        swversion: '0.1.0',
      });
      expect(attested.status).to.equal('affirming');
    });

    it('names the operator and the device behind each write of its key’s trail', async () => {
      const { code, body } = await keyfleet('audit', 'key', keyId);
      expect(code).to.equal(0);
      const entries = (body.entries as { transactionId: string; value: KeyRecord }[]).slice().reverse();
      const who = entries.map((e) => e.value.Proof.Principal);
      expect(who[0], 'provisioned by').to.deep.equal({ Kind: 'operator', ID: f.callers.operator.subject });
      expect(who.slice(1), 'rotated and acknowledged by').to.deep.include({ Kind: 'device', ID: rotatedId });
      expect(who.every((p) => p.Kind === 'operator' || (p.Kind === 'device' && p.ID === rotatedId))).to.equal(true);
      // Every entry's transaction is in a block, as Org2's auditor reads it through qscc.
      const blocks = body.blocks as Record<string, number>;
      expect(entries.map((e) => typeof blocks[e.transactionId])).to.deep.equal(entries.map(() => 'number'));
    });

    it('`peer chaincode query` as Org2’s auditor shows the device, key versions and attestation the gateway reports', async () => {
      const { record: device } = (await f.operator('GET', `/v1/devices/${rotatedId}`)) as { record: DeviceRecord };
      const { record: key } = (await f.operator('GET', `/v1/keys/${keyId}`)) as { record: KeyRecord };
      expect(peerQuery(f.chaincode, auditor, 'GetDevice', rotatedId)).to.deep.equal(device);
      const fromPeer = peerQuery(f.chaincode, auditor, 'GetKey', keyId) as KeyRecord;
      expect(fromPeer).to.deep.equal(key);
      expect(fromPeer.Versions.map((v) => [v.Version, v.State])).to.deep.equal([
        [1, 'deactivated'],
        [2, 'active'],
      ]);
      const { resultId } = attested.recorded as { resultId: string };
      expect(device.LastAttestation).to.include({ ResultID: resultId, Status: 'affirming' });
      const { transactionId: attestedIn } = attested.recorded as { transactionId: string };
      expect(peerQuery(f.chaincode, auditor, 'GetAttestation', rotatedId, resultId))
        .to.deep.include(attested.result)
        .and.deep.include({ ResultID: resultId, RecordedBy: 'Org2MSP/verifier/keyfleet-verifier' })
        .and.nested.include({ 'Proof.TxID': attestedIn });
    });

    it('checks a record from `peer chaincode query` offline, and refuses it with one byte changed', async () => {
      const pin = async (name: string, hsm: GatewayFixture['gateway']['hsm'], label: string) => {
        const file = join(dir, `${name}.pem`);
        writeFileSync(file, (await hsm.getPublicKey({ label })).pem);
        return file;
      };
      const gatewayAnchor = await pin('metadata-signing', f.gateway.hsm, 'metadata-signing');
      const verifierAnchor = await pin('verifier', f.verifier.hsm, 'verifier');
      const peerCli = (fn: string, ...args: string[]) => JSON.stringify(peerQuery(f.chaincode, auditor, fn, ...args));
      // The device's last write is the verifier's attestation verdict; the key's, the device's rotation.
      for (const [name, json, anchor, other] of [
        ['device', peerCli('GetDevice', rotatedId), verifierAnchor, gatewayAnchor],
        ['key', peerCli('GetKey', keyId), gatewayAnchor, verifierAnchor],
        [
          'attestation',
          peerCli('GetAttestation', rotatedId, (attested.recorded as { resultId: string }).resultId),
          verifierAnchor,
          gatewayAnchor,
        ],
      ] as const) {
        const file = join(dir, `${name}.json`);
        writeFileSync(file, json);
        const wrongAnchor = await keyfleet('audit', 'record', file, '--anchor', other);
        expect(wrongAnchor.body).to.include({ verified: false, problem: 'SIGNATURE_INVALID' });

        writeFileSync(file, json);
        const verified = await keyfleet('audit', 'record', file, '--anchor', anchor);
        expect(verified.code, JSON.stringify(verified.body)).to.equal(0);
        expect(verified.body).to.include({ verified: true });

        // One byte: a letter of the record's first string value that the signed request does not carry.
        const at = json.indexOf('"DocType":"') + '"DocType":"'.length;
        writeFileSync(file, json.slice(0, at) + String.fromCharCode(json.charCodeAt(at) ^ 1) + json.slice(at + 1));
        const changed = await keyfleet('audit', 'record', file, '--anchor', anchor);
        expect(changed.code).to.equal(1);
        expect(changed.body).to.include({ verified: false, problem: 'RECORD_NOT_WRITTEN' });
      }
    });

    it('issued a device certificate that `openssl verify` accepts against the HSM CA’s certificate, and no other CA', () => {
      const keystore = JSON.parse(readFileSync(join(dir, 'keystore.json'), 'utf8')) as { certificate: string };
      const certificate = join(dir, 'device.pem');
      writeFileSync(certificate, keystore.certificate);
      const verify = (ca: string) =>
        execFileSync('openssl', ['verify', '-CAfile', ca, certificate], { encoding: 'utf8', stdio: 'pipe' });
      expect(verify(join(f.dataDir, 'device-ca.pem'))).to.equal(`${certificate}: OK\n`);
      // Org1's Fabric CA is a CA of this deployment too, but not the devices' issuer.
      const fabricCa = JSON.parse(readFileSync(connectionProfile, 'utf8')) as {
        organizations: { Org1: { ca: { caCert: string } } };
      };
      expect(() => verify(join(dirname(connectionProfile), fabricCa.organizations.Org1.ca.caCert))).to.throw(
        /unable to get local issuer certificate|verification failed/,
      );
    });

    it('holds the Fabric signing keys in the tokens (pkcs11-tool), and no private key file on the services’ paths', () => {
      for (const token of [f.store.label, 'keyfleet-verifier-it']) {
        const listed = execFileSync(
          'pkcs11-tool',
          [
            '--module',
            softHsmModule,
            '--token-label',
            token,
            '--login',
            '--pin',
            f.store.pin,
            '--list-objects',
            '--type',
            'privkey',
          ],
          { env: { ...process.env, SOFTHSM2_CONF: f.store.conf }, encoding: 'utf8' },
        );
        const fabricKey = listed.split(/\n(?=\S)/).find((object) => /label:\s+fabric-identity\b/.test(object));
        expect(fabricKey, `${token}:\n${listed}`).to.match(/Access:.*\bsensitive\b.*\bnever extractable\b/);
      }
      const files = (root: string): string[] =>
        readdirSync(root).flatMap((name) => {
          const path = join(root, name);
          return statSync(path).isDirectory() ? files(path) : [path];
        });
      const withKeys = files(f.dataDir).filter((path) => /PRIVATE KEY|"d"\s*:/.test(readFileSync(path, 'latin1')));
      expect(withKeys, 'gateway and verifier data directories').to.deep.equal([]);
      expect(files(f.dataDir).some((path) => path.includes('fabric-identity'))).to.equal(true);
    });
  });
});
