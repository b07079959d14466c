/**
 * Write RWF_NOWAIT per file system (st_dev). On some kernels and file systems (6.x ext4:
 * the c/mtime update path) every NOWAIT write returns EAGAIN, which would send every
 * write through the fallback twice. The first writes on a device are the probe: a success
 * keeps NOWAIT on for good; `probeWrites` EAGAINs in a row without any success switch it off.
 * Pure logic: the file reports how its NOWAIT writes ended.
 */
export type WriteNowaitMode = 'probing' | 'on' | 'off';

/** The default of the backend's writeNowaitProbeWrites option. */
export const PROBE_WRITES = 4;

export class WriteNowaitProbe {
  readonly #devices = new Map<number, { mode: WriteNowaitMode; eagains: number }>();
  readonly #probeWrites: number;

  constructor(probeWrites = PROBE_WRITES) {
    this.#probeWrites = probeWrites;
  }

  /** Whether writes on `dev` should carry RWF_NOWAIT now. */
  enabled(dev: number): boolean {
    return this.mode(dev) !== 'off';
  }

  mode(dev: number): WriteNowaitMode {
    return this.#devices.get(dev)?.mode ?? 'probing';
  }

  succeeded(dev: number): void {
    this.#devices.set(dev, { mode: 'on', eagains: 0 });
  }

  /** A NOWAIT write on `dev` completed with EAGAIN. */
  wouldBlock(dev: number): void {
    const state = this.#devices.get(dev) ?? { mode: 'probing' as WriteNowaitMode, eagains: 0 };
    if (state.mode === 'probing') {
      state.eagains += 1;
      if (state.eagains >= this.#probeWrites) state.mode = 'off';
    }
    this.#devices.set(dev, state);
  }

  /** Every device seen, with its mode. */
  modes(): ReadonlyMap<number, WriteNowaitMode> {
    return new Map([...this.#devices].map(([dev, state]) => [dev, state.mode]));
  }
}
