import { AgentError, AgentErrorCode } from '../errors.js';
import { HttpError } from '../http/client.js';

/**
 * The most specific code of a failure: the server's detail or code, else the agent's or error's
 * code. A server that could not be reached counts as the agent's AGENT_GATEWAY_UNAVAILABLE, so
 * the fleet's operator calls and the devices' own calls tally unreachable gateways alike.
 */
export function failureCode(err: unknown): string {
  if (err instanceof HttpError) return err.answered ? (err.detail ?? err.code) : AgentErrorCode.GatewayUnavailable;
  if (err instanceof AgentError) return err.detail ?? err.code;
  if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return 'ERROR';
}
