// Benchmark charts: the newest saved JSON of a bench (bench/results/, git-ignored) -> an
// SVG in docs/bench/ (committed; the package READMEs show them). Rendered headless with
// Vega-Lite -> Vega (no canvas, no browser). The JSON -> spec part is chart-spec.mjs.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { charts, specFor } from './chart-spec.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
export const resultsDir = join(repoRoot, 'bench', 'results');
export const chartsDir = join(repoRoot, 'docs', 'bench');

/** The bench names that have charts, and the charts each one makes. */
export function chartsOf(bench) {
  return Object.entries(charts)
    .filter(([, chart]) => chart.from === bench)
    .map(([name]) => name);
}

/** Saved results of `bench` (`<bench>.json`, `<bench>-<anything>.json`), parsed, with a date each. */
function savedResults(bench, dir) {
  let names;
  try {
    names = readdirSync(dir);
  } catch (error) {
    if (error.code === 'ENOENT') return [];
    throw error;
  }
  const pattern = new RegExp(`^${bench.replace(/[-]/g, '\\-')}(-.+)?\\.json$`);
  return names
    .filter((name) => pattern.test(name))
    .map((name) => {
      const file = join(dir, name);
      const fileDate = statSync(file).mtime.toISOString();
      let result;
      try {
        result = JSON.parse(readFileSync(file, 'utf8'));
      } catch {
        return undefined; // a run cut short mid-write: not a result
      }
      const quick = result.config?.quick === true || name.includes('-quick-');
      return { file, result, fileDate, date: result.date ?? fileDate, quick };
    })
    .filter((saved) => saved !== undefined && typeof saved.result === 'object' && saved.result !== null);
}

/**
 * The result chart `name` is drawn from: the newest saved JSON that has its section,
 * preferring full runs over --quick ones (a smoke run should not replace the picture).
 */
export function newestResultFor(name, dir = resultsDir) {
  const chart = charts[name];
  const usable = savedResults(chart.from, dir)
    .filter(({ result }) => chart.section === undefined || (Array.isArray(result[chart.section]) && result[chart.section].length > 0))
    .sort((a, b) => Number(a.quick) - Number(b.quick) || b.date.localeCompare(a.date));
  return usable[0];
}

/**
 * Vega-Lite's logger without one warning: a faceted layer with independent y scales
 * always reports "union domain of the same fields from different source" (our layers
 * share one data source, so the sizes it warns about are right). Others still print.
 */
function quietLogger(vega) {
  const logger = vega.logger(vega.Warn);
  const warn = logger.warn.bind(logger);
  logger.warn = (...args) => (String(args[0]).includes('faceted independent scales') ? logger : warn(...args));
  return logger;
}

/** A Vega-Lite spec -> SVG text, headless. */
export async function renderSvg(spec) {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vegaLite.compile(spec, { logger: quietLogger(vega) }).spec), { renderer: 'none' });
  try {
    return `${await view.toSVG()}\n`;
  } finally {
    view.finalize();
  }
}

/**
 * Renders chart `name` from its newest saved JSON into `outDir/<name>.svg`.
 * Resolves { name, svg, source } or { name, skipped: reason }.
 */
export async function renderChart(name, { dir = resultsDir, outDir = chartsDir } = {}) {
  const saved = newestResultFor(name, dir);
  if (saved === undefined) return { name, skipped: `no saved ${charts[name].from} JSON in ${relative(repoRoot, dir) || dir}` };
  const spec = specFor(name, saved.result, saved.fileDate);
  if (spec === undefined) return { name, skipped: `${relative(repoRoot, saved.file)} has no row this chart draws` };
  mkdirSync(outDir, { recursive: true });
  const svg = join(outDir, `${name}.svg`);
  writeFileSync(svg, await renderSvg(spec));
  return { name, svg, source: saved.file };
}

/** Renders the charts of `benches` (all when empty) and prints one line per chart. */
export async function renderCharts(benches = [], log = console.log) {
  const names = benches.length === 0 ? Object.keys(charts) : benches.flatMap(chartsOf);
  const done = [];
  for (const name of names) {
    const outcome = await renderChart(name);
    log(outcome.skipped ? `chart ${name}: skipped (${outcome.skipped})` : `chart ${name}: ${relative(repoRoot, outcome.svg)} from ${relative(repoRoot, outcome.source)}`);
    done.push(outcome);
  }
  return done;
}
