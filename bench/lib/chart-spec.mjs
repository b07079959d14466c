// Pure part of the benchmark charts: a bench's result JSON -> chart rows -> a Vega-Lite spec.
// No I/O here (chart.mjs reads the JSON and writes the SVG), so every step is unit-tested.
import { aioStallTarget, aioTargets, hvsockTargets, rpcTargets, virtioSerialTargets, vsockTargets } from './chart-targets.mjs';
import { median } from './summary.mjs';

/**
 * One bar. `value` is ours / baseline (or an absolute number for absolute charts);
 * `status` is 'met', 'missed' or 'reference' (no target).
 * @typedef {{ group: string, label: string, value: number, target?: number, better: 'higher' | 'lower', status: string }} ChartRow
 */

/** A row with its target applied; undefined when `value` is not a finite number (not measured). */
export function chartRow(group, label, value, { target, better = 'higher' } = {}) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  const met = target === undefined ? undefined : better === 'lower' ? value <= target : value >= target;
  return { group, label, value, ...(target === undefined ? {} : { target }), better, status: met === undefined ? 'reference' : met ? 'met' : 'missed' };
}

/** Keeps the measured rows; the labels of those that are not become `missing`. */
function collect(candidates) {
  const rows = [];
  const missing = [];
  for (const [name, row] of candidates) {
    if (row === undefined) missing.push(name);
    else rows.push(row);
  }
  return { rows, missing };
}

const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);
/** `a / b`, undefined unless both are finite and b is not 0. */
const div = (a, b) => (num(a) === undefined || !num(b) ? undefined : a / b);
const fixed = (x, digits = 2) => (num(x) === undefined ? '?' : x.toFixed(digits));

/** bench/aio throughput: one bar per (benchmark, engine, baseline) row the bench compared. */
export function aioRows(result) {
  const candidates = [];
  const seen = new Set();
  for (const r of result.throughput ?? []) {
    if (r.vs === undefined) continue; // a baseline's own row
    const key = `${r.engine} | ${r.vs}`;
    seen.add(`${r.bench}\n${key}`);
    candidates.push([`${r.bench}: ${r.engine} vs ${r.vs}`, chartRow(r.bench, `${r.engine} vs ${r.vs}`, r.ratio, aioTargets[r.bench]?.[key])]);
  }
  // Target rows the run did not produce (fio missing, --bench filter, a failed row).
  for (const [bench, rows] of Object.entries(aioTargets)) {
    for (const key of Object.keys(rows)) {
      if (!seen.has(`${bench}\n${key}`)) candidates.push([`${bench}: ${key.replace(' | ', ' vs ')}`, undefined]);
    }
  }
  return collect(candidates);
}

/** bench/aio stall suite: loop delay p99 (ms) per workload and engine; absolute, not a ratio. */
export function aioStallRows(result) {
  return collect(
    (result.stall ?? []).map((r) => {
      const target = aioStallTarget.engines.includes(r.engine) ? { target: aioStallTarget.p99Ms, better: 'lower' } : { better: 'lower' };
      return [`${r.scenario}: ${r.engine}`, chartRow(r.scenario, r.engine, num(r.median?.loopDelayMs?.p99), target)];
    }),
  );
}

/** bench/vsock: throughput in seconds per transfer (lower is faster), latency p50 in µs. */
export function vsockRows(result) {
  const t = result.throughput ?? {};
  const cSeconds = result.c?.throughput?.vsock;
  const bulk = `${result.mib ?? '?'} MiB one way (MB/s ratio)`;
  const ping = '1-byte ping-pong p50 (latency ratio)';
  return collect([
    ['sends to a C reader vs the C floor', chartRow(bulk, '@vmlink/vsock sends to a C reader vs C floor', div(cSeconds, t.vsockSend), vsockTargets.sendVsC)],
    ['receives from a C writer vs the C floor', chartRow(bulk, '@vmlink/vsock receives from a C writer vs C floor', div(cSeconds, t.vsockReceive), vsockTargets.receiveVsC)],
    ['one way in one process vs socat', chartRow(bulk, '@vmlink/vsock both ends in one process vs socat', div(t.socat, t.vsock), vsockTargets.oneWayVsSocat)],
    ['ping-pong p50 vs node:net TCP', chartRow(ping, '@vmlink/vsock vs node:net TCP loopback', div(result.latency?.vsock?.p50, result.latency?.tcp?.p50), vsockTargets.latencyVsNet)],
  ]);
}

