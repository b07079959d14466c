import { loadBinding } from '@vmlink/native';
import type { FdStreamBinding, PtyBinding } from '@vmlink/native';

export type { PidExit, PidWatcher, PtyBinding } from '@vmlink/native';

/** The addon's pty part and its FdStream (the master is read and written through it). */
export function loadPtyBinding(): PtyBinding & FdStreamBinding {
  const binding = loadBinding();
  if (typeof binding.ptySpawn !== 'function') {
    throw Object.assign(new Error('the vmlink addon has no pty support (native/src/pty): rebuild it with `npm run build -w @vmlink/native`'), {
      code: 'ERR_VMLINK_NATIVE_UNAVAILABLE',
    });
  }
  return binding;
}
