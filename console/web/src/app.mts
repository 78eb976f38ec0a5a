import type { Chart as ChartClass, ChartConfiguration } from 'chart.js';
import { checkMembership } from './merkle.mjs';
import { asPublicJwk, pinAnchor, pinnedAnchors, unpinAnchor } from './pins.mjs';
import { jwkThumbprint, verifyProof, type Proof, type PublicJwk, type TransactionLocation } from './verify.mjs';

// ---- the console's JSON API (console/src/server.ts) -------------------------------------------

interface Anchor {
  AnchorID: string;
  Kind: string;
  PublicKey: PublicJwk;
  Thumbprint: string;
  Description: string;
  Status: string;
  RegisteredAt: string;
  RegisteredBy: string;
  Proof: Proof;
}
interface Device {
  DeviceID: string;
  Group: string;
  Location: string;
  Function: string;
  Status: string;
  StatusReason: string | null;
  EnrolledAt: string;
  UpdatedAt: string;
  LastAttestation: { Status: string; At: string; VerifierID: string; BatchID: string | null } | null;
  Proof: Proof;
}
interface KeyVersion {
  Version: number;
  State: string;
  Fingerprint: string;
  CreatedAt: string;
  Proof: Proof;
}
interface Key {
  KeyID: string;
  Owner: { Type: string; ID: string };
  Algorithm: string;
  Purpose: string;
  ActiveVersion: number | null;
  NextRotationDue: string | null;
  RotationPolicy: unknown;
  AccessPolicy: unknown;
  Versions: KeyVersion[];
  Proof: Proof;
}
interface Attestation {
  ResultID: string;
  DeviceID: string;
  Status: string;
  IssuedAt: string;
  VerifierID: string;
  Proof: Proof;
}
interface Batch {
  BatchID: string;
  VerifierID: string;
  MerkleRoot: string;
  Count: number;
  FirstIssuedAt: string;
  LastIssuedAt: string;
  Contraindicated: string[];
  SuspendedDevices: string[];
  Proof: Proof;
}
interface Page<T> {
  Records: T[];
  Bookmark: string;
}
interface HistoryEntry<T> {
  TxID: string;
  Timestamp: string;
  IsDelete: boolean;
  Value: T | null;
}

interface FleetStats {
  Height: number;
  Devices: Record<string, Record<string, number>>;
  Rotations: { Hour: string; Count: number }[];
  Verdicts: {
    Hour: string;
    affirming: number;
    warning: number;
    contraindicated: number;
    batched: number;
  }[];
}
interface DueKey {
  KeyID: string;
  NextRotationDue: string;
  GraceEndsAt: string;
  ActiveVersion: number | null;
}

class NotFound extends Error {}

async function api<T>(path: string): Promise<T> {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  if (response.status === 404) throw new NotFound(path);
  const body = (await response.json()) as T & { error?: { code: string; message: string } };
  if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
  return body;
}

const transactions = new Map<string, Promise<TransactionLocation | null>>();
function transaction(txId: string): Promise<TransactionLocation | null> {
  let found = transactions.get(txId);
  if (!found) {
    found = api<TransactionLocation>(`/api/transactions/${encodeURIComponent(txId)}`).catch((err: unknown) => {
      if (err instanceof NotFound) return null;
      throw err;
    });
    transactions.set(txId, found);
  }
  return found;
}

// ---- DOM helpers ----------------------------------------------------------------------------------

type Child = Node | string | null | undefined | false;
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) element.append(child);
  }
  return element;
}
const link = (href: string, text: string) => h('a', { href }, text);
const short = (id: string) => (id.length > 16 ? `${id.slice(0, 12)}…` : id);
const table = (headings: string[], rows: HTMLElement[], attributes: Record<string, string> = {}) =>
  h(
    'table',
    attributes,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        headings.map((t) => h('th', {}, t)),
      ),
    ),
    h('tbody', {}, rows),
  );

// ---- <kf-verdict>: one record's verification, in this browser ---------------------------------------

interface VerdictInput {
  readonly proof: Proof;
  readonly subjects: readonly string[];
  readonly historyTxId?: string;
}

/**
 * Verifies one record's Proof against the pinned anchors and shows "verified" or "NOT verified"
 * (with the reasons), the transaction id and its block number. `state` is pending, verified or failed.
 */
