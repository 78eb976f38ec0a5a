import { common, ledger, msp, peer } from '@hyperledger/fabric-protos';

/** One transaction of a block, as the ledger itself recorded it. */
export interface BlockTransaction {
  readonly blockNumber: number;
  readonly transactionId: string;
  /** When the client made the transaction (its channel header), ISO 8601. */
  readonly timestamp: string;
  /** The chaincode (namespace) the transaction invoked. */
  readonly chaincode: string;
  /** The contract function, e.g. `EnrolDevice`. */
  readonly method: string;
  /** The function's arguments, as strings. */
  readonly args: readonly string[];
  readonly creator: { readonly mspId: string; readonly certificatePem: string };
  /** The committing peer's validation code (`VALID` = 0). */
  readonly validationCode: number;
  /** The world-state writes the endorsers agreed on, as the block carries them. */
  readonly writes: readonly StateWrite[];
}

/** One key the transaction wrote (or deleted) in a chaincode namespace. */
export interface StateWrite {
  readonly namespace: string;
  readonly key: string;
  readonly isDelete: boolean;
  /** The value written, as UTF-8 (keyfleet writes JSON). */
  readonly value: string;
}

/**
 * The endorser transactions of a block (common.Block bytes, as qscc's GetBlockByNumber or the
 * block event service return them). Configuration and other non-chaincode envelopes are skipped.
 */
export function decodeBlock(bytes: Uint8Array): BlockTransaction[] {
  const block = common.Block.deserializeBinary(bytes);
  const blockNumber = block.getHeader()?.getNumber() ?? 0;
  const filter = block.getMetadata()?.getMetadataList_asU8()[common.BlockMetadataIndex.TRANSACTIONS_FILTER];
  const out: BlockTransaction[] = [];
  block
    .getData()
    ?.getDataList_asU8()
    .forEach((envelopeBytes, index) => {
      const payload = common.Payload.deserializeBinary(
        common.Envelope.deserializeBinary(envelopeBytes).getPayload_asU8(),
      );
      const header = payload.getHeader();
      if (!header) return;
      const channelHeader = common.ChannelHeader.deserializeBinary(header.getChannelHeader_asU8());
      if (channelHeader.getType() !== common.HeaderType.ENDORSER_TRANSACTION) return;
      const creator = msp.SerializedIdentity.deserializeBinary(
        common.SignatureHeader.deserializeBinary(header.getSignatureHeader_asU8()).getCreator_asU8(),
      );
      const action = peer.Transaction.deserializeBinary(payload.getData_asU8()).getActionsList()[0];
      if (!action) return;
      const actionPayload = peer.ChaincodeActionPayload.deserializeBinary(action.getPayload_asU8());
      const proposal = peer.ChaincodeProposalPayload.deserializeBinary(
        actionPayload.getChaincodeProposalPayload_asU8(),
      );
      const spec = peer.ChaincodeInvocationSpec.deserializeBinary(proposal.getInput_asU8()).getChaincodeSpec();
      const args = (spec?.getInput()?.getArgsList_asU8() ?? []).map((arg) => Buffer.from(arg).toString());
      out.push({
        blockNumber,
        transactionId: channelHeader.getTxId(),
        timestamp: isoTime(channelHeader.getTimestamp() as unknown),
        chaincode: spec?.getChaincodeId()?.getName() ?? '',
        method: args[0] ?? '',
        args: args.slice(1),
        creator: { mspId: creator.getMspid(), certificatePem: Buffer.from(creator.getIdBytes_asU8()).toString() },
        validationCode: filter?.[index] ?? -1,
        writes: stateWrites(actionPayload),
      });
    });
  return out;
}

/** The public writes of the endorsed action: proposal response payload → chaincode action → rwset. */
function stateWrites(actionPayload: peer.ChaincodeActionPayload): StateWrite[] {
  const endorsed = actionPayload.getAction();
  if (!endorsed) return [];
  const response = peer.ProposalResponsePayload.deserializeBinary(endorsed.getProposalResponsePayload_asU8());
  const results = peer.ChaincodeAction.deserializeBinary(response.getExtension_asU8()).getResults_asU8();
  return ledger.rwset.TxReadWriteSet.deserializeBinary(results)
    .getNsRwsetList()
    .flatMap((ns) =>
      ledger.rwset.kvrwset.KVRWSet.deserializeBinary(ns.getRwset_asU8())
        .getWritesList()
        .map((w) => ({
          namespace: ns.getNamespace(),
          key: w.getKey(),
          isDelete: w.getIsDelete(),
          value: Buffer.from(w.getValue_asU8()).toString(),
        })),
    );
}

/** The height of a channel from qscc's GetChainInfo answer (common.BlockchainInfo bytes). */
export function chainHeight(bytes: Uint8Array): number {
  return common.BlockchainInfo.deserializeBinary(bytes).getHeight();
}

/** A google.protobuf.Timestamp (typed loosely: fabric-protos does not ship its typings) as ISO 8601. */
function isoTime(timestamp: unknown): string {
  const t = timestamp as { getSeconds?: () => number; getNanos?: () => number } | undefined;
  if (!t?.getSeconds || !t.getNanos) return '';
  return new Date(t.getSeconds() * 1000 + Math.floor(t.getNanos() / 1e6)).toISOString();
}
