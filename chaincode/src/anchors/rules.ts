/** The trust anchors' own rules: pure functions over records, no ledger access. */
import {
  AnchorKind,
  AnchorStatus,
  type Caller,
  ErrorCode,
  LedgerError,
  type Proof,
  type PublicJwk,
  Role,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';

/**
 * Who may register or replace which kind of anchor: a verifier (Org2) only verifier anchors, an
 * operator (Org1) every other kind, so neither organisation can put its key where the other's is pinned.
 */
export function assertAnchorKindFor(caller: Caller, kind: AnchorKind, what: 'register' | 'replace'): void {
  const verifierKind = kind === AnchorKind.Verifier;
  if (verifierKind !== (caller.Role === Role.Verifier)) {
    throw new LedgerError(
      ErrorCode.AccessDenied,
      verifierKind
        ? `only the verifier organisation may ${what} a verifier anchor`
        : `role ${caller.Role} may ${what} only verifier anchors, not ${kind}`,
    );
  }
}

export function assertActive(anchor: TrustAnchorRecord): void {
  if (anchor.Status !== AnchorStatus.Active) {
    throw new LedgerError(ErrorCode.AnchorInactive, `trust anchor ${anchor.AnchorID} is ${anchor.Status}`);
  }
}

/** A key already pinned under another anchor id is not pinned twice. */
export function assertNewKey(anchors: readonly TrustAnchorRecord[], thumbprint: string): void {
  const clash = anchors.find((anchor) => anchor.Thumbprint === thumbprint);
  if (clash !== undefined) {
    throw new LedgerError(ErrorCode.AnchorExists, `this public key is already anchor ${clash.AnchorID}`);
  }
}

export function activeMetadataAnchor(anchors: readonly TrustAnchorRecord[]): TrustAnchorRecord | null {
  return (
    anchors.find((anchor) => anchor.Kind === AnchorKind.MetadataSigning && anchor.Status === AnchorStatus.Active) ??
    null
  );
}

/**
 * How a new anchor of `kind` is authorised: by a proof of possession (the bootstrap metadata-signing
 * anchor, and every verifier anchor, Org2's own), or by the active metadata-signing anchor.
 */
export function registrationSigner(
  kind: AnchorKind,
  metadata: TrustAnchorRecord | null,
): { possession: true; refusal: string } | { possession: false } {
  if (kind === AnchorKind.Verifier) {
    return { possession: true, refusal: 'a verifier anchor JWS must be made by the anchor it registers' };
  }
  if (metadata === null) {
    if (kind !== AnchorKind.MetadataSigning) {
      throw new LedgerError(
        ErrorCode.AnchorNotFound,
        'no metadata-signing anchor is registered yet: bootstrap one first',
      );
    }
    return { possession: true, refusal: 'the bootstrap JWS must be made by the anchor it registers' };
  }
  if (kind === AnchorKind.MetadataSigning) {
    throw new LedgerError(
      ErrorCode.AnchorExists,
      `metadata-signing anchor ${metadata.AnchorID} is active: use ReplaceTrustAnchor`,
    );
  }
  return { possession: false };
}

/** The metadata-signing anchor is only ever replaced; device-CA and verifier anchors may be retired. */
export function assertRetirable(anchor: TrustAnchorRecord): void {
  assertActive(anchor);
  if (anchor.Kind === AnchorKind.MetadataSigning) {
    throw new LedgerError(
      ErrorCode.IllegalTransition,
      'the metadata-signing anchor cannot be retired, only replaced (ReplaceTrustAnchor)',
    );
  }
}

export interface NewAnchor {
  AnchorID: string;
  Kind: AnchorKind;
  PublicKey: PublicJwk;
  Thumbprint: string;
  Description: string;
  PossessionJWS: string | null;
}

export function anchorRecord(anchor: NewAnchor, at: string, by: string, proof: Proof): TrustAnchorRecord {
  return {
    DocType: 'anchor',
    AnchorID: anchor.AnchorID,
    Kind: anchor.Kind,
    PublicKey: anchor.PublicKey,
    Thumbprint: anchor.Thumbprint,
    Description: anchor.Description,
    Status: AnchorStatus.Active,
    RegisteredAt: at,
    RegisteredBy: by,
    RetiredAt: null,
    ReplacedBy: null,
    PossessionJWS: anchor.PossessionJWS,
    Proof: proof,
  };
}

export function retired(
  anchor: TrustAnchorRecord,
  at: string,
  proof: Proof,
  replacedBy: string | null = anchor.ReplacedBy,
): TrustAnchorRecord {
  return { ...anchor, Status: AnchorStatus.Retired, RetiredAt: at, ReplacedBy: replacedBy, Proof: proof };
}
