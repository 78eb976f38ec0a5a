import { readFileSync } from 'node:fs';
import { GatewayError, GatewayErrorCode } from './errors';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads settings from the environment, collecting every problem instead of stopping at the first,
 * so an operator fixes them all at once ({@link EnvReader.done}). A PIN is never part of a message.
 */
export interface EnvReader {
  /** A non-empty string, or `fallback`; required when there is no fallback. */
  str(name: string, fallback?: string): string;
  /** An optional string: undefined when unset or empty. */
  optional(name: string): string | undefined;
  /** An integer from `min` to `max`, or `fallback` when unset. */
  int(name: string, fallback: number, min: number, max: number): number;
  /** An HSM user PIN from `<prefix>PIN` or the file named by `<prefix>PIN_FILE`. */
  pin(prefix: string): string;
  /** Records a problem a caller found by its own check. */
  problem(message: string): void;
  /** Throws CONFIG_INVALID listing every problem, if there was one. */
  done(): void;
}

export function newEnvReader(env: Env): EnvReader {
  const problems: string[] = [];
  const optional = (name: string) => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  return {
    optional,
    str(name, fallback) {
      const value = optional(name) ?? fallback;
      if (value === undefined || value === '') {
        problems.push(`${name} is required`);
        return '';
      }
      return value;
    },
    int(name, fallback, min, max) {
      const raw = optional(name);
      if (raw === undefined) return fallback;
      const value = Number(raw);
      if (!Number.isInteger(value) || value < min || value > max) {
        problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
        return fallback;
      }
      return value;
    },
    pin(prefix) {
      const direct = optional(`${prefix}PIN`);
      if (direct !== undefined) return direct;
      const file = optional(`${prefix}PIN_FILE`);
      if (file === undefined) {
        problems.push(`one of ${prefix}PIN or ${prefix}PIN_FILE is required`);
        return '';
      }
      try {
        const pin = readFileSync(file, 'utf8').trim();
        if (pin === '') problems.push(`${prefix}PIN_FILE ${file} is empty`);
        return pin;
      } catch (err) {
        problems.push(`${prefix}PIN_FILE ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        return '';
      }
    },
    problem(message) {
      problems.push(message);
    },
    done() {
      if (problems.length > 0) {
        throw new GatewayError(GatewayErrorCode.ConfigInvalid, `invalid configuration:\n  ${problems.join('\n  ')}`);
      }
    },
  };
}

/** Why `raw` is not a usable service URL (http or https, no credentials, query or fragment), or null. */
export function httpUrlProblem(name: string, raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `${name} must be an http(s) URL, got "${raw}"`;
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.username !== '' || url.password !== '') {
    return `${name} must be an http(s) URL without credentials, got "${url.protocol}//${url.host}"`;
  }
  if (url.search !== '' || url.hash !== '') return `${name} must not have a query or fragment`;
  return null;
}
