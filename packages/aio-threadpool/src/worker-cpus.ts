/**
 * Where the workers run (ThreadPoolOptions.workerCpus 'completions'): on the CPUs that take
 * the completion interrupts of the devices the pool's files are on, when those are fewer
 * than the CPUs the process has. A worker blocked in a read is woken by its completion's
 * interrupt; on that CPU the wake-up is local, on another it costs an inter-processor
 * interrupt, which on a virtual machine is a VM exit and, to an idle vCPU, a host thread
 * wake-up (tens of microseconds). A single-queue disk (virtio-blk, AHCI) sends every
 * completion to one CPU. Measured here (2 vCPUs, virtio-blk on CPU1, 4 KiB O_DIRECT random
 * reads): 2 in flight 21k-22k IOPS with the loop thread on CPU1 against 28.8k-30.0k with
 * the workers on CPU1 (fio psync numjobs=2: 29.7k-30.2k). A multi-queue disk (NVMe) spreads
 * its queues' interrupts over every CPU: nothing to choose then. Pure logic, unit-tested in
 * test/worker-cpus.test.ts; device-interrupts.ts reads the facts.
 */
import type { DeviceInterrupt } from './device-interrupts.js';

/** When a device's interrupts say where its completions land (ThreadPoolOptions' numbers). */
export interface CompletionCpuPolicy {
  /** Fewer interrupts than this since boot say nothing yet: the workers stay unrestricted. */
  readonly minInterrupts: number;
  /** An interrupt line counts when it raised at least this share of the device's interrupts (a virtio config or NVMe admin line does not). */
  readonly minShare: number;
}

export const DEFAULT_COMPLETION_CPU_POLICY: CompletionCpuPolicy = Object.freeze({ minInterrupts: 1000, minShare: 0.05 });

/**
 * The CPUs a device's completions go to: the union of the CPUs its busy interrupt lines
 * are routed to now. Undefined when its interrupts say too little (policy.minInterrupts).
 */
export function completionCpus(interrupts: readonly DeviceInterrupt[], policy: CompletionCpuPolicy = DEFAULT_COMPLETION_CPU_POLICY): number[] | undefined {
  const totals = interrupts.map((line) => line.perCpuCount.reduce((sum, count) => sum + count, 0));
  const total = totals.reduce((sum, count) => sum + count, 0);
  if (total < policy.minInterrupts) return undefined;
  const cpus = new Set<number>();
  interrupts.forEach((line, i) => {
    if ((totals[i] ?? 0) >= policy.minShare * total) for (const cpu of line.cpus) cpus.add(cpu);
  });
  return cpus.size === 0 ? undefined : [...cpus].sort((a, b) => a - b);
}

/**
 * The CPUs to hold the workers to for files on these devices (each entry one open file's
 * completionCpus), within `allowed`: their union, or undefined (no restriction) when no
 * file is open, one file's device is unknown (its completions could land anywhere), or the
 * union leaves out none of the allowed CPUs or takes in none of them.
 */
export function workerCpuSet(devices: readonly (readonly number[] | undefined)[], allowed: readonly number[]): number[] | undefined {
  if (devices.length === 0) return undefined;
  const union = new Set<number>();
  for (const cpus of devices) {
    if (cpus === undefined) return undefined;
    for (const cpu of cpus) union.add(cpu);
  }
  const chosen = allowed.filter((cpu) => union.has(cpu));
  if (chosen.length === 0 || chosen.length === allowed.length) return undefined;
  return chosen;
}

/**
 * Whether workers held to `cpus` leave the loop thread a CPU of its own: they take in some
 * of the `allowed` CPUs (the process's) and leave out at least one. Undefined either way: no.
 */
export function leavesACpuOut(cpus: readonly number[] | undefined, allowed: readonly number[] | undefined): boolean {
  if (cpus === undefined || allowed === undefined) return false;
  const held = new Set(cpus);
  const inside = allowed.filter((cpu) => held.has(cpu)).length;
  return inside > 0 && inside < allowed.length;
}

/** The same CPU list (both sorted), or both none. */
function sameCpus(a: readonly number[] | undefined, b: readonly number[] | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.length === b.length && a.every((cpu, i) => cpu === b[i]);
}

/**
 * The open files' completion CPUs, and the set the workers are held to: each attach (a
 * file opened) and detach (closed) recomputes it, and `apply` hears of every change
 * (undefined: anywhere). Files are entries, not fds, so a reused fd number cannot mix two
 * files up.
 */
export class WorkerCpus {
  readonly #allowed: readonly number[];
  readonly #apply: (cpus: readonly number[] | undefined) => void;
  readonly #files = new Map<symbol, readonly number[] | undefined>();
  #current: readonly number[] | undefined;

  constructor(allowed: readonly number[], apply: (cpus: readonly number[] | undefined) => void) {
    this.#allowed = allowed;
    this.#apply = apply;
  }

  /** The CPUs the workers are held to now; undefined: anywhere. */
  get current(): readonly number[] | undefined {
    return this.#current;
  }

  /** A file whose completions go to `cpus` (undefined: unknown) is open; returns its detach. */
  attach(cpus: readonly number[] | undefined): () => void {
    const file = Symbol('file');
    this.#files.set(file, cpus);
    this.#update();
    return () => {
      if (this.#files.delete(file)) this.#update();
    };
  }

  #update(): void {
    const next = workerCpuSet([...this.#files.values()], this.#allowed);
    if (sameCpus(next, this.#current)) return;
    this.#current = next;
    this.#apply(next);
  }
}
