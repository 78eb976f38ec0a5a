import { AsyncLocalStorage } from 'node:async_hooks';
import { PrincipalKind, type RequestPrincipal } from '@keyfleet/protocol';

export type { RequestPrincipal };

const context = new AsyncLocalStorage<RequestPrincipal>();

/**
 * Runs `fn` on behalf of `principal`: every ledger write it makes, however deep, names that principal
 * in its signed request. The HTTP layer enters it after authentication; background work (scheduler,
 * reconcile, start-up) enters it explicitly with a {@link servicePrincipal}.
 */
export function asPrincipal<T>(principal: RequestPrincipal, fn: () => T): T {
  return context.run(principal, fn);
}

/**
 * Makes `principal` the one for the rest of the calling async function (and what it starts), once the
 * function has proven who it works for mid-way, e.g. after verifying a device's signature.
 * The caller's own context is unaffected once the function returns.
 */
export function enterPrincipal(principal: RequestPrincipal): void {
  context.enterWith(principal);
}

/**
 * The principal of the work in progress. A write with none is a programming error (a path that forgot
 * to say on whose behalf it acts), so it throws rather than being attributed to anyone.
 */
export function currentPrincipal(): RequestPrincipal {
  const principal = context.getStore();
  if (principal === undefined) {
    throw new Error('a ledger write outside any principal context: wrap the caller in asPrincipal()');
  }
  return principal;
}

/** The operator gateway's own work, `gateway.<name>` (the chaincode holds Org1 to that prefix). */
export const gatewayService = (name: string): RequestPrincipal => ({
  Kind: PrincipalKind.Service,
  ID: `gateway.${name}`,
});

/** The verifier's own work, `verifier.<name>`. */
export const verifierService = (name: string): RequestPrincipal => ({
  Kind: PrincipalKind.Service,
  ID: `verifier.${name}`,
});

export const devicePrincipal = (deviceId: string): RequestPrincipal => ({ Kind: PrincipalKind.Device, ID: deviceId });
