// The per-line table printed at the end (pure formatting; unit-testable).

export function formatDuration(ms) {
  if (ms === undefined) return '-';
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

function formatPhase(phase) {
  if (phase === undefined) return '-';
  if (phase.error !== undefined) return `ERROR ${phase.error}`;
  const c = phase.counts;
  const counts = c === undefined ? `exit ${phase.code}, no report` : `${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`;
  return `${phase.code === 0 ? 'ok' : 'FAIL'} ${counts} (${formatDuration(phase.ms)})`;
}

/** A phase passed when vitest exited 0. Missing phases (not asked for) do not fail a line. */
export function linePassed(line) {
  if (line.error !== undefined) return false;
  return [line.host, line.guest].every((p) => p === undefined || (p.error === undefined && p.code === 0));
}

/** rows: { major, version, error?, host?, guest?, ms } */
export function summaryTable(rows) {
  const header = ['line', 'node', 'host tests', 'guest tests', 'total'];
  const body = rows.map((r) => [
    String(r.major),
    r.version === undefined ? '-' : `v${r.version}`,
    r.error !== undefined ? `ERROR ${r.error}` : formatPhase(r.host),
    r.error !== undefined ? '' : formatPhase(r.guest),
    formatDuration(r.ms),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
