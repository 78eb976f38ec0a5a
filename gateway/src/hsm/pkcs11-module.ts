import type * as Pkcs11js from 'pkcs11js';
import { FindWorker } from './find-worker.js';
import { HsmError, HsmErrorCode } from './hsm-error.js';

/** The pkcs11js module namespace (constants, PKCS11 class, error classes). */
export type Pkcs11Js = typeof Pkcs11js;

/** Many shared holders at once, or one exclusive holder; waiters are served in arrival order. */
export interface SharedExclusiveLock {
  shared<T>(task: () => Promise<T>): Promise<T>;
  exclusive<T>(task: () => Promise<T>): Promise<T>;
}

function newSharedExclusiveLock(): SharedExclusiveLock {
  let holders = 0; // > 0: that many shared holders; -1: one exclusive holder
  const waiting: { exclusive: boolean; wake: () => void }[] = [];
  const admit = (): void => {
    while (waiting.length > 0) {
      const next = waiting[0];
      if (next === undefined) return;
      if (next.exclusive ? holders !== 0 : holders < 0) return;
      waiting.shift();
      holders = next.exclusive ? -1 : holders + 1;
      next.wake();
      if (next.exclusive) return;
    }
  };
  const hold = async <T>(exclusive: boolean, task: () => Promise<T>): Promise<T> => {
    await new Promise<void>((wake) => {
      waiting.push({ exclusive, wake });
      admit();
    });
    try {
      return await task();
    } finally {
      holders = exclusive ? 0 : holders - 1;
      admit();
    }
  };
  return { shared: (task) => hold(false, task), exclusive: (task) => hold(true, task) };
}

/** One loaded, initialised PKCS#11 library shared by every Hsm in the process. */
export interface LoadedModule {
  readonly js: Pkcs11Js;
  readonly lib: Pkcs11js.PKCS11;
  readonly path: string;
  /**
   * Calls that create or destroy objects hold it exclusively, every other call shared. SoftHSM
   * 2.6.1's file object store fails token-object creation now and then (CKR_GENERAL_ERROR,
   * CKR_TEMPLATE_INCONSISTENT from C_GenerateKey, C_UnwrapKey) when other calls run at the same
   * time on worker threads, even with OS locking; signing and reads still run in parallel.
   */
  readonly objects: SharedExclusiveLock;
  /**
   * Labels being created right now by any Hsm of this process, as `token\0label`: checked
   * before the token is searched, so two Hsm instances cannot both find a label free and take it.
   */
  readonly creating: Set<string>;
  /** Searches (C_FindObjects) off the main thread; started on first use. */
  finder(): FindWorker;
  /** Stops the search thread, if it was started (the last user released the library). */
  stopFinder(): void;
}

interface Entry {
  readonly module: LoadedModule;
  users: number;
  /** We ran C_Initialize, so we run C_Finalize; false when someone else initialised first. */
  ownsInit: boolean;
}

// C_Initialize is per process (PKCS#11 v2.40 §5.4), so the registry is too.
const modules = new Map<string, Entry>();
const libraries = new Map<string, Pkcs11js.PKCS11>();

/** Loads pkcs11js on first use only, so processes without an HSM never load native code. */
function loadPkcs11js(): Pkcs11Js {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- lazy native load is the point (HOUSE-STYLE)
    return require('pkcs11js') as Pkcs11Js;
  } catch (err) {
    throw new HsmError(HsmErrorCode.ModuleFailed, 'the pkcs11js native addon cannot be loaded', undefined, {
      cause: err,
    });
  }
}

/** The CKR name of a pkcs11js error, if it is one. */
export function ckrOf(err: unknown): string | undefined {
  if (err instanceof Error && /^CKR_[A-Z_]+$/.test(err.message)) return err.message;
  return undefined;
}

/**
 * Loads the library (once per path; never unloaded, since unloading an initialised module is
 * unsafe in several vendors' libraries) and calls C_Initialize with CKF_OS_LOCKING_OK: pkcs11js
 * runs the *Async calls on libuv worker threads, so the library must lock (PKCS#11 v2.40 §5.4,
 * CK_C_INITIALIZE_ARGS). The first user initialises; the last one to release finalises.
 */
export function acquireModule(path: string): LoadedModule {
  const existing = modules.get(path);
  if (existing !== undefined) {
    existing.users++;
    return existing.module;
  }
  const js = loadPkcs11js();
  let lib = libraries.get(path);
  if (lib === undefined) {
    lib = new js.PKCS11();
    try {
      lib.load(path);
    } catch (err) {
      throw new HsmError(HsmErrorCode.ModuleFailed, `cannot load PKCS#11 library ${path}`, ckrOf(err), { cause: err });
    }
    libraries.set(path, lib);
  }
  let ownsInit = true;
  try {
    lib.C_Initialize({ flags: js.CKF_OS_LOCKING_OK });
  } catch (err) {
    const ckr = ckrOf(err);
    if (ckr !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      throw new HsmError(HsmErrorCode.ModuleFailed, `C_Initialize failed for ${path}`, ckr, { cause: err });
    }
    ownsInit = false;
  }
  let finder: FindWorker | undefined;
  const module: LoadedModule = {
    js,
    lib,
    path,
    objects: newSharedExclusiveLock(),
    creating: new Set(),
    finder: () => (finder ??= new FindWorker(path)),
    stopFinder: () => {
      finder?.close();
      finder = undefined;
    },
  };
  modules.set(path, { module, users: 1, ownsInit });
  return module;
}

/** Re-runs C_Initialize after the library reported CKR_CRYPTOKI_NOT_INITIALIZED. */
export function reinitializeModule(module: LoadedModule): void {
  try {
    module.lib.C_Initialize({ flags: module.js.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrOf(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
  }
}

/** Drops one user; the last one calls C_Finalize. */
export function releaseModule(module: LoadedModule): void {
  const entry = modules.get(module.path);
  if (entry?.module !== module) return;
  entry.users--;
  if (entry.users > 0) return;
  modules.delete(module.path);
  // Every Hsm of this library is closed and drained (close() waits), so no search is pending.
  module.stopFinder();
  if (!entry.ownsInit) return;
  try {
    module.lib.C_Finalize();
  } catch {
    // Finalising a library that already lost its state changes nothing for us.
  }
}
