import { expect } from 'chai';

import { Harness } from './testing/harness.js';
import {
  type AttestationRecord,
  type DeviceRecord,
  EventName,
  type RequestPrincipal,
  TransactionName,
} from '@keyfleet/protocol';

/** The request log entry of `requestId`, as stored. */
function logged(h: Harness, requestId: unknown): Record<string, unknown> {
  for (const [key, value] of h.stub.state) {
    if (key.includes('request') && key.includes(String(requestId))) {
      return JSON.parse(Buffer.from(value).toString('utf8')) as Record<string, unknown>;
    }
  }
  throw new Error(`no request log entry for ${String(requestId)}`);
}

describe('who asked: the Principal is kept with the proof, the request log and the event', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await Harness.create();
    await h.bootstrap();
  });

  it('records the operator behind an enrolment in the proof, the request log and the event', async () => {
    const alice: RequestPrincipal = { Kind: 'operator', ID: 'alice' };
    const request = { ...h.enrolRequest('dev-0001'), Principal: alice } as Record<string, unknown>;
    const device = await h.write<DeviceRecord>(h.ids.operator, TransactionName.EnrolDevice, request);
    expect(device.Proof.Principal).to.deep.equal(alice);
    expect(logged(h, request.RequestID)).to.deep.include({ Principal: alice, By: 'Org1MSP/operator/gateway-1' });
    expect(h.lastEvent.name).to.equal(EventName.DeviceEnrolled);
    expect(h.lastEvent.payload.Principal).to.deep.equal(alice);
  });

  it('lets the operator gateway act for an application, a device and its own services', async () => {
    const principals: RequestPrincipal[] = [
      { Kind: 'application', ID: 'billing' },
      { Kind: 'device', ID: 'dev-0009' },
      { Kind: 'service', ID: 'gateway.scheduler' },
    ];
    for (const [i, principal] of principals.entries()) {
      const device = await h.write<DeviceRecord>(h.ids.operator, TransactionName.EnrolDevice, {
        ...h.enrolRequest(`dev-01${i}`),
        Principal: principal,
      });
      expect(device.Proof.Principal).to.deep.equal(principal);
    }
  });

  it("records the device on the verifier's attestation result", async () => {
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    const device: RequestPrincipal = { Kind: 'device', ID: 'dev-0001' };
    const record = await h.write<AttestationRecord>(
      h.ids.verifier,
      TransactionName.RecordAttestation,
      { ...h.attestationRequest('dev-0001'), Principal: device },
      h.signers.verifier,
    );
    expect(record.Proof.Principal).to.deep.equal(device);
    expect(h.lastEvent.payload.Principal).to.deep.equal(device);
  });
});
