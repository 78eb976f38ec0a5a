import './logging.js';

import { expect } from 'chai';

import {
  type AttestationRecord,
  ErrorCode,
  EventName,
  TransactionName,
  type TrustAnchorRecord,
} from '@keyfleet/protocol';
import { Harness, expectRejected } from './testing/harness.js';
import type { TestIdentity } from './testing/identities.js';
import type { TestSigner } from './testing/signer.js';

/**
 * The verifier-anchor ceremony: Org2's verifier registers (and rotates) its own key with a proof of
 * possession; Org1 can neither register nor replace a verifier anchor, and Org2 no other kind.
 */
describe('verifier anchors are Org2 keys, registered by Org2 with proof of possession', () => {
  let h: Harness;

  /** Signs `request` with `signer` (kid = `kid`, default the signer's own) and submits it as `who`. */
  const register = async (who: TestIdentity, unsent: Record<string, unknown>, signer: TestSigner, kid?: string) => {
    const request = h.as(who, unsent);
    return JSON.parse(
      await h.invoke(
        who,
        TransactionName.RegisterTrustAnchor,
        JSON.stringify(request),
        await signer.sign(request, kid === undefined ? {} : { kid }),
      ),
    ) as TrustAnchorRecord;
  };

  beforeEach(async () => {
    h = await Harness.create();
    const { metadata } = h.signers;
    await h.write(
      h.ids.operator,
      TransactionName.RegisterTrustAnchor,
      h.anchorRequest(metadata.anchorId, 'metadata-signing', metadata.publicJwk),
    );
  });

  it('registers the verifier key its own caller proves it holds; the record names Org2 and keeps the proof', async () => {
    const { verifier } = h.signers;
    const anchor = await register(
      h.ids.verifier,
      h.anchorRequest('verifier-1', 'verifier', verifier.publicJwk),
      verifier,
    );
    expect(anchor).to.include({ AnchorID: 'verifier-1', Kind: 'verifier', Status: 'active' });
    expect(anchor.RegisteredBy).to.equal('Org2MSP/verifier/verifier-1');
    expect(anchor.PossessionJWS).to.equal(anchor.Proof.JWS);
    expect(anchor.Proof.AnchorID).to.equal('verifier-1');
    expect(h.lastEvent).to.include({ name: EventName.TrustAnchorRegistered });

    // The new anchor is usable at once: the verifier records a result signed by it.
    await h.write(h.ids.operator, TransactionName.EnrolDevice, h.enrolRequest('dev-0001'));
    const record = await h.write<AttestationRecord>(
      h.ids.verifier,
      TransactionName.RecordAttestation,
      h.attestationRequest('dev-0001'),
      verifier,
    );
    expect(record.RecordedBy).to.equal('Org2MSP/verifier/verifier-1');
  });

  it('registers a verifier anchor before any metadata-signing anchor exists (nothing of Org1 is needed)', async () => {
    h = await Harness.create();
    const { verifier } = h.signers;
    const anchor = await register(
      h.ids.verifier,
      h.anchorRequest('verifier-1', 'verifier', verifier.publicJwk),
      verifier,
    );
    expect(anchor.Kind).to.equal('verifier');
  });

  const hostile: {
    name: string;
    code: ErrorCode;
    run: (h: Harness) => Promise<unknown>;
  }[] = [
    {
      name: 'Org1 operator registers a verifier anchor, authorised by the metadata anchor',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.operator,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.metadata,
        ),
    },
    {
      name: 'Org1 operator registers a verifier anchor with its proof of possession',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.operator,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.verifier,
        ),
    },
    {
      name: 'a verifier-role certificate from Org1MSP',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.verifierFromOrg1,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.verifier,
        ),
    },
    {
      name: 'an Org2 auditor',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.auditor,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.verifier,
        ),
    },
    {
      name: 'the verifier registers a device-ca anchor (wrong kind)',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('ca-9', 'device-ca', h.signers.spare.publicJwk),
          h.signers.spare,
          'ca-9',
        ),
    },
    {
      name: 'the verifier registers a metadata-signing anchor (wrong kind)',
      code: ErrorCode.AccessDenied,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('md-9', 'metadata-signing', h.signers.spare.publicJwk),
          h.signers.spare,
          'md-9',
        ),
    },
    {
      name: 'JWS by another key, kid naming the new anchor',
      code: ErrorCode.SignatureInvalid,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.rogue,
          'verifier-1',
        ),
    },
    {
      name: 'JWS by the metadata anchor (kid of another anchor)',
      code: ErrorCode.SignatureInvalid,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.metadata,
        ),
    },
    {
      name: 'JWS by the key, over another request',
      code: ErrorCode.SignatureInvalid,
      run: async (h) => {
        const request = h.as(h.ids.verifier, h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk));
        const other = { ...request, Description: 'something else' };
        return h.invoke(
          h.ids.verifier,
          TransactionName.RegisterTrustAnchor,
          JSON.stringify(request),
          await h.signers.verifier.sign(other),
        );
      },
    },
    {
      name: 'a key that is already another anchor (the metadata key)',
      code: ErrorCode.AnchorExists,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('verifier-1', 'verifier', h.signers.metadata.publicJwk),
          h.signers.metadata,
          'verifier-1',
        ),
    },
    {
      name: 'an AnchorID that is taken',
      code: ErrorCode.AnchorExists,
      run: (h) =>
        register(
          h.ids.verifier,
          h.anchorRequest('hsm-metadata-1', 'verifier', h.signers.verifier.publicJwk),
          h.signers.verifier,
          'hsm-metadata-1',
        ),
    },
  ];

  for (const { name, code, run } of hostile) {
    it(`refuses ${name} with ${code} and writes nothing`, async () => {
      const before = h.stub.snapshot();
      await expectRejected(h, run(h), code);
      expect(h.stub.snapshot()).to.equal(before);
    });
  }

  describe('rotation of a verifier key (ReplaceTrustAnchor)', () => {
    beforeEach(async () => {
      await register(
        h.ids.verifier,
        h.anchorRequest('verifier-1', 'verifier', h.signers.verifier.publicJwk),
        h.signers.verifier,
      );
    });

    const replaceRequest = () =>
      h.req(TransactionName.ReplaceTrustAnchor, {
        OldAnchorID: 'verifier-1',
        NewAnchorID: 'verifier-2',
        PublicKey: h.signers.spare.publicJwk,
        Description: 'verifier key, rotated',
      });
    const replace = async (who: TestIdentity, authoriser: TestSigner, kid?: string) => {
      const request = h.as(who, replaceRequest());
      return h.invoke(
        who,
        TransactionName.ReplaceTrustAnchor,
        JSON.stringify(request),
        await authoriser.sign(request, kid === undefined ? {} : { kid }),
        await h.signers.spare.sign(request, { kid: 'verifier-2' }),
      );
    };

    it('lets the verifier rotate its own key: the old key authorises, the new key proves possession', async () => {
      const replaced = JSON.parse(await replace(h.ids.verifier, h.signers.verifier)) as TrustAnchorRecord;
      expect(replaced).to.include({ AnchorID: 'verifier-2', Kind: 'verifier', Status: 'active' });
      const old = await h.read<TrustAnchorRecord>(h.ids.auditor, TransactionName.GetTrustAnchor, 'verifier-1');
      expect(old).to.include({ Status: 'retired', ReplacedBy: 'verifier-2' });
    });

    const rows: { name: string; code: ErrorCode; run: () => Promise<unknown> }[] = [
      {
        name: 'an operator replacing it, authorised by the metadata anchor',
        code: ErrorCode.AccessDenied,
        run: () => replace(h.ids.operator, h.signers.metadata),
      },
      {
        name: 'the verifier authorising with the metadata anchor',
        code: ErrorCode.SignatureInvalid,
        run: () => replace(h.ids.verifier, h.signers.metadata),
      },
      {
        name: 'the verifier authorising with another key under the old kid',
        code: ErrorCode.SignatureInvalid,
        run: () => replace(h.ids.verifier, h.signers.rogue, 'verifier-1'),
      },
      {
        name: 'the verifier replacing the metadata anchor',
        code: ErrorCode.AccessDenied,
        run: async () => {
          const request = h.as(
            h.ids.verifier,
            h.req(TransactionName.ReplaceTrustAnchor, {
              OldAnchorID: 'hsm-metadata-1',
              NewAnchorID: 'verifier-2',
              PublicKey: h.signers.spare.publicJwk,
              Description: 'x',
            }),
          );
          return h.invoke(
            h.ids.verifier,
            TransactionName.ReplaceTrustAnchor,
            JSON.stringify(request),
            await h.signers.metadata.sign(request),
            await h.signers.spare.sign(request, { kid: 'verifier-2' }),
          );
        },
      },
    ];
    for (const { name, code, run } of rows) {
      it(`refuses ${name} with ${code} and writes nothing`, async () => {
        const before = h.stub.snapshot();
        await expectRejected(h, run(), code);
        expect(h.stub.snapshot()).to.equal(before);
      });
    }
  });
});
