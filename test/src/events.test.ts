import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { newAgent, type Agent } from '@keyfleet/agent';
import type { DeviceRecord } from '@keyfleet/protocol';
import { newDeviceCsr, startGatewayFixture, type GatewayFixture, type SecondGateway } from './support/gateway-fixture';

/**
 * The contract's events on the real network: gateway A and gateway B (same token, same namespace,
 * own data directories) and Org2's verifier each follow them with a checkpoint. A device
 * suspended through A is refused by B from B's events, without B reading the device; B restarted
 * resumes from its checkpoint, handling every event committed while it was down exactly once; an
 * attestation failure's event brings the device's due keys to check-in without a scheduler tick.
 */
describe('chaincode events with checkpoints: two gateways and the verifier', function () {
  this.timeout(180_000);
  // The schedulers never tick during the suite: a pass that runs is one an event asked for.
  const env = { KEYFLEET_SCHEDULER_INTERVAL_MS: '3600000' };
  const deviceId = 'edge-ev-001';
  const keyId = 'edge-ev-001-data';
  let f: GatewayFixture;
  let b: SecondGateway;
  let dir: string;
  let firmware: string;
  /** The device, talking to gateway A. */
  let agent: Agent;
  /** The same device (same keystore), talking to gateway B at its current address. */
  const agentB = () => newAgent({ keystorePath: join(dir, 'keystore.json'), gatewayUrl: b.url, deviceId });

  const setStatus = (id: string, action: 'suspend' | 'reinstate' | 'revoke', reason: string) =>
    f.operator('POST', `/v1/devices/${id}/${action}`, { reason });

  /** A service's samples on `/metrics`, by metric name and label text (`{event="DeviceSuspended"}`). */
  const metrics = async (url: string) => {
    const text = await fetch(`${url}/metrics`).then((r) => r.text());
    const samples = new Map<string, number>();
    for (const line of text.split('\n')) {
      const match = /^(keyfleet_(?:ledger_events|device)_[a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
      if (match) samples.set(`${match[1] ?? ''}${match[2] ?? ''}`, Number(match[3]));
    }
    return samples;
  };
  const handledByName = async (url: string) => {
    const handled: Record<string, number> = {};
    for (const [sample, value] of await metrics(url)) {
      const name = /^keyfleet_ledger_events_total\{event="(\w+)"\}$/.exec(sample)?.[1];
      if (name !== undefined) handled[name] = value;
    }
    return handled;
  };
  const sample = async (url: string, name: string) => (await metrics(url)).get(name) ?? 0;
  const eventually = async (what: string, condition: () => Promise<boolean>) => {
    for (let attempt = 0; attempt < 300; attempt++) {
      if (await condition()) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`timed out waiting until ${what}`);
  };
  /** Waits until the service at `url` has handled `count` events named `name`. */
  const handled = (url: string, name: string, count: number) =>
    eventually(`${url} handled ${String(count)} ${name}`, async () => (await handledByName(url))[name] === count);
  const refusedBy = async (device: Agent) => {
    let refused: unknown;
    await device.checkIn().catch((err: unknown) => (refused = err));
    return refused;
  };
  /** An application exports a public key to the device through gateway `url`. */
  const exportTo = async (url: string) => {
    const { certificate } = JSON.parse(readFileSync(join(dir, 'keystore.json'), 'utf8')) as { certificate: string };
    const response = await fetch(`${url}/v1/keys/ev-sign/export`, {
      method: 'POST',
      headers: { authorization: await f.bearer(f.callers.application), 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId, certificate }),
    });
    return { status: response.status, body: (await response.json()) as { error?: { detail?: string } } };
  };
  const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
  const attest = () =>
    agent.attest({
      measuredFiles: [{ name: 'firmware', path: firmware }],
      hwmodel: 'kf-sensor-v1',
      swname: 'keyfleet-agent',
      swversion: '0.1.0',
    });

  before(async () => {
    f = await startGatewayFixture(env);
    dir = mkdtempSync(join(tmpdir(), 'keyfleet-events-'));
    firmware = join(dir, 'firmware.bin');
    writeFileSync(firmware, 'firmware 2.0');
    const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
      deviceId,
      group: 'ev-thermo',
      location: 'hall 3',
      function: 'thermometer',
    });
    agent = newAgent({ keystorePath: join(dir, 'keystore.json'), gatewayUrl: f.url, deviceId });
    await agent.enrol(token as string);
    await f.operator('POST', `/v1/devices/${deviceId}/keys`, { keyId });
    expect((await agent.rotate(keyId)).version).to.equal(1);
    const billing = [{ mspId: 'Org1MSP', role: 'application', id: 'billing' }];
    await f.operator('POST', '/v1/keys', {
      keyId: 'ev-sign',
      algorithm: 'EC-P256',
      purpose: 'sign',
      owner: { type: 'application', id: 'billing' },
      rotationIntervalSeconds: 86400,
      accessPolicy: { read: billing, use: billing, rotate: [], administer: [{ mspId: 'Org1MSP', role: 'operator' }] },
    });
    await f.operator('PUT', '/v1/reference-values/ev-thermo', {
      policyId: 'ev-thermo-1',
      measurements: [{ name: 'firmware', algorithm: 'sha-256', digest: sha256('firmware 2.0') }],
    });
    // B starts after all that: with no checkpoint yet, it reads the events from block 0.
    b = await f.openSecondGateway(env);
  });
  after(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a device suspended through gateway A is refused by gateway B from its events, without a ledger read', async () => {
    // B serves the active device (a ledger read), and knows of no refusal.
    expect((await agentB().checkIn()).rotated).to.deep.equal([]);
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(0);

    await setStatus(deviceId, 'suspend', 'lost in transit');
    await handled(b.url, 'DeviceSuspended', 1);
    const height = await f.ledger.height();
    const refused = await refusedBy(agentB());
    expect(refused).to.include({ code: 'AGENT_GATEWAY_REJECTED', detail: 'DEVICE_SUSPENDED' });
    // Refused from the deny set: the counter moves only on that path, which reads nothing.
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(1);
    expect(await sample(b.url, 'keyfleet_device_denials{status="suspended"}')).to.equal(1);
    let rotation: unknown;
    await agentB()
      .rotate(keyId)
      .catch((err: unknown) => (rotation = err));
    expect(rotation).to.include({ detail: 'DEVICE_SUSPENDED' });
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(2);
    // An application's export of a public key to the suspended device: refused by B the same way.
    const exported = await exportTo(b.url);
    expect(exported.status).to.equal(403);
    expect(exported.body.error?.detail).to.equal('DEVICE_NOT_ACTIVE');
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(3);
    expect(await f.ledger.height()).to.equal(height);

    // Reinstated through A: B serves it again as soon as the event reaches it.
    await setStatus(deviceId, 'reinstate', 'found');
    await handled(b.url, 'DeviceReinstated', 1);
    expect((await agentB().checkIn()).rotated).to.deep.equal([]);
    expect((await exportTo(b.url)).status).to.equal(200);
    expect(await sample(b.url, 'keyfleet_device_denials{status="suspended"}')).to.equal(0);
  });

  it('Org2 verifier refuses a device revoked through A at once, from its own events', async () => {
    const revoked = 'edge-ev-002';
    const { token } = await f.operator('POST', '/v1/enrolment-tokens', {
      deviceId: revoked,
      group: 'ev-thermo',
      location: 'hall 3',
      function: 'thermometer',
    });
    const { csr } = await newDeviceCsr(revoked);
    const enrolled = await fetch(`${f.url}/v1/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ enrolmentToken: token, csr }),
    });
    expect(enrolled.status).to.equal(201);
    const verifierUrl = f.verifierUrl;

    await setStatus(revoked, 'revoke', 'keyCompromise');
    await handled(verifierUrl, 'DeviceRevoked', 1);
    const challenge = await fetch(`${verifierUrl}/v1/attestation/challenges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ deviceId: revoked }),
    });
    expect(challenge.status).to.equal(403);
    expect(((await challenge.json()) as { error: { code: string } }).error.code).to.equal('DEVICE_REVOKED');
    expect(await sample(verifierUrl, 'keyfleet_device_refusals_total{status="revoked"}')).to.equal(1);
    // A suspended device still attests at the verifier (that is how it recovers): not refused there.
    expect(await sample(verifierUrl, 'keyfleet_device_denials{status="revoked"}')).to.equal(1);
    await handled(b.url, 'DeviceRevoked', 1);
    expect(await sample(b.url, 'keyfleet_device_denials{status="revoked"}')).to.equal(1);
  });

  it("a contraindicated attestation: refused at once by B, and B's check-in brings the due key without a scheduler tick", async () => {
    writeFileSync(firmware, 'firmware 2.0 + implant');
    expect((await attest()).status).to.equal('contraindicated');
    // The contract suspended the device and made its key due in the attestation's transaction.
    const { record } = (await f.operator('GET', `/v1/devices/${deviceId}`)) as { record: DeviceRecord };
    expect(record.Status).to.equal('suspended');
    await handled(b.url, 'AttestationRecorded', 1);
    expect(await refusedBy(agentB())).to.include({ detail: 'DEVICE_SUSPENDED' });
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(4);

    writeFileSync(firmware, 'firmware 2.0');
    await setStatus(deviceId, 'reinstate', 'reflashed');
    await handled(b.url, 'DeviceReinstated', 2);
    // B's scheduler has not ticked (interval one hour): only the AttestationRecorded event ran a pass.
    let rotated: readonly { version: number }[] = [];
    for (let attempt = 0; attempt < 50 && rotated.length === 0; attempt++) {
      ({ rotated } = await agentB().checkIn());
      if (rotated.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(rotated.map((r) => r.version)).to.deep.equal([2]);
  });

  it('B restarted resumes from its checkpoint: every event committed while it was down handled once, none before', async () => {
    const before = await sample(b.url, 'keyfleet_ledger_events_checkpoint_block');
    expect(before).to.be.above(0);
    await b.restart(async () => {
      await setStatus(deviceId, 'suspend', 'maintenance');
      await setStatus(deviceId, 'reinstate', 'maintenance done');
      await setStatus(deviceId, 'suspend', 'maintenance again');
    });
    const transactions = await f.ledger.transactions();
    const last = transactions.at(-1);
    expect(last?.method).to.equal('SuspendDevice');
    await eventually(
      'B checkpoints the last suspension',
      async () => (await sample(b.url, 'keyfleet_ledger_events_checkpoint_block')) === last?.blockNumber,
    );
    // The new process counts from zero: exactly the three events it missed, nothing it had handled.
    expect(await handledByName(b.url)).to.deep.equal({ DeviceSuspended: 2, DeviceReinstated: 1 });
    // Its deny set came back from its data directory and the events: refused at once.
    expect(await refusedBy(agentB())).to.include({ detail: 'DEVICE_SUSPENDED' });
    expect(await sample(b.url, 'keyfleet_device_refusals_total{status="suspended"}')).to.equal(1);
    expect(await sample(b.url, 'keyfleet_device_denials{status="revoked"}')).to.equal(1);

    // And it follows live events again.
    await setStatus(deviceId, 'reinstate', 'back');
    await handled(b.url, 'DeviceReinstated', 2);
    expect((await agentB().checkIn()).rotated).to.deep.equal([]);
    expect(await handledByName(b.url)).to.deep.equal({ DeviceSuspended: 2, DeviceReinstated: 2 });
  });
});
