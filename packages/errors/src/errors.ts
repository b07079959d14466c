/** An error with a stable machine-readable `code`, like Node's `ERR_*` errors. */
export class VmlinkError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  override toString(): string {
    return `${this.name} [${this.code}]: ${this.message}`;
  }
}

export interface SystemErrorInit {
  /** errno name, e.g. `ECONNREFUSED`. */
  code: string;
  /** Negative errno as Node reports it (e.g. -111), or the positive errno. */
  errno?: number;
  syscall: string;
  /** A printable address, e.g. `vsock://3:1024` or a path. */
  address?: string;
  path?: string;
  cid?: number;
  port?: number;
  message?: string;
}

/** A failed system call, shaped like Node's `SystemError` (`connect ECONNREFUSED addr`). */
export class SystemError extends VmlinkError {
  readonly errno: number | undefined;
  readonly syscall: string;
  readonly address: string | undefined;
  readonly path: string | undefined;
  readonly cid: number | undefined;
  readonly port: number | undefined;

  constructor(init: SystemErrorInit) {
    const where = init.address ?? init.path;
    const message = init.message ?? `${init.syscall} ${init.code}${where === undefined ? '' : ` ${where}`}`;
    super(init.code, message);
    this.name = 'Error';
    this.errno = init.errno === undefined ? undefined : -Math.abs(init.errno);
    this.syscall = init.syscall;
    this.address = init.address;
    this.path = init.path;
    this.cid = init.cid;
    this.port = init.port;
  }
}