class VerdictElement extends HTMLElement {
  input: VerdictInput | undefined;

  connectedCallback(): void {
    const input = this.input;
    if (!input) return;
    this.setAttribute('state', 'pending');
    this.dataset.txid = input.proof.TxID;
    this.replaceChildren(h('span', { class: 'badge pending' }, 'verifying…'));
    void this.run(input);
  }

  private async run(input: VerdictInput): Promise<void> {
    let tx: TransactionLocation | null = null;
    let lookup = '';
    try {
      tx = await transaction(input.proof.TxID);
    } catch (err) {
      lookup = `block lookup failed: ${String(err)}`;
    }
    const verdict = await verifyProof({ ...input, transaction: tx }, pinnedAnchors());
    const reasons = lookup === '' ? verdict.reasons : [...verdict.reasons, lookup];
    const verified = verdict.verified && lookup === '';
    this.setAttribute('state', verified ? 'verified' : 'failed');
    if (tx) this.dataset.block = String(tx.BlockNumber);
    if (verdict.action) this.dataset.action = verdict.action;
    const details =
      reasons.length > 0
        ? h(
            'ul',
            { class: 'reasons' },
            reasons.map((r) => h('li', {}, r)),
          )
        : '';
    this.replaceChildren(
      h(
        'span',
        { class: `badge ${verified ? 'ok' : 'bad'}`, title: reasons.join('\n') },
        verified ? 'verified' : 'NOT verified',
      ),
      ' ',
      h('span', { class: 'action' }, verdict.action ?? '?'),
      ' · tx ',
      link(`#/tx/${input.proof.TxID}`, short(input.proof.TxID)),
      ' · block ',
      h('span', { class: 'block' }, tx ? String(tx.BlockNumber) : '—'),
      ' · by ',
      h('span', { class: 'principal' }, principalText(input.proof.Principal)),
      details,
    );
  }
}
customElements.define('kf-verdict', VerdictElement);

function principalText(principal: unknown): string {
  const p = principal as { Kind?: string; ID?: string } | null;
  return p?.Kind !== undefined ? `${p.Kind}/${p.ID ?? ''}` : '?';
}

function verdict(input: VerdictInput): VerdictElement {
  const element = new VerdictElement();
  element.input = input;
  return element;
}

// ---- pages ----------------------------------------------------------------------------------------

async function fleetPage(params: URLSearchParams): Promise<Node[]> {
  const group = params.get('group') ?? '';
  const bookmark = params.get('bookmark') ?? '';
  const trail = params.getAll('back');
  const form = h(
    'form',
    { id: 'fleet-form' },
    h('label', {}, 'Group ', h('input', { name: 'group', value: group, required: '' })),
    h('button', {}, 'Show'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = new FormData(form).get('group');
    location.hash = `#/fleet?group=${encodeURIComponent(typeof value === 'string' ? value : '')}`;
  });
  if (group === '') return [h('h2', {}, 'Fleet'), form, ...(await fleetOverview(params.get('due') ?? '0'))];
  const page = await api<Page<Device>>(
    `/api/devices?group=${encodeURIComponent(group)}&pageSize=50&bookmark=${encodeURIComponent(bookmark)}`,
  );
  const rows = page.Records.map((d) =>
    h(
      'tr',
      { 'data-device': d.DeviceID },
      h('td', {}, link(`#/device/${d.DeviceID}`, d.DeviceID)),
      h('td', { class: `status ${d.Status}` }, d.Status),
      h('td', {}, d.StatusReason ?? ''),
      h('td', {}, d.LastAttestation ? `${d.LastAttestation.Status} (${d.LastAttestation.At})` : '—'),
      h('td', {}, verdict({ proof: d.Proof, subjects: [d.DeviceID] })),
    ),
  );
  const query = (mark: string, back: string[]) =>
    `#/fleet?${new URLSearchParams([['group', group], ['bookmark', mark], ...back.map((b) => ['back', b])]).toString()}`;
  const nav = h(
    'p',
    { class: 'pager' },
    trail.length > 0 ? link(query(trail.at(-1) ?? '', trail.slice(0, -1)), '← previous') : null,
    ' ',
    page.Bookmark !== '' ? link(query(page.Bookmark, [...trail, bookmark]), 'next →') : null,
  );
  return [
    h('h2', {}, `Fleet: ${group}`),
    form,
    table(['device', 'status', 'reason', 'last attestation', 'record'], rows, { id: 'fleet' }),
    nav,
  ];
}

