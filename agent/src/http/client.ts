import { type ApiErrorCode, isApiErrorCode } from '@keyfleet/protocol';

import { AgentError } from '../errors.js';
import { newTlsFetch, TlsEnv, type TlsTrust } from './tls.js';

/**
 * The one HTTP client of keyfleet's REST APIs (gateway, verifier), used by the agent, the key
 * client, the fleet simulator and the `keyfleet` CLI. It lives in the agent package because the
 * agent may not depend on the gateway's native dependencies; it belongs in the shared `protocol/`
 * package once that exists.
 */
export interface HttpClient {
  /** The base URL, without a trailing `/`. */
  readonly baseUrl: string;
  /**
   * Sends `body` as JSON (when given) and answers the parsed JSON body of a 2xx answer. Anything
   * else throws an {@link HttpError}: the server's `{error:{code,message,detail}}` when it sent one.
   */
  request<T = unknown>(method: string, path: string, body?: unknown, options?: RequestOptions): Promise<T>;
}

export interface RequestOptions {
  /** An `Authorization` header value for this request, in place of the client's own. */
  readonly authorization?: string;
}

export interface HttpClientOptions {
  /** e.g. `https://gateway.example:8443` */
  readonly baseUrl: string;
  /** A fresh `Authorization` header value per request (a bearer minter), or undefined for none. */
  readonly authorization?: () => Promise<string | undefined>;
  /** The operator's CA certificate and, for mutual TLS, the client's certificate and key. */
  readonly tls?: TlsTrust;
  /** Longest wait for one answer; default 60 s. */
  readonly timeoutMs?: number;
  /** A stand-in transport (unit tests); default a fetch that trusts `tls`. */
  readonly fetch?: typeof fetch;
  /** Names the service in messages, e.g. `gateway`; default `server`. */
  readonly serviceName?: string;
}

/** Codes of failures that are not the server's own answer. */
export const HttpErrorCode = {
  /** No connection, a TLS failure (an untrusted certificate) or no answer in time. */
  Unreachable: 'SERVER_UNREACHABLE',
  /** An answer that is not JSON. */
  NotJson: 'SERVER_NOT_JSON',
} as const;
export type HttpErrorCode = (typeof HttpErrorCode)[keyof typeof HttpErrorCode];

/**
 * The closed set of codes of a failed request: the server's own (keyfleet's API codes,
 * protocol/src/api-errors.ts), `HTTP_<status>` when it sent none this client knows, or an
 * {@link HttpErrorCode}.
 */
export type HttpCode = ApiErrorCode | `HTTP_${number}` | HttpErrorCode;

/**
 * A failed request: an {@link AgentError} with an {@link HttpCode}. `status` is 0 without an
 * answer; `detail` is the server's further code, e.g. a ledger code under `LEDGER_REJECTED`.
 */
export class HttpError extends AgentError {
  override readonly name: string = 'HttpError';
  declare readonly code: HttpCode;

  constructor(
    readonly status: number,
    code: HttpCode,
    message: string,
    detail?: string,
    options?: ErrorOptions,
  ) {
    super(code, message, detail, options);
  }

  /** Whether the server answered (its refusal), rather than could not be reached or understood. */
  get answered(): boolean {
    return this.status !== 0 && this.code !== HttpErrorCode.NotJson;
  }
}

interface ErrorAnswer {
  readonly error?: { readonly code?: unknown; readonly message?: unknown; readonly detail?: unknown };
}

export function newHttpClient(options: HttpClientOptions): HttpClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const doFetch = options.fetch ?? newTlsFetch(options.tls);
  const service = options.serviceName ?? 'server';
  const timeoutMs = options.timeoutMs ?? 60_000;
  return {
    baseUrl,
    async request<T>(method: string, path: string, body?: unknown, requestOptions?: RequestOptions): Promise<T> {
      const headers: Record<string, string> = { accept: 'application/json' };
      const authorization = requestOptions?.authorization ?? (await options.authorization?.());
      if (authorization !== undefined) headers.authorization = authorization;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let status = 0;
      let text: string;
      try {
        const response = await doFetch(`${baseUrl}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        status = response.status;
        text = await response.text();
      } catch (err) {
        const why = reason(err);
        // A certificate the client does not trust: say what to trust.
        const hint = /CERT|UNABLE_TO_|SELF_SIGNED/.test(why)
          ? `; trust the operator's CA certificate (${TlsEnv.ca})`
          : '';
        throw new HttpError(
          0,
          HttpErrorCode.Unreachable,
          `cannot reach the ${service} at ${baseUrl} (${why})${hint}`,
          undefined,
          { cause: err },
        );
      }
      let answer: unknown;
      try {
        answer = text === '' ? null : JSON.parse(text);
      } catch (err) {
        throw new HttpError(
          status,
          HttpErrorCode.NotJson,
          `${method} ${path} answered ${status} without JSON`,
          undefined,
          { cause: err },
        );
      }
      if (status < 200 || status > 299) {
        const error = (answer as ErrorAnswer | null)?.error;
        throw new HttpError(
          status,
          isApiErrorCode(error?.code) ? error.code : (`HTTP_${status}` as const),
          typeof error?.message === 'string' ? error.message : `${method} ${path} answered ${status}`,
          typeof error?.detail === 'string' ? error.detail : undefined,
        );
      }
      return answer as T;
    },
  };
}

/** The innermost cause's code or message: `ECONNREFUSED`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, … */
function reason(err: unknown): string {
  let at: unknown = err;
  for (let depth = 0; depth < 4; depth++) {
    const cause = (at as { cause?: unknown } | null)?.cause;
    if (cause === undefined || cause === null) break;
    at = cause;
  }
  const code = (at as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return code;
  if (at instanceof Error) return at.name === 'TimeoutError' ? 'no answer in time' : at.message;
  return String(at);
}