/** bench/hvsock: medians of the runs, hvsock over virtio-serial in the same boot. */
export function hvsockRows(result) {
  const r = result.results ?? {};
  const med = (list, pick = (x) => x) => (Array.isArray(list) && list.length > 0 ? median(list.map(pick)) : undefined);
  const ratioOf = (kind, pick) => div(med(r[kind]?.hvsock, pick), med(r[kind]?.serial, pick));
  const bulk = `${result.mib ?? '?'} MiB bulk (MB/s ratio)`;
  const ping = '1-byte ping-pong (latency ratio)';
  return collect([
    ['guest -> host MB/s', chartRow(bulk, 'guest -> host vs virtio-serial', ratioOf('guestToHost'), hvsockTargets.guestToHost)],
    ['host -> guest MB/s', chartRow(bulk, 'host -> guest vs virtio-serial', ratioOf('hostToGuest'), hvsockTargets.hostToGuest)],
    ['ping-pong p50', chartRow(ping, 'p50 vs virtio-serial', ratioOf('ping', (p) => p.p50), hvsockTargets.pingP50)],
    ['ping-pong p99', chartRow(ping, 'p99 vs virtio-serial', ratioOf('ping', (p) => p.p99), hvsockTargets.pingP99)],
  ]);
}

/** bench/virtio-serial: rows[0] is socat, [1] a raw Connection, [2] the RPC body (the bench's order). */
export function virtioSerialRows(result) {
  const rows = result.rows ?? [];
  const socat = rows.find((row) => row.what?.startsWith('socat'))?.mibPerSecond;
  const raw = rows.find((row) => row.what?.startsWith('Connection'))?.mibPerSecond;
  const rpc = rows.find((row) => row.what?.startsWith('RPC'))?.mibPerSecond;
  const bulk = `${result.mib ?? '?'} MiB guest -> host (MiB/s ratio)`;
  return collect([
    ['raw Connection vs socat', chartRow(bulk, 'raw Connection vs socat', div(raw, socat), virtioSerialTargets.rawVsSocat)],
    ['RPC streamed body vs socat', chartRow(bulk, 'RPC streamed body vs socat', div(rpc, socat), virtioSerialTargets.rpcVsSocat)],
    ['RPC round trips vs raw echo', chartRow('round trips/s, 1 in flight', 'RPC call vs raw Connection echo', div(result.rpcTrips?.perSecond, result.echoTrips?.perSecond), virtioSerialTargets.tripsVsEcho)],
  ]);
}

/** bench/rpc: RPC call round trips/s over raw echo, per in-flight level. */
export function rpcRows(result) {
  const rows = result.rows ?? [];
  return collect(
    Object.keys(rpcTargets).map((inFlight) => {
      const find = (mode) => rows.find((row) => row.mode === mode && String(row.inFlight) === inFlight);
      const rpc = find('rpc call');
      const raw = find('raw echo');
      const transport = rpc?.transport ?? raw?.transport ?? '?';
      return [
        `${inFlight} in flight`,
        chartRow(`round trips/s over ${transport}, ${result.size ?? '?'}-byte payload`, `RPC call vs raw echo, ${inFlight} in flight`, div(rpc?.perSecond, raw?.perSecond), rpcTargets[inFlight]),
      ];
    }),
  );
}

/**
 * The caption lines: when, on what, under which load. A bench that does not record its
 * machine or load gets them from `runContext`, which bench/run.mjs adds to the JSON it
 * asked for; `fileDate` stands in when the JSON has no date at all.
 */
