import { newTlsFetch, tlsTrustFromEnv } from '@keyfleet/agent';
import { AttestationError, AttestationErrorCode } from '../attestation';
import type { AppraisalAnswer } from '../domain/services';
import { GatewayError, GatewayErrorCode, type GatewayDetail } from '../errors';

/** The device-facing calls the operator gateway forwards to the verifier service. */
export interface VerifierClient {
  challenge(deviceId: string): Promise<{ challenge: string; expiresAt: string }>;
  appraise(evidence: string): Promise<AppraisalAnswer>;
  /** Whether the verifier answers its `/healthz` with 200. */
  healthy(): Promise<boolean>;
}

export interface VerifierClientOptions {
  /** The verifier's base URL, e.g. `http://127.0.0.1:8081` (`KEYFLEET_VERIFIER_URL`). */
  readonly url: string;
  /** Longest wait for one answer; an evidence answer includes the ledger commit (and the batch delay). */
  readonly timeoutMs: number;
  /** The verifier's TLS CA certificate file, for an `https` URL; read at the first call. */
  readonly caFile?: string;
  readonly fetch?: typeof fetch;
}

const attestationCodes: ReadonlySet<string> = new Set(Object.values(AttestationErrorCode));
const gatewayCodes: ReadonlySet<string> = new Set(Object.values(GatewayErrorCode));

interface ErrorAnswer {
  readonly error?: { readonly code?: unknown; readonly message?: unknown; readonly detail?: unknown };
}

/**
 * An HTTP client of the verifier's attestation routes. The verifier's refusals come back as the
 * same coded errors (so the gateway answers the same status and code the verifier did); a
 * verifier that cannot be reached, times out or fails on its own side is VERIFIER_UNAVAILABLE.
 */
export function newVerifierClient(options: VerifierClientOptions): VerifierClient {
  const base = options.url.replace(/\/+$/, '');
  // The verifier starts after the gateway (it pins the device CA the gateway writes), so its CA
  // certificate is read when the first call is made, and again after a failed read.
  let tlsFetch: typeof fetch | undefined;
  const doFetch: typeof fetch =
    options.fetch ??
    ((input, init) => {
      if (tlsFetch === undefined) {
        const caFile = options.caFile;
        tlsFetch =
          caFile === undefined || !base.startsWith('https:')
            ? fetch
            : newTlsFetch(tlsTrustFromEnv({ KEYFLEET_CA_FILE: caFile }));
      }
      return tlsFetch(input, init);
    });

  const unavailable = (why: string, cause?: unknown) =>
    new GatewayError(
      GatewayErrorCode.VerifierUnavailable,
      `the attestation verifier at ${base} ${why}`,
      undefined,
      cause === undefined ? undefined : { cause },
    );

  const call = async (path: string, body: unknown, expected: number): Promise<Record<string, unknown>> => {
    let response: Response;
    try {
      response = await doFetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
      throw unavailable(timedOut ? `did not answer within ${options.timeoutMs} ms` : 'cannot be reached', err);
    }
    let answer: unknown;
    try {
      answer = await response.json();
    } catch (err) {
      throw unavailable(`answered ${response.status} without a JSON body`, err);
    }
    if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) {
      throw unavailable(`answered ${response.status} with a body that is not an object`);
    }
    if (response.status === expected) return answer as Record<string, unknown>;
    throw refusal(response.status, answer);
  };

  /** The verifier's error answer as the gateway's own coded error, with the same HTTP status. */
  const refusal = (status: number, answer: ErrorAnswer): Error => {
    const code = typeof answer.error?.code === 'string' ? answer.error.code : '';
    const message = typeof answer.error?.message === 'string' ? answer.error.message : `status ${status}`;
    const detail = typeof answer.error?.detail === 'string' ? answer.error.detail : undefined;
    // The verifier's verdicts on the evidence, BATCH_FAILED (503, attest again) included.
    if (attestationCodes.has(code)) return new AttestationError(code as AttestationErrorCode, message);
    if (status >= 500) {
      // The verifier's own fault (its ledger, its HSM): not the device's, and its text is not shown.
      return unavailable(`failed with ${status} ${code}`.trimEnd());
    }
    // The verifier is keyfleet's own gateway code: its details are the same closed set.
    if (gatewayCodes.has(code)) return new GatewayError(code as GatewayErrorCode, message, detail as GatewayDetail);
    return new GatewayError(GatewayErrorCode.BadRequest, message);
  };

  return {
    async challenge(deviceId) {
      const answer = await call('/v1/attestation/challenges', { deviceId }, 201);
      if (typeof answer.challenge !== 'string' || typeof answer.expiresAt !== 'string') {
        throw unavailable('answered a challenge without challenge and expiresAt');
      }
      return { challenge: answer.challenge, expiresAt: answer.expiresAt };
    },

    async appraise(evidence) {
      const answer = await call('/v1/attestation/evidence', { evidence }, 200);
      for (const field of ['ear', 'status', 'deviceId', 'result', 'recorded', 'actions', 'findings']) {
        if (!(field in answer)) throw unavailable(`answered an appraisal without ${field}`);
      }
      return answer as unknown as AppraisalAnswer;
    },

    async healthy() {
      try {
        const response = await doFetch(`${base}/healthz`, { signal: AbortSignal.timeout(options.timeoutMs) });
        await response.body?.cancel();
        return response.status === 200;
      } catch {
        return false;
      }
    },
  };
}
