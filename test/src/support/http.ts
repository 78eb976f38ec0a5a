/** A gateway's answer: status, the body's text, and that text parsed (`{}` when it is not JSON). */
export interface Answer {
  readonly status: number;
  readonly text: string;
  readonly body: Record<string, unknown> & { error?: { code: string; message: string; detail?: string } };
}

export interface CallOptions {
  /** Sent as JSON. */
  readonly body?: unknown;
  /** Sent as is, instead of `body`. */
  readonly raw?: string | Buffer;
  readonly auth?: string;
  /** Default `application/json` when there is a body. */
  readonly contentType?: string;
}

/** One HTTP request to a keyfleet service, as a client would send it. */
export async function callService(baseUrl: string, method: string, path: string, options: CallOptions = {}) {
  const headers: Record<string, string> = {};
  if (options.auth !== undefined) headers.authorization = options.auth;
  const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
  const text = await response.text();
  let parsed: Answer['body'] = {};
  try {
    parsed = text === '' ? {} : (JSON.parse(text) as Answer['body']);
  } catch {
    parsed = {};
  }
  return { status: response.status, text, body: parsed } satisfies Answer;
}
