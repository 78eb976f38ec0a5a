import { readFile, stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { GatewayError, GatewayErrorCode, TLS13_ONLY, type HttpsOptions } from '@keyfleet/gateway';
import { newFabricAuditorLedger, type AuditorLedger } from './auditor-ledger';
import type { ConsoleConfig } from './config';
import { buildConsoleServer } from './server';

/** The running console: its HTTP server and the ledger connection it reads through. */
export interface AuditorConsole {
  readonly server: FastifyInstance;
  readonly ledger: AuditorLedger;
  close(): Promise<void>;
}

/** Connects to the auditor's peer and builds the server; the caller listens. */
export async function openConsole(config: ConsoleConfig): Promise<AuditorConsole> {
  const https = config.http.tls === undefined ? undefined : await readTls(config.http.tls);
  const ledger = newFabricAuditorLedger({
    profilePath: config.ledger.connectionProfile,
    org: config.ledger.org,
    identity: config.ledger.identity,
    chaincode: config.ledger.chaincode,
  });
  const server = buildConsoleServer({ ledger, logLevel: config.logLevel, ...(https === undefined ? {} : { https }) });
  return {
    server,
    ledger,
    async close() {
      await server.close();
      ledger.close();
    },
  };
}

/**
 * TLS 1.3 only, with the certificate and key Org2's TLS CA issued for the console. A key file
 * that others may read is refused: it is the one secret the console holds.
 */
async function readTls(files: { readonly certFile: string; readonly keyFile: string }): Promise<HttpsOptions> {
  const invalid = (why: string) => new GatewayError(GatewayErrorCode.ConfigInvalid, why);
  const read = (file: string, name: string) =>
    readFile(file, 'utf8').catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw invalid(`${name} ${file} cannot be read (${code}); npm start issues it (docs/console.md, "HTTPS")`);
    });
  const [cert, key] = await Promise.all([
    read(files.certFile, 'KEYFLEET_CONSOLE_TLS_CERT'),
    read(files.keyFile, 'KEYFLEET_CONSOLE_TLS_KEY'),
  ]);
  if (((await stat(files.keyFile)).mode & 0o077) !== 0) {
    throw invalid(`KEYFLEET_CONSOLE_TLS_KEY ${files.keyFile} may be read by others: make it mode 0600`);
  }
  return { cert, key, ...TLS13_ONLY };
}
