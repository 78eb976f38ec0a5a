import { expect } from 'chai';

import { auditTrail } from './audit.js';
import type { HttpClient, RequestOptions } from '../http/client.js';

type Entry = { transactionId: string; timestamp: string; value: Record<string, unknown> | null };

/** A gateway that answers the two audit routes with canned histories, newest first as Fabric gives them. */
function gateway(histories: Record<string, Entry[]>): HttpClient {
  return {
    baseUrl: 'https://gateway.test',
    request<T>(method: string, path: string, _body?: unknown, options?: RequestOptions): Promise<T> {
      expect([method, options?.authorization]).to.deep.equal(['GET', 'Bearer op']);
      const entries = histories[path];
      if (entries === undefined) return Promise.reject(new Error(`unexpected ${path}`));
      return Promise.resolve({ entries } as T);
    },
  };
}

const tx = (n: number) => `tx${String(n).padStart(2, '0')}`.padEnd(64, '0');
const at = (seconds: number) => new Date(Date.UTC(2026, 10, 1, 10, 0, seconds)).toISOString();
const deviceState = (Status: string, fields: Record<string, unknown> = {}) => ({
  DeviceID: 'd-1',
  Group: 'demo',
  Status,
  StatusReason: null,
  LastAttestation: null,
  ...fields,
});
const keyState = (ActiveVersion: number, LatestVersion: number) => ({
  KeyID: 'd-1-data',
  ActiveVersion,
  LatestVersion,
});
const trail = (line: string) => line.replace(/ {2}\[tx .*\]$/, '');

describe('fleet audit trail', () => {
  it('lists the device and key changes oldest first, interleaved by time', async () => {
    const client = gateway({
      '/v1/audit/devices/d-1': [
        {
          transactionId: tx(4),
          timestamp: at(40),
          value: deviceState('suspended', { StatusReason: 'contraindicated' }),
        },
        {
          transactionId: tx(3),
          timestamp: at(30),
          value: deviceState('active', { LastAttestation: { Status: 'affirming' } }),
        },
        { transactionId: tx(1), timestamp: at(10), value: deviceState('active') },
      ],
      '/v1/audit/keys/d-1-data': [
        { transactionId: tx(5), timestamp: at(50), value: keyState(2, 2) },
        { transactionId: tx(2), timestamp: at(20), value: keyState(1, 1) },
      ],
    });
    const lines = await auditTrail(client, 'Bearer op', 'd-1', 'd-1-data');
    expect(lines.map(trail)).to.deep.equal([
      `${at(10)}  device d-1 enrolled (demo), status active`,
      `${at(20)}  key d-1-data: active version 1 of 1`,
      `${at(30)}  device d-1 attested: affirming`,
      `${at(40)}  device d-1 suspended: contraindicated`,
      `${at(50)}  key d-1-data: active version 2 of 2`,
    ]);
    expect(lines[0]).to.match(new RegExp(`\\[tx ${tx(1).slice(0, 12)}\\]$`));
  });

  it('keeps one record in ledger order even when a later block carries an earlier timestamp', async () => {
    // Transaction timestamps are the submitting clients' clocks; the block order is the ledger's.
    const client = gateway({
      '/v1/audit/devices/d-1': [
        { transactionId: tx(3), timestamp: at(25), value: deviceState('suspended', { StatusReason: 'maintenance' }) },
        {
          transactionId: tx(2),
          timestamp: at(30),
          value: deviceState('active', { LastAttestation: { Status: 'affirming' } }),
        },
        { transactionId: tx(1), timestamp: at(10), value: deviceState('active') },
      ],
    });
    expect((await auditTrail(client, 'Bearer op', 'd-1')).map(trail)).to.deep.equal([
      `${at(10)}  device d-1 enrolled (demo), status active`,
      `${at(30)}  device d-1 attested: affirming`,
      `${at(25)}  device d-1 suspended: maintenance`,
    ]);
  });
});
