/** A small client of the gateway's REST API, used by the `keyfleet` CLI and the tests. */
export interface ApiClient {
  request<T = unknown>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T>;
}

/** An error answer from the gateway, with its coded body. */
export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ApiClientOptions {
  readonly baseUrl: string;
  /** A fresh `Authorization` header value per request, or undefined for public routes. */
  readonly authorization?: () => Promise<string | undefined>;
  readonly timeoutMs?: number;
}

export function newApiClient(options: ApiClientOptions): ApiClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  return {
    async request<T>(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<T> {
      const headers: Record<string, string> = {};
      const authorization = await options.authorization?.();
      if (authorization !== undefined) headers.authorization = authorization;
      if (body !== undefined) headers['content-type'] = 'application/json';
      let response: Response;
      try {
        response = await fetch(`${base}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
        });
      } catch (err) {
        throw new ApiError(0, 'GATEWAY_UNREACHABLE', `cannot reach the gateway at ${base} (KEYFLEET_URL)`, undefined, {
          cause: err,
        });
      }
      const text = await response.text();
      const parsed: unknown = text === '' ? null : JSON.parse(text);
      if (!response.ok) {
        const error = (parsed as { error?: { code?: string; message?: string; detail?: string } } | null)?.error;
        throw new ApiError(
          response.status,
          error?.code ?? `HTTP_${response.status}`,
          error?.message ?? response.statusText,
          error?.detail,
        );
      }
      return parsed as T;
    },
  };
}