// ---- the fleet at a glance: charts from the blocks, keys due from the contract ---------------------

/** Chart.js, loaded by index.html from its own browser build (/vendor/chart.umd.min.js). */
declare const Chart: typeof ChartClass;

const statusColours: Record<string, string> = {
  active: '#2e7d32',
  affirming: '#2e7d32',
  batched: '#81c784',
  warning: '#f9a825',
  suspended: '#ef6c00',
  contraindicated: '#c62828',
  revoked: '#6a1b9a',
  rotations: '#1565c0',
};

/** A chart on its own canvas, drawn at once (no animation): what the page shows is what it has. */
function chart(id: string, title: string, config: ChartConfiguration<'bar'>): HTMLElement {
  const canvas = h('canvas', { id, width: '480', height: '240', role: 'img', 'aria-label': title });
  new Chart(canvas, {
    ...config,
    options: {
      responsive: false,
      animation: false,
      plugins: { title: { display: true, text: title } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
    },
  });
  return h('figure', { class: 'chart' }, canvas);
}

/** The windows the keys-due list offers, in seconds from now. */
const dueWindows: readonly [string, string][] = [
  ['0', 'now'],
  ['86400', 'within a day'],
  ['604800', 'within 7 days'],
  ['2592000', 'within 30 days'],
];

async function fleetOverview(within: string): Promise<Node[]> {
  const chosen = dueWindows.find(([seconds]) => seconds === within) ?? ['0', 'now'];
  const [stats, due] = await Promise.all([
    api<FleetStats>('/api/stats'),
    api<Page<DueKey>>(`/api/keys-due?within=${chosen[0]}&pageSize=50`),
  ]);
  const groups = Object.keys(stats.Devices).sort();
  const statuses = [...new Set(groups.flatMap((g) => Object.keys(stats.Devices[g] ?? {})))].sort();
  const byStatus = chart('chart-devices', 'Devices by group and status', {
    type: 'bar',
    data: {
      labels: groups,
      datasets: statuses.map((status) => ({
        label: status,
        data: groups.map((g) => stats.Devices[g]?.[status] ?? 0),
        backgroundColor: statusColours[status] ?? '#9e9e9e',
      })),
    },
  });
  const hours = (rows: { Hour: string }[]) => rows.map((r) => r.Hour.slice(5, 16).replace('T', ' '));
  const rotations = chart('chart-rotations', 'Key rotations per hour (UTC)', {
    type: 'bar',
    data: {
      labels: hours(stats.Rotations),
      datasets: [
        { label: 'rotations', data: stats.Rotations.map((r) => r.Count), backgroundColor: statusColours.rotations },
      ],
    },
  });
  const verdictKinds = ['affirming', 'batched', 'warning', 'contraindicated'] as const;
  const verdicts = chart('chart-verdicts', 'Attestation verdicts per hour (UTC)', {
    type: 'bar',
    data: {
      labels: hours(stats.Verdicts),
      datasets: verdictKinds.map((kind) => ({
        label: kind,
        data: stats.Verdicts.map((v) => v[kind]),
        backgroundColor: statusColours[kind] ?? '#9e9e9e',
      })),
    },
  });
  // The contract's Overdue is relative to the window's end; the page says what holds now.
  const dueRows = due.Records.map((k) => {
    const overdue = Date.parse(k.GraceEndsAt) < Date.now();
    return h(
      'tr',
      { 'data-key': k.KeyID },
      h('td', {}, link(`#/key/${k.KeyID}`, k.KeyID)),
      h('td', {}, k.ActiveVersion === null ? '—' : String(k.ActiveVersion)),
      h('td', {}, k.NextRotationDue),
      h('td', { class: overdue ? 'status revoked' : '' }, overdue ? `overdue since ${k.GraceEndsAt}` : k.GraceEndsAt),
    );
  });
  return [
    h(
      'p',
      {},
      `${String(groups.reduce((n, g) => n + Object.values(stats.Devices[g] ?? {}).reduce((a, b) => a + b, 0), 0))} devices in ${String(groups.length)} group${groups.length === 1 ? '' : 's'}, from blocks 0–${String(stats.Height - 1)}: `,
      ...groups.flatMap((g) => [link(`#/fleet?group=${encodeURIComponent(g)}`, g), ' ']),
    ),
    h('div', { class: 'charts' }, byStatus, rotations, verdicts),
    h(
      'h3',
      {},
      'Keys due for rotation ',
      ...dueWindows.flatMap(([seconds, text]) => [
        seconds === chosen[0] ? h('strong', {}, text) : link(`#/fleet?due=${seconds}`, text),
        ' ',
      ]),
    ),
    dueRows.length > 0
      ? table(['key', 'active version', 'due', 'grace ends'], dueRows, { id: 'keys-due' })
      : h('p', { id: 'keys-due' }, `No key is due ${chosen[1]}.`),
    ...(due.Bookmark !== '' ? [h('p', {}, 'More keys are due than this page shows.')] : []),
  ];
}

async function devicePage(deviceId: string): Promise<Node[]> {
  const { Record: device, History: history } = await api<{ Record: Device; History: HistoryEntry<Device>[] }>(
    `/api/devices/${encodeURIComponent(deviceId)}`,
  );
  // The device's story stands without the attestation list: a failed list is said, not fatal.
  const attestations = await api<Page<Attestation>>(`/api/devices/${encodeURIComponent(deviceId)}/attestations`).catch(
    (err: unknown) => new Error(String(err)),
  );
  const timeline = history.map((entry) =>
    h(
      'tr',
      { 'data-txid': entry.TxID },
      h('td', {}, entry.Timestamp),
      h('td', { class: `status ${entry.Value?.Status ?? ''}` }, entry.Value?.Status ?? 'deleted'),
      h('td', {}, entry.Value?.StatusReason ?? ''),
      h(
        'td',
        {},
        entry.Value ? verdict({ proof: entry.Value.Proof, subjects: [deviceId], historyTxId: entry.TxID }) : '',
      ),
    ),
  );
  const results = (attestations instanceof Error ? [] : attestations.Records).map((a) =>
    h(
      'tr',
      { 'data-result': a.ResultID },
      h('td', {}, a.IssuedAt),
      h('td', { class: `verdict ${a.Status}` }, a.Status),
      h('td', {}, a.VerifierID),
      h('td', {}, verdict({ proof: a.Proof, subjects: [deviceId] })),
    ),
  );
  return [
    h('h2', {}, `Device ${device.DeviceID}`),
    h(
      'dl',
      { class: 'summary' },
      h('dt', {}, 'status'),
      h(
        'dd',
        { class: `status ${device.Status}` },
        device.Status,
        device.StatusReason ? ` — ${device.StatusReason}` : '',
      ),
      h('dt', {}, 'group'),
      h('dd', {}, link(`#/fleet?group=${encodeURIComponent(device.Group)}`, device.Group)),
      h('dt', {}, 'location, function'),
      h('dd', {}, `${device.Location}, ${device.Function}`),
      h('dt', {}, 'enrolled'),
      h('dd', {}, device.EnrolledAt),
    ),
    h('h3', {}, 'Timeline (oldest first)'),
    table(['time', 'status', 'reason', 'record'], timeline, { id: 'timeline' }),
    h('h3', {}, 'Attestation results'),
    attestations instanceof Error
      ? h('p', { class: 'error' }, `The attestation results could not be listed: ${attestations.message}`)
      : results.length > 0
        ? table(['issued', 'verdict', 'verifier', 'record'], results, { id: 'attestations' })
        : h('p', {}, 'none recorded one by one (results in batches are in their batch)'),
  ];
}

async function keyPage(keyId: string): Promise<Node[]> {
  const { Record: key, History: history } = await api<{ Record: Key; History: HistoryEntry<Key>[] }>(
    `/api/keys/${encodeURIComponent(keyId)}`,
  );
  const subjects = [key.KeyID, key.Owner.ID];
  const versions = key.Versions.map((v) =>
    h(
      'tr',
      { 'data-version': String(v.Version) },
      h('td', {}, String(v.Version)),
      h('td', { class: `state ${v.State}` }, v.State),
      h('td', { class: 'mono' }, short(v.Fingerprint)),
      h('td', {}, v.CreatedAt),
      h('td', {}, verdict({ proof: v.Proof, subjects })),
    ),
  );
  const timeline = history.map((entry) =>
    h(
      'tr',
      { 'data-txid': entry.TxID },
      h('td', {}, entry.Timestamp),
      h('td', {}, entry.Value ? entry.Value.Versions.map((v) => `v${v.Version} ${v.State}`).join(', ') : 'deleted'),
      h('td', {}, entry.Value?.NextRotationDue ?? '—'),
      h('td', {}, entry.Value ? verdict({ proof: entry.Value.Proof, subjects, historyTxId: entry.TxID }) : ''),
    ),
  );
  return [
    h('h2', {}, `Key ${key.KeyID}`),
    h(
      'dl',
      { class: 'summary' },
      h('dt', {}, 'owner'),
      h('dd', {}, key.Owner.Type === 'device' ? link(`#/device/${key.Owner.ID}`, key.Owner.ID) : key.Owner.ID),
      h('dt', {}, 'algorithm, purpose'),
      h('dd', {}, `${key.Algorithm}, ${key.Purpose}`),
      h('dt', {}, 'active version'),
      h('dd', {}, key.ActiveVersion === null ? 'none' : String(key.ActiveVersion)),
      h('dt', {}, 'next rotation due'),
      h('dd', {}, key.NextRotationDue ?? '—'),
    ),
    h('h3', {}, 'Versions (KMIP states)'),
    table(['version', 'state', 'fingerprint', 'created', 'record'], versions, { id: 'versions' }),
    h('h3', {}, 'History (oldest first): every version, state and policy change'),
    table(['time', 'versions', 'next rotation due', 'record'], timeline, { id: 'timeline' }),
    h(
      'details',
      {},
      h('summary', {}, 'current policies'),
      h('pre', {}, JSON.stringify({ RotationPolicy: key.RotationPolicy, AccessPolicy: key.AccessPolicy }, null, 2)),
    ),
  ];
}

async function anchorsPage(): Promise<Node[]> {
  const anchors = await api<Anchor[]>('/api/anchors');
  const pins = pinnedAnchors();
  const rows = await Promise.all(
    anchors.map(async (a) => {
      const thumbprint = await jwkThumbprint(a.PublicKey);
      const pinned = pins.get(a.AnchorID);
      const button = h(
        'button',
        { class: pinned ? 'unpin' : 'pin', 'data-anchor': a.AnchorID },
        pinned ? 'unpin' : 'pin',
      );
      button.addEventListener('click', () => {
        if (pinned) unpinAnchor(a.AnchorID);
        else pinAnchor(a.AnchorID, a.PublicKey);
        void route();
      });
      return h(
        'tr',
        { 'data-anchor': a.AnchorID },
        h('td', {}, a.AnchorID),
        h('td', {}, a.Kind),
        h('td', {}, a.Status),
        h('td', { class: 'mono' }, thumbprint, thumbprint === a.Thumbprint ? '' : ' (≠ the ledger’s!)'),
        h(
          'td',
          {},
          pinned ? (sameKey(pinned, a.PublicKey) ? 'pinned' : 'pinned: another key!') : 'not pinned',
          ' ',
          button,
        ),
        h('td', {}, verdict({ proof: a.Proof, subjects: [a.AnchorID] })),
      );
    }),
  );
  const manual = h(
    'form',
    { id: 'pin-form' },
    h('label', {}, 'AnchorID ', h('input', { name: 'anchor', required: '' })),
    h('label', {}, ' public JWK ', h('input', { name: 'jwk', size: '60', required: '' })),
    h('button', {}, 'pin'),
  );
  manual.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(manual);
    let jwk: PublicJwk | null = null;
    try {
      const text = data.get('jwk');
      jwk = typeof text === 'string' ? asPublicJwk(JSON.parse(text)) : null;
    } catch {
      jwk = null;
    }
    if (jwk === null) {
      alert('not a P-256 public JWK');
      return;
    }
    const anchorId = data.get('anchor');
    if (typeof anchorId === 'string') pinAnchor(anchorId, jwk);
    void route();
  });
  return [
    h('h2', {}, 'Trust anchors'),
    h(
      'p',
      {},
      'Thumbprints are RFC 7638 SHA-256, computed in this browser. Pin an anchor only after comparing its thumbprint with the HSM ceremony record (metadata-signing) or with Org2’s verifier key record (verifier). Records verify against the keys pinned here, kept in this browser.',
    ),
    table(['anchor', 'kind', 'status', 'thumbprint', 'pinned', 'record'], rows, { id: 'anchors' }),
    h('h3', {}, 'Pin a key you received out of band'),
    manual,
  ];
}

