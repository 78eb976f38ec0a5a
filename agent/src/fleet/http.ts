import { AgentError, AgentErrorCode } from '../errors.js';

export interface JsonClientOptions {
  readonly baseUrl: string;
  readonly fetch?: typeof fetch;
}

export interface JsonClient {
  /** Sends JSON, answers the parsed body; a non-2xx answer throws an AgentError with the gateway's code. */
  call<T>(method: string, path: string, body?: unknown, authorization?: string): Promise<T>;
}

interface ErrorAnswer {
  readonly error?: { readonly code?: unknown; readonly detail?: unknown; readonly message?: unknown };
}

/** The few gateway routes the agent library does not call itself (tokens, challenges, audit). */
export function newJsonClient(options: JsonClientOptions): JsonClient {
  const doFetch = options.fetch ?? fetch;
  const base = options.baseUrl.replace(/\/+$/, '');
  return {
    async call<T>(method: string, path: string, body?: unknown, authorization?: string): Promise<T> {
      const headers: Record<string, string> = { accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = 'application/json';
      if (authorization !== undefined) headers.authorization = authorization;
      let response: Response;
      try {
        response = await doFetch(`${base}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (err) {
        throw new AgentError(AgentErrorCode.GatewayUnavailable, `cannot reach ${base}${path}`, undefined, {
          cause: err,
        });
      }
      const text = await response.text();
      let answer: unknown;
      try {
        answer = text === '' ? {} : JSON.parse(text);
      } catch (err) {
        throw new AgentError(
          AgentErrorCode.GatewayUnavailable,
          `${method} ${path} answered ${response.status} without JSON`,
          undefined,
          { cause: err },
        );
      }
      if (!response.ok) {
        const error = (answer as ErrorAnswer).error;
        const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`;
        const detail = typeof error?.detail === 'string' ? error.detail : code;
        const message = typeof error?.message === 'string' ? error.message : `status ${response.status}`;
        throw new AgentError(AgentErrorCode.GatewayRejected, `${method} ${path}: ${message}`, detail);
      }
      return answer as T;
    },
  };
}

/** The most specific code of a failure: the gateway's detail, else the agent's or error's code. */
export function failureCode(err: unknown): string {
  if (err instanceof AgentError) return err.detail ?? err.code;
  if (typeof err === 'object' && err !== null && typeof (err as { code?: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return 'ERROR';
}
