#!/usr/bin/env node
import { runService } from './service-process';
import { openVerifier } from './verifier-app';
import { loadVerifierConfig } from './verifier-config';

/** The verifier process (Org2): configuration from the environment, signals, orderly shutdown. */
runService('verifier', async () => {
  const config = loadVerifierConfig(process.env);
  const verifier = await openVerifier(config);
  const { connectionProfile: fabric, org } = config.ledger;
  return { service: verifier, ...config.http, ready: { fabric, org, verifierId: verifier.verifierId } };
});