function sameKey(a: PublicJwk, b: PublicJwk): boolean {
  return a.x === b.x && a.y === b.y;
}

async function batchPage(batchId: string): Promise<Node[]> {
  const batch = await api<Batch>(`/api/batches/${encodeURIComponent(batchId)}`);
  return [
    h('h2', {}, `Attestation batch ${batch.BatchID}`),
    h(
      'dl',
      { class: 'summary' },
      h('dt', {}, 'verifier'),
      h('dd', {}, batch.VerifierID),
      h('dt', {}, 'Merkle root (RFC 9162)'),
      h('dd', { class: 'mono' }, batch.MerkleRoot),
      h('dt', {}, 'results'),
      h('dd', {}, `${String(batch.Count)}, issued ${batch.FirstIssuedAt} … ${batch.LastIssuedAt}`),
      h('dt', {}, 'contraindicated'),
      h(
        'dd',
        {},
        batch.Contraindicated.flatMap((d) => [link(`#/device/${d}`, d), ' ']),
      ),
      h('dt', {}, 'suspended'),
      h('dd', {}, batch.SuspendedDevices.join(', ') || 'none'),
    ),
    verdict({ proof: batch.Proof, subjects: [batch.BatchID] }),
    membershipForm(batch),
  ];
}

/**
 * A member's inclusion proof, checked here against the root that the ledger holds (and the
 * verifier signed): the auditor pastes the result and the proof a device received (the agent's
 * attestation outcome, `result` and `recorded.proof`). The ledger keeps only the root.
 */
