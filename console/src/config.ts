import { newEnvReader, readTlsSwitch, type Env } from '@keyfleet/gateway';

/** The auditor's console: which ledger it reads, as whom, and where it listens. */
export interface ConsoleConfig {
  readonly http: {
    readonly host: string;
    readonly port: number;
    /**
     * HTTPS (the default): the certificate Org2's TLS CA issued for the console and its key, both
     * files, as the console holds no HSM (docs/console.md, "HTTPS"). Undefined: plain HTTP, a
     * development option allowed only on loopback (KEYFLEET_CONSOLE_TLS=off).
     */
    readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  };
  readonly ledger: {
    /** The connection description (JSON) that network/network.sh writes. */
    readonly connectionProfile: string;
    /** The auditor's organisation: its peer, never the operator's (`Org2`). */
    readonly org: string;
    /** The file identity of that organisation in the connection description (`auditor`). */
    readonly identity: string;
    /** The chaincode name, when not the connection description's (a test namespace). */
    readonly chaincode: string | undefined;
  };
  readonly logLevel: string;
}

/** Reads `KEYFLEET_CONSOLE_*`; every problem is listed in one CONFIG_INVALID error. */
export function loadConsoleConfig(env: Env): ConsoleConfig {
  const read = newEnvReader(env);
  const host = read.str('KEYFLEET_CONSOLE_HTTP_HOST', '127.0.0.1');
  const tls = readTlsSwitch(read, 'KEYFLEET_CONSOLE_', host)
    ? {
        certFile: read.str('KEYFLEET_CONSOLE_TLS_CERT', '.keyfleet/console/tls-cert.pem'),
        keyFile: read.str('KEYFLEET_CONSOLE_TLS_KEY', '.keyfleet/console/tls-key.pem'),
      }
    : undefined;
  const config: ConsoleConfig = {
    http: { host, port: read.int('KEYFLEET_CONSOLE_HTTP_PORT', 8082, 0, 65535), tls },
    ledger: {
      connectionProfile: read.str('KEYFLEET_CONSOLE_FABRIC_CONNECTION', '.fabric/network/connection.json'),
      org: read.str('KEYFLEET_CONSOLE_FABRIC_ORG', 'Org2'),
      identity: read.str('KEYFLEET_CONSOLE_FABRIC_IDENTITY', 'auditor'),
      chaincode: read.optional('KEYFLEET_CONSOLE_FABRIC_CHAINCODE'),
    },
    logLevel: read.str('KEYFLEET_CONSOLE_LOG_LEVEL', 'info'),
  };
  read.done();
  return config;
}
