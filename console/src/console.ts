import type { FastifyInstance } from 'fastify';
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
export function openConsole(config: ConsoleConfig): Promise<AuditorConsole> {
  const ledger = newFabricAuditorLedger({
    profilePath: config.ledger.connectionProfile,
    org: config.ledger.org,
    identity: config.ledger.identity,
    chaincode: config.ledger.chaincode,
  });
  const server = buildConsoleServer({ ledger, logLevel: config.logLevel });
  return Promise.resolve({
    server,
    ledger,
    async close() {
      await server.close();
      ledger.close();
    },
  });
}