function membershipForm(batch: Batch): HTMLElement {
  const answer = h('p', { id: 'membership', class: 'reasons' });
  const form = h(
    'form',
    { id: 'membership-form' },
    h('h3', {}, 'Check a member'),
    h('label', {}, 'result (JSON) ', h('textarea', { name: 'result', rows: '5', cols: '80', required: '' })),
    h('label', {}, ' inclusion proof (JSON) ', h('textarea', { name: 'proof', rows: '3', cols: '80', required: '' })),
    h('button', {}, 'check'),
    answer,
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const parse = (name: string): unknown => {
      const text = data.get(name);
      try {
        return typeof text === 'string' ? JSON.parse(text) : null;
      } catch {
        return null;
      }
    };
    void checkMembership(parse('result'), parse('proof'), batch).then((check) => {
      answer.setAttribute('data-state', check.ok ? 'verified' : 'not-verified');
      answer.textContent = check.ok
        ? `VERIFIED: leaf ${check.leafHash} is a member of batch ${batch.BatchID} (root ${batch.MerkleRoot})`
        : `NOT verified: ${check.reason}`;
    });
  });
  return form;
}

async function transactionPage(txId: string): Promise<Node[]> {
  const tx = await transaction(txId);
  if (tx === null) throw new NotFound(txId);
  return [
    h('h2', {}, 'Transaction'),
    h(
      'dl',
      { class: 'summary' },
      h('dt', {}, 'id'),
      h('dd', { class: 'mono' }, tx.TxID),
      h('dt', {}, 'block'),
      h('dd', {}, String(tx.BlockNumber)),
      h('dt', {}, 'validation'),
      h('dd', {}, tx.ValidationCode === 0 ? 'VALID' : `code ${String(tx.ValidationCode)}`),
      h('dt', {}, 'function'),
      h('dd', {}, tx.Method),
    ),
    h('h3', {}, 'Submitted request'),
    h('pre', {}, prettyJson(tx.Args[0] ?? '')),
  ];
}

