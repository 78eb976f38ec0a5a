import { HttpError, newHttpClient, type HttpClient, type TlsTrust } from '@keyfleet/agent';

/**
 * The `keyfleet` CLI's client of the gateway's REST API: the shared keyfleet HTTP client
 * (agent/src/http/), whose refusals are {@link HttpError}s carrying the gateway's code.
 */
export type ApiClient = HttpClient;
export { HttpError as ApiError };

export interface ApiClientOptions {
  readonly baseUrl: string;
  /** A fresh `Authorization` header value per request, or undefined for public routes. */
  readonly authorization?: () => Promise<string | undefined>;
  /** The operator's CA certificate (KEYFLEET_CA_FILE). */
  readonly tls?: TlsTrust;
  readonly timeoutMs?: number;
}

export function newApiClient(options: ApiClientOptions): ApiClient {
  return newHttpClient({ ...options, serviceName: 'gateway (KEYFLEET_URL)' });
}