export function caption(name, result, fileDate) {
  const context = result.runContext ?? {};
  const date = (result.date ?? context.date ?? fileDate ?? 'date unknown').replace(/T(\d\d:\d\d).*$/, ' $1 UTC');
  const load = (list) => (Array.isArray(list) ? list.map((x) => fixed(x)).join(' / ') : undefined);
  const host = (cores, kernel, node) => `host: ${cores ?? '?'} cores, Linux ${kernel ?? '?'}, Node ${node ?? '?'}`;
  const contextLoad = context.loadAverage ? `host load average ${fixed(context.loadAverage.before?.[0])} -> ${fixed(context.loadAverage.after?.[0])} (1 min, before -> after)` : 'host load not recorded';
  const parts = [date];
  if (name === 'aio' || name === 'aio-stall') {
    parts.push(host(result.cores, result.kernel, result.node));
    parts.push(`load average ${load(result.loadAverageAtStart) ?? '?'} (1/5/15 min) at start`);
    parts.push(result.config?.quick ? `quick run (${result.config.seconds} s, ${result.config.runs} round(s))` : `${result.config?.runs ?? '?'} rounds of ${result.config?.seconds ?? '?'} s, medians`);
  } else if (name === 'vsock') {
    parts.push(`QEMU TCG guest, vsock loopback (CID 1); ${context.cores === undefined ? 'host not recorded' : host(context.cores, context.kernel, context.node)}`);
    parts.push(`host load average ${fixed(result.loadAverage?.before?.[0])} -> ${fixed(result.loadAverage?.after?.[0])} (1 min, before -> after)`);
    parts.push((result.repeat ?? 1) === 1 ? '1 run' : `${result.repeat} runs, medians`);
  } else if (name === 'hvsock') {
    parts.push(`host <-> QEMU TCG guest, same boot; ${context.cores === undefined ? 'host not recorded' : host(context.cores, context.kernel, context.node)}`);
    parts.push(`host load average ${load(result.load) ?? '?'} (1 min, at each run)`);
    parts.push(result.runs === 1 ? '1 run' : `${result.runs ?? '?'} runs, medians`);
  } else if (name === 'virtio-serial') {
    parts.push(`host <-> QEMU TCG guest; ${host(context.cores, context.kernel, result.node)}`);
    parts.push(contextLoad);
    parts.push(`${result.seconds ?? '?'} s per round-trip row`);
  } else {
    parts.push(host(context.cores, context.kernel, result.node));
    parts.push(contextLoad);
    parts.push(`${result.seconds ?? '?'} s per row`);
  }
  // Two facts per line: a caption as wide as the chart, not wider.
  const lines = [];
  for (let i = 0; i < parts.length; i += 2) lines.push(parts.slice(i, i + 2).join(' · '));
  return lines;
}

const colours = { domain: ['met', 'missed', 'reference'], range: ['#2e7d32', '#c62828', '#9e9e9e'] };

/**
 * The Vega-Lite spec: one panel per group, a bar per row coloured by met/missed/reference,
 * a black tick at each row's target, and (for ratio charts) a dashed line at 1x, parity
 * with the baseline. `rows` must be non-empty.
 */
