import { newBearerMinter, readCredentialsFile } from '../http/bearer.js';

export interface OperatorAuthOptions {
  /** A credentials file written by `keyfleet credentials create … --role operator`. */
  readonly credentialsFile: string;
  /** Default `keyfleet-gateway`. */
  readonly audience?: string;
  readonly now?: () => Date;
}

/**
 * Bearer tokens for the operator calls the fleet makes (enrolment tokens, device keys, reference
 * values, audit reads): the shared minter over an operator's credentials file.
 */
export function newOperatorAuthorization(options: OperatorAuthOptions): () => Promise<string> {
  return newBearerMinter({
    credentials: readCredentialsFile(options.credentialsFile, ['operator']),
    ...(options.audience === undefined ? {} : { audience: options.audience }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
}