function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

async function searchPage(q: string): Promise<Node[]> {
  const { Results: results } = await api<{ Results: { Kind: string; ID: string }[] }>(
    `/api/search?q=${encodeURIComponent(q)}`,
  );
  const only = results.length === 1 ? results[0] : undefined;
  if (only) {
    location.replace(`#/${only.Kind === 'transaction' ? 'tx' : only.Kind}/${only.ID}`);
    return [];
  }
  return [
    h('h2', {}, `Search: ${q}`),
    h(
      'ul',
      {},
      results.map((r) =>
        h('li', {}, link(`#/${r.Kind === 'transaction' ? 'tx' : r.Kind}/${r.ID}`, `${r.Kind} ${r.ID}`)),
      ),
    ),
  ];
}

// ---- the pinned-anchor banner and the router ------------------------------------------------------

/** Until an anchor is pinned, offers the ledger's active metadata-signing anchor, fetched once, to confirm. */
async function pinBanner(): Promise<Node | null> {
  if (pinnedAnchors().size > 0) return null;
  const anchors = await api<Anchor[]>('/api/anchors');
  const metadata = anchors.find((a) => a.Kind === 'metadata-signing' && a.Status === 'active');
  if (!metadata)
    return h('div', { class: 'banner' }, 'No anchor is pinned and the ledger has no active metadata-signing anchor.');
  const thumbprint = await jwkThumbprint(metadata.PublicKey);
  const button = h('button', { id: 'pin-default' }, 'I compared it: pin this anchor');
  button.addEventListener('click', () => {
    pinAnchor(metadata.AnchorID, metadata.PublicKey);
    void route();
  });
  return h(
    'div',
    { class: 'banner', id: 'pin-banner' },
    h(
      'p',
      {},
      'No trust anchor is pinned in this browser, so no record can be verified yet. The ledger’s active metadata-signing anchor is ',
      h('strong', {}, metadata.AnchorID),
      ' with RFC 7638 thumbprint',
    ),
    h('p', { class: 'mono', id: 'default-thumbprint' }, thumbprint),
    h(
      'p',
      {},
      'Compare it with the HSM ceremony record before pinning. Verifier anchors are pinned on the ',
      link('#/anchors', 'trust anchors'),
      ' page.',
    ),
    button,
  );
}

