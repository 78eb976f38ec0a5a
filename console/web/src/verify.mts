import { canonicalJson } from './canonical.mjs';

/** A record's Proof as the contract stores it (chaincode/src/types.ts `Proof`). */
export interface Proof {
  readonly AnchorID: string;
  readonly JWS: string;
  readonly TxID: string;
  readonly Principal: unknown;
}

/** A P-256 public key as a trust anchor holds it. */
export interface PublicJwk {
  readonly kty: 'EC';
  readonly crv: 'P-256';
  readonly x: string;
  readonly y: string;
}

/** The transaction as the ledger's blocks hold it (the console's `/api/transactions/:id`). */
export interface TransactionLocation {
  readonly TxID: string;
  readonly BlockNumber: number;
  readonly ValidationCode: number;
  readonly Method: string;
  readonly Args: readonly string[];
}

export interface ProofCheck {
  readonly proof: Proof;
  /** Ids of which the signed request must name one (the device, key, anchor or batch the record is about). */
  readonly subjects: readonly string[];
  /** The TxID under which the ledger's history lists this state of the record, when it comes from history. */
  readonly historyTxId?: string;
  /** The transaction that Proof.TxID names, from the blocks; null when no block holds it. */
  readonly transaction: TransactionLocation | null;
}

export interface Verdict {
  readonly verified: boolean;
  /** Why not, one line each; empty when verified. */
  readonly reasons: readonly string[];
  /** The signed request's Action (the transaction that wrote the record), when the JWS could be read. */
  readonly action: string | null;
  readonly request: Readonly<Record<string, unknown>> | null;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();
const compact = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** RFC 4648 §5 base64url to bytes (a text encoding, not cryptography). */
export function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function base64Url(bytes: ArrayBuffer): string {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** RFC 7638 thumbprint (SHA-256) of a P-256 JWK, as the ledger stores it in `Thumbprint`. */
export async function jwkThumbprint(jwk: PublicJwk): Promise<string> {
  const members = canonicalJson({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return base64Url(await crypto.subtle.digest('SHA-256', encoder.encode(members)));
}

/**
 * Checks a record's Proof the way the contract checked the request (docs/ledger.md, "Signature"),
 * with the auditor's pinned key instead of the ledger's copy: an ES256 compact JWS whose `kid` is
 * the Proof's AnchorID, a signature that verifies (WebCrypto ECDSA P-256 / SHA-256, RFC 7518 §3.4
 * raw r‖s), a payload that is canonical JSON, names the record's subject and the Proof's Principal;
 * and a transaction in a VALID block whose submitted request and JWS are exactly these.
 */
export async function verifyProof(check: ProofCheck, pinned: ReadonlyMap<string, PublicJwk>): Promise<Verdict> {
  const { proof } = check;
  const reasons: string[] = [];
  const fail = (reason: string): Verdict => ({
    verified: false,
    reasons: [...reasons, reason],
    action: null,
    request: null,
  });
  if (typeof proof.JWS !== 'string' || !compact.test(proof.JWS)) return fail('the JWS is not a compact JWS');
  const [headerPart = '', payloadPart = '', signaturePart = ''] = proof.JWS.split('.');
  let header: Record<string, unknown>;
  let payloadText: string;
  let request: Record<string, unknown>;
  try {
    header = JSON.parse(decoder.decode(base64UrlBytes(headerPart))) as Record<string, unknown>;
    payloadText = decoder.decode(base64UrlBytes(payloadPart));
    const parsed: unknown = JSON.parse(payloadText);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      return fail('the JWS payload is not a JSON object');
    }
    request = parsed as Record<string, unknown>;
  } catch {
    return fail('the JWS header or payload is not JSON');
  }
  if (Object.keys(header).some((name) => !['alg', 'kid', 'typ'].includes(name)) || header.alg !== 'ES256') {
    reasons.push('the JWS header is not {alg: ES256, kid}');
  }
  if (header.kid !== proof.AnchorID) reasons.push(`the JWS kid is not the Proof's anchor ${proof.AnchorID}`);

  const anchor = pinned.get(proof.AnchorID);
  if (anchor === undefined) {
    reasons.push(`anchor ${proof.AnchorID} is not pinned`);
  } else {
    const key = await crypto.subtle.importKey(
      'jwk',
      { kty: anchor.kty, crv: anchor.crv, x: anchor.x, y: anchor.y },
      { name: 'ECDSA', namedCurve: 'P-256' },
      false,
      ['verify'],
    );
    const signature = base64UrlBytes(signaturePart);
    const signed = encoder.encode(`${headerPart}.${payloadPart}`);
    const good =
      signature.length === 64 &&
      (await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, signature, signed));
    if (!good) reasons.push(`the signature does not verify with pinned anchor ${proof.AnchorID}`);
  }

  if (canonicalJson(request) !== payloadText) {
    reasons.push('the signed payload is not canonical JSON');
  }
  if (canonicalJson(request.Principal ?? null) !== canonicalJson(proof.Principal ?? null)) {
    reasons.push("the signed request's Principal is not the Proof's");
  }
  if (!check.subjects.some((subject) => namedIn(request, subject))) {
    reasons.push(`the signed request does not name ${check.subjects.join(' or ')}`);
  }
  if (check.historyTxId !== undefined && check.historyTxId !== proof.TxID) {
    reasons.push(`the history lists this state under ${check.historyTxId}, the Proof under ${proof.TxID}`);
  }
  const tx = check.transaction;
  if (tx === null) {
    reasons.push(`no block holds transaction ${proof.TxID}`);
  } else {
    if (tx.TxID !== proof.TxID) reasons.push('the block answer is for another transaction');
    if (tx.ValidationCode !== 0) reasons.push(`transaction ${proof.TxID} is not VALID (code ${tx.ValidationCode})`);
    if (!tx.Args.includes(proof.JWS)) reasons.push(`transaction ${proof.TxID} did not submit this JWS`);
    if (!sameJson(tx.Args[0], payloadText)) reasons.push(`transaction ${proof.TxID} did not submit this request`);
  }
  const action = typeof request.Action === 'string' ? request.Action : null;
  return { verified: reasons.length === 0, reasons, action, request };
}

function sameJson(submitted: string | undefined, canonical: string): boolean {
  try {
    return submitted !== undefined && canonicalJson(JSON.parse(submitted)) === canonical;
  } catch {
    return false;
  }
}

/** Whether the request is about `subject`: the fields that name records, and a batch's suspended devices. */
function namedIn(request: Record<string, unknown>, subject: string): boolean {
  for (const field of ['DeviceID', 'KeyID', 'AnchorID', 'NewAnchorID', 'OldAnchorID', 'BatchID']) {
    if (request[field] === subject) return true;
  }
  const contraindicated = request.Contraindicated;
  return Array.isArray(contraindicated) && contraindicated.includes(subject);
}
