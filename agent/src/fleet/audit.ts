import type { HttpClient } from '../http/client.js';

interface HistoryEntry {
  readonly transactionId: string;
  readonly timestamp: string;
  readonly value: Record<string, unknown> | null;
}

interface Line {
  readonly at: string;
  readonly text: string;
}

/**
 * One record's history oldest first. The gateway answers in Fabric's order, newest first by block
 * and transaction height (docs/ledger.md), so this is the reverse, not a sort by the timestamps
 * (which the submitting clients chose). `keyfleet audit device` shows the same order.
 */
function oldestFirst(entries: readonly HistoryEntry[]): HistoryEntry[] {
  return [...entries].reverse();
}

/** Two oldest-first lists as one by time; each keeps its own ledger order, the device first on a tie. */
function mergeByTime(first: readonly Line[], second: readonly Line[]): Line[] {
  const out: Line[] = [];
  let i = 0;
  let j = 0;
  for (;;) {
    const a = first[i];
    const b = second[j];
    if (a === undefined) return out.concat(second.slice(j));
    if (b === undefined) return out.concat(first.slice(i));
    if (b.at < a.at) {
      out.push(b);
      j++;
    } else {
      out.push(a);
      i++;
    }
  }
}

/** One line per ledger change of a device and of its data key, oldest first, read through the gateway. */
export async function auditTrail(
  client: HttpClient,
  authorization: string,
  deviceId: string,
  keyId?: string,
): Promise<string[]> {
  const lines: Line[] = [];
  const device = await client.request<{ entries: HistoryEntry[] }>(
    'GET',
    `/v1/audit/devices/${encodeURIComponent(deviceId)}`,
    undefined,
    { authorization },
  );
  let previous: Record<string, unknown> | null = null;
  for (const entry of oldestFirst(device.entries)) {
    const value = entry.value ?? {};
    const status = String(value.Status);
    const attestation = value.LastAttestation as { Status?: unknown } | null | undefined;
    const verdict = typeof attestation?.Status === 'string' ? attestation.Status : null;
    let text: string;
    if (previous === null) text = `device ${deviceId} enrolled (${String(value.Group)}), status ${status}`;
    else if (previous.Status !== value.Status) {
      text = `device ${deviceId} ${status}${typeof value.StatusReason === 'string' ? `: ${value.StatusReason}` : ''}`;
    } else if (verdict !== null) text = `device ${deviceId} attested: ${verdict}`;
    else text = `device ${deviceId} updated`;
    lines.push({ at: entry.timestamp, text: `${text}  [tx ${entry.transactionId.slice(0, 12)}]` });
    previous = value;
  }
  const keyLines: Line[] = [];
  if (keyId !== undefined) {
    const key = await client.request<{ entries: HistoryEntry[] }>(
      'GET',
      `/v1/audit/keys/${encodeURIComponent(keyId)}`,
      undefined,
      { authorization },
    );
    for (const entry of oldestFirst(key.entries)) {
      const value = entry.value ?? {};
      const active = value.ActiveVersion;
      const latest = value.LatestVersion;
      keyLines.push({
        at: entry.timestamp,
        text: `key ${keyId}: active version ${String(active)} of ${String(latest)}  [tx ${entry.transactionId.slice(0, 12)}]`,
      });
    }
  }
  return mergeByTime(lines, keyLines).map((l) => `${l.at}  ${l.text}`);
}