export function chartSpec({ title, subtitle = [], rows, missing = [], axisTitle, ratio = true, logScale = false }) {
  if (rows.length === 0) throw new Error(`chart '${title}': no measured rows`);
  const top = Math.max(...rows.map((r) => Math.max(r.value, r.target ?? 0)));
  const unit = ratio ? 'x' : ' ms';
  const groups = [...new Set(rows.map((r) => r.group))];
  const data = rows.map((r) => ({
    ...r,
    groupOrder: groups.indexOf(r.group),
    // The number, and the target it is held to; placed right of the bar, the tick and the 1x line.
    text: `${fixed(r.value)}${unit}` + (r.target === undefined ? '' : `  (target ${r.better === 'lower' ? '<=' : '>='} ${r.target}${unit})`),
    textAt: Math.max(r.value, r.target ?? 0, ratio ? 1 : 0),
  }));
  const y = { field: 'label', type: 'nominal', title: null, sort: null };
  const scale = logScale ? { type: 'symlog', domain: [0, top * 2.5] } : { domain: [0, Math.ceil(top * 1.5 * 10) / 10] };
  // symlog keeps 0 drawable; its default ticks bunch up, so name the decades.
  const ticks = logScale ? { axis: { values: [0, 1, 3, 10, 30, 100, 300, 1000, 3000, 10000].filter((v) => v <= top * 2.5) } } : {};
  const x = { field: 'value', type: 'quantitative', title: axisTitle, scale, ...ticks };
  const layers = [
    {
      mark: { type: 'bar', height: { band: 0.7 } },
      encoding: { y, x, color: { field: 'status', type: 'nominal', scale: colours, legend: { title: null, orient: 'bottom' } } },
    },
    // Rows without a target have no x here: Vega-Lite leaves them out (invalid: 'filter').
    { mark: { type: 'tick', color: 'black', thickness: 3, bandSize: 20 }, encoding: { y, x: { field: 'target', type: 'quantitative' } } },
    { mark: { type: 'text', align: 'left', dx: 6, fontSize: 11 }, encoding: { y, x: { field: 'textAt', type: 'quantitative' }, text: { field: 'text' } } },
  ];
  if (ratio) layers.push({ mark: { type: 'rule', strokeDash: [4, 3], color: '#555' }, encoding: { x: { datum: 1 } } });
  const notes = [...subtitle, ratio ? 'black tick: the target; dashed line: 1x (same as the baseline)' : 'black tick: the target'];
  if (missing.length > 0) notes.push(`not measured in this run: ${missing.join('; ')}`);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    description: `${title}. ${notes.join('. ')}`,
    title: { text: title, subtitle: notes, anchor: 'start', subtitleFontSize: 11 },
    background: 'white',
    padding: 12,
    data: { values: data },
    facet: {
      row: {
        field: 'group',
        type: 'nominal',
        sort: { field: 'groupOrder', op: 'min' },
        title: null,
        header: { labelAngle: 0, labelOrient: 'top', labelAnchor: 'start', labelFontWeight: 'bold', labelFontSize: 12, labelLimit: 0 },
      },
    },
    spec: { width: 420, layer: layers },
    resolve: { scale: { y: 'independent' } },
    config: { font: 'sans-serif', axisY: { labelLimit: 0 } },
  };
}

/** The charts each bench's JSON makes: name -> { rows of the JSON, title, axis }. */
export const charts = {
  aio: { from: 'aio', section: 'throughput', rows: aioRows, title: 'bench/aio: IOPS (MB/s for 128 KiB) over the baseline', axisTitle: 'ours / baseline (higher is better)' },
  'aio-stall': {
    from: 'aio',
    section: 'stall',
    rows: aioStallRows,
    title: 'bench/aio stall suite: event-loop delay p99',
    axisTitle: 'loop delay p99, ms (symlog scale; lower is better)',
    ratio: false,
    logScale: true,
  },
  vsock: { from: 'vsock', rows: vsockRows, title: 'bench/vsock: @vmlink/vsock over its baselines', axisTitle: 'ours / baseline (see each row for the direction)' },
  hvsock: { from: 'hvsock', rows: hvsockRows, title: 'bench/hvsock: hybrid vsock through the vhost-user device, relative to virtio-serial', axisTitle: 'hvsock / virtio-serial (see each row for the direction)' },
  'virtio-serial': { from: 'virtio-serial', rows: virtioSerialRows, title: 'bench/virtio-serial: vmlink over socat and raw echo', axisTitle: 'ours / baseline (higher is better)' },
  rpc: { from: 'rpc', rows: rpcRows, title: 'bench/rpc: RPC round trips over raw Connection echo', axisTitle: 'RPC / raw echo (higher is better)' },
};

/** JSON -> spec for chart `name`; undefined when the JSON has no measured row for it. */
export function specFor(name, result, fileDate) {
  const chart = charts[name];
  if (chart === undefined) throw new Error(`unknown chart '${name}'; known: ${Object.keys(charts).join(', ')}`);
  const { rows, missing } = chart.rows(result);
  if (rows.length === 0) return undefined;
  return chartSpec({ title: chart.title, subtitle: caption(name, result, fileDate), rows, missing, axisTitle: chart.axisTitle, ratio: chart.ratio ?? true, logScale: chart.logScale ?? false });
}
