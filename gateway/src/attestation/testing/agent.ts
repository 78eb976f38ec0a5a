/**
 * Test support: the real device agent's attestation module, loaded at run time from its build
 * (agent/dist). The gateway does not depend on the agent at compile time (the agent runs on devices
 * and the gateway must not need it), so the shape used here is declared locally; `tsc -b` builds the
 * agent before any test runs.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { KeyObject } from 'node:crypto';

export interface AgentEvidenceOptions {
  readonly deviceKey: KeyObject;
  readonly certificateChainPem: string;
  readonly nonce: string;
  readonly measuredFiles: readonly (string | { readonly name: string; readonly path: string })[];
  readonly hwmodel: string;
  readonly swname: string;
  readonly swversion: string;
  readonly ueid?: Uint8Array;
  readonly dbgstat?: number;
  readonly now?: () => Date;
}

export interface AgentAttestation {
  readonly EvidenceProfile: string;
  collectEvidence(options: AgentEvidenceOptions): Promise<string>;
}

const load = createRequire(__filename);

/** The agent's `dist/attestation` directory, whose compiled code is itself a measured file in the tests. */
export const agentAttestationDir = join(dirname(load.resolve('@keyfleet/agent/package.json')), 'dist', 'attestation');

export function loadAgentAttestation(): AgentAttestation {
  return load(join(agentAttestationDir, 'index.js')) as AgentAttestation;
}
