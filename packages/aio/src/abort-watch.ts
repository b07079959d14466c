/**
 * One 'abort' listener per AbortSignal, however many requests share it (a batch often
 * does): adding one listener per request trips Node's MaxListeners warning past 10.
 */
const watchers = new WeakMap<AbortSignal, { readonly callbacks: Set<() => void>; readonly listener: () => void }>();

/** Calls `onAbort` once if `signal` aborts; the returned function stops watching. */
export function watchAbort(signal: AbortSignal, onAbort: () => void): () => void {
  let watcher = watchers.get(signal);
  if (watcher === undefined) {
    const callbacks = new Set<() => void>();
    const listener = (): void => {
      watchers.delete(signal);
      for (const callback of callbacks) callback();
    };
    watcher = { callbacks, listener };
    watchers.set(signal, watcher);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { callbacks, listener } = watcher;
  callbacks.add(onAbort);
  return () => {
    callbacks.delete(onAbort);
    if (callbacks.size === 0 && watchers.get(signal) === watcher) {
      watchers.delete(signal);
      signal.removeEventListener('abort', listener);
    }
  };
}