async function render(path: string, params: URLSearchParams): Promise<Node[]> {
  const [, page = 'fleet', id = ''] = path.split('/');
  const decoded = decodeURIComponent(id);
  switch (page) {
    case 'device':
      return devicePage(decoded);
    case 'key':
      return keyPage(decoded);
    case 'anchors':
      return anchorsPage();
    case 'batch':
      return batchPage(decoded);
    case 'tx':
      return transactionPage(decoded);
    case 'search':
      return searchPage(params.get('q') ?? '');
    default:
      return fleetPage(params);
  }
}

const outlet = (): HTMLElement => document.getElementById('page') ?? document.body;

async function route(): Promise<void> {
  const [path = '/', query = ''] = location.hash.replace(/^#/, '').split('?');
  const target = outlet();
  target.setAttribute('aria-busy', 'true');
  let nodes: Node[];
  try {
    const banner = await pinBanner();
    nodes = [...(banner ? [banner] : []), ...(await render(path === '' ? '/' : path, new URLSearchParams(query)))];
  } catch (err) {
    nodes = [
      h('p', { class: 'error' }, err instanceof NotFound ? `Not found on the ledger: ${err.message}` : String(err)),
    ];
  }
  target.replaceChildren(...nodes);
  target.setAttribute('aria-busy', 'false');
}

function start(): void {
  if (!('subtle' in crypto)) {
    outlet().replaceChildren(
      h('p', { class: 'error' }, 'WebCrypto is unavailable: open the console over https or on localhost.'),
    );
    return;
  }
  const search = document.getElementById('search') as HTMLFormElement | null;
  search?.addEventListener('submit', (event) => {
    event.preventDefault();
    const q = new FormData(search).get('q');
    if (typeof q === 'string' && q.trim() !== '') location.hash = `#/search?q=${encodeURIComponent(q.trim())}`;
  });
  window.addEventListener('hashchange', () => void route());
  void route();
}

start();
