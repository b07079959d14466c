// Medians and markdown tables.

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs `measure()` `runs` times and returns { median, runs: [...] } of `pick(result)`. */
export async function repeat(runs, measure, pick) {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await measure(i));
  return { median: median(results.map(pick)), values: results.map(pick), results };
}

export function table(headers, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

export function fmtInt(n) {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

export function fmt(n, digits = 2) {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

/** A share (0..1) as a whole percentage, or 'n/a'. */
export function percent(share) {
  return Number.isFinite(share) ? `${Math.round(share * 100)}%` : 'n/a';
}
