import { strict as assert } from 'node:assert';

function field(error: unknown, name: string): unknown {
  return (error as Record<string, unknown> | null)?.[name];
}

/** Shaped like Node's system errors: an errno-name `code` and the failing `syscall`. */
export function assertSystemError(error: unknown, context: string): true {
  assert.ok(error instanceof Error, `${context}: expected an Error, got ${String(error)}`);
  assert.match(String(field(error, 'code')), /^E[A-Z0-9]+$/, `${context}: code '${String(field(error, 'code'))}' is not an errno name (${error.message})`);
  assert.equal(typeof field(error, 'syscall'), 'string', `${context}: no 'syscall' on ${error.message}`);
  return true;
}

export function assertAbortError(error: unknown, context: string): true {
  assert.ok(error instanceof Error, `${context}: expected an Error, got ${String(error)}`);
  assert.equal(error.name, 'AbortError', `${context}: name (${error.message})`);
  assert.equal(field(error, 'code'), 'ABORT_ERR', `${context}: code (${error.message})`);
  return true;
}

export function assertCode(error: unknown, code: string, context: string): true {
  assert.ok(error instanceof Error, `${context}: expected an Error, got ${String(error)}`);
  assert.equal(field(error, 'code'), code, `${context}: ${error.message}`);
  return true;
}
