import type { JsonClient } from './http.js';

interface HistoryEntry {
  readonly transactionId: string;
  readonly timestamp: string;
  readonly value: Record<string, unknown> | null;
}

/** One line per ledger change of a device and of its data key, oldest first, read through the gateway. */
export async function auditTrail(
  client: JsonClient,
  authorization: string,
  deviceId: string,
  keyId?: string,
): Promise<string[]> {
  const lines: { at: string; text: string }[] = [];
  const device = await client.call<{ entries: HistoryEntry[] }>(
    'GET',
    `/v1/audit/devices/${encodeURIComponent(deviceId)}`,
    undefined,
    authorization,
  );
  let previous: Record<string, unknown> | null = null;
  for (const entry of [...device.entries].reverse()) {
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
  if (keyId !== undefined) {
    const key = await client.call<{ entries: HistoryEntry[] }>(
      'GET',
      `/v1/audit/keys/${encodeURIComponent(keyId)}`,
      undefined,
      authorization,
    );
    for (const entry of [...key.entries].reverse()) {
      const value = entry.value ?? {};
      const active = value.ActiveVersion;
      const latest = value.LatestVersion;
      lines.push({
        at: entry.timestamp,
        text: `key ${keyId}: active version ${String(active)} of ${String(latest)}  [tx ${entry.transactionId.slice(0, 12)}]`,
      });
    }
  }
  return lines.sort((a, b) => a.at.localeCompare(b.at)).map((l) => `${l.at}  ${l.text}`);
}
