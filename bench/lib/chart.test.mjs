// Benchmark charts: JSON -> rows (ratios, targets, missing rows) -> Vega-Lite spec, and the
// picking of the saved JSON. Fixtures are hand-written results in each bench's own shape.
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { aioRows, aioStallRows, chartRow, chartSpec, hvsockRows, rpcRows, specFor, virtioSerialRows, vsockRows } from './chart-spec.mjs';
import { newestResultFor, renderSvg } from './chart.mjs';

const engineRow = (bench, engine, vs, ratio) => ({ bench, engine, vs, ratio, iops: 1, baseline: { engine: vs } });
const R32 = '4 KiB random read, O_DIRECT, 32 in flight';
const WARM = '4 KiB random read, buffered, warm cache, 32 in flight';

const aioResult = {
  date: '2026-12-05T17:51:53.395Z',
  cores: 2,
  kernel: '6.1.0',
  node: 'v20.20.2',
  loadAverageAtStart: [18.62, 18.01, 16.38],
  config: { quick: false, runs: 3, seconds: 10 },
  throughput: [
    engineRow(R32, 'iosubmit', 'fio libaio iodepth=32 batched', 0.7),
    engineRow(R32, 'iosubmit', 'fio libaio iodepth=32', 2.2),
    { bench: R32, engine: 'fio libaio iodepth=32 batched', iops: 58000 }, // a baseline's own row
    engineRow(WARM, 'threadpool', 'node FileHandle', 4.5),
  ],
};

describe('chartRow', () => {
  it('is met, missed or a reference, in the direction the row says', () => {
    expect(chartRow('g', 'a', 0.9, { target: 0.9 }).status).toBe('met');
    expect(chartRow('g', 'a', 0.89, { target: 0.9 }).status).toBe('missed');
    expect(chartRow('g', 'a', 1.3, { target: 1.2, better: 'lower' }).status).toBe('missed');
    expect(chartRow('g', 'a', 1.1, { target: 1.2, better: 'lower' }).status).toBe('met');
    const reference = chartRow('g', 'a', 2);
    expect(reference.status).toBe('reference');
    expect(reference).not.toHaveProperty('target');
  });

  it('is undefined (not measured) for a value that is not a finite number', () => {
    for (const value of [undefined, null, Number.NaN, Number.POSITIVE_INFINITY, '0.9']) expect(chartRow('g', 'a', value, { target: 1 })).toBeUndefined();
  });
});

describe('aioRows', () => {
  it('draws each compared row with the ratio the bench measured and the target from the table', () => {
    const { rows } = aioRows(aioResult);
    expect(rows.map((r) => [r.group, r.label, r.value, r.target, r.status])).toEqual([
      [R32, 'iosubmit vs fio libaio iodepth=32 batched', 0.7, 0.9, 'missed'],
      [R32, 'iosubmit vs fio libaio iodepth=32', 2.2, undefined, 'reference'], // the old unbatched row: no target
      [WARM, 'threadpool vs node FileHandle', 4.5, 4, 'met'],
    ]);
  });

  it('lists the target rows the run did not produce, and draws no bar for them', () => {
    const { rows, missing } = aioRows(aioResult);
    expect(missing).toEqual(
      expect.arrayContaining([
        `${R32}: threadpool (defaults) vs fio psync numjobs=32`,
        '4 KiB random read, O_DIRECT, 2 in flight: threadpool (defaults) vs fio psync numjobs=2',
        `${WARM}: iosubmit vs node FileHandle`,
      ]),
    );
    expect(missing).not.toContain(`${WARM}: threadpool vs node FileHandle`);
    expect(rows.some((r) => r.label.includes('numjobs=2'))).toBe(false);
  });

  it('treats a row whose ratio is missing as not measured', () => {
    const { rows, missing } = aioRows({ throughput: [engineRow(R32, 'iosubmit', 'fio libaio iodepth=32 batched', undefined)] });
    expect(rows).toEqual([]);
    expect(missing).toContain(`${R32}: iosubmit vs fio libaio iodepth=32 batched`);
  });
});

describe('aioStallRows', () => {
  it('draws loop delay p99 in ms with the 1 ms target on the engines we ship only', () => {
    const stall = (engine, p99) => ({ scenario: 'appends', engine, median: { loopDelayMs: { p50: 0, p99, max: 9 } } });
    const { rows } = aioStallRows({ stall: [stall('iosubmit', 0.8), stall('threadpool', 5), stall('node FileHandle', 2)] });
    expect(rows.map((r) => [r.label, r.value, r.target, r.status])).toEqual([
      ['iosubmit', 0.8, 1, 'met'],
      ['threadpool', 5, 1, 'missed'],
      ['node FileHandle', 2, undefined, 'reference'],
    ]);
  });
});

describe('vsockRows', () => {
  const vsock = {
    mib: 256,
    throughput: { cVsock: 10, socat: 40, vsock: 20, vsockSend: 12.5, vsockReceive: 10, tcp: 8 },
    latency: { vsock: { p50: 30 }, tcp: { p50: 20 } },
    c: { throughput: { vsock: 10, tcp: 6 }, latency: {} },
  };

  it('turns seconds per transfer into rate ratios, and latency into a lower-is-better ratio', () => {
    const { rows, missing } = vsockRows(vsock);
    expect(missing).toEqual([]);
    expect(rows.map((r) => [r.label, r.value, r.target, r.status])).toEqual([
      ['@vmlink/vsock sends to a C reader vs C floor', 0.8, 0.8, 'met'],
      ['@vmlink/vsock receives from a C writer vs C floor', 1, 0.8, 'met'],
      ['@vmlink/vsock both ends in one process vs socat', 2, 0.9, 'met'],
      ['@vmlink/vsock vs node:net TCP loopback', 1.5, 1.2, 'missed'],
    ]);
  });

  it('leaves out what a --throughput-only run or a host without cc did not measure', () => {
    const { rows, missing } = vsockRows({ ...vsock, latency: {}, c: null });
    expect(rows.map((r) => r.label)).toEqual(['@vmlink/vsock both ends in one process vs socat']);
    expect(missing).toEqual(['sends to a C reader vs the C floor', 'receives from a C writer vs the C floor', 'ping-pong p50 vs node:net TCP']);
  });
});

describe('hvsockRows, virtioSerialRows, rpcRows', () => {
  it('hvsock: the ratio of the medians of the runs, ping-pong lower-is-better', () => {
    const { rows } = hvsockRows({
      mib: 256,
      results: {
        guestToHost: { hvsock: [100, 300, 200], serial: [100, 100, 400] }, // medians 200 / 100
        hostToGuest: { hvsock: [50], serial: [100] },
        ping: { hvsock: [{ p50: 90, p99: 400 }], serial: [{ p50: 100, p99: 200 }] },
      },
    });
    expect(rows.map((r) => [r.label, r.value, r.status])).toEqual([
      ['guest -> host vs virtio-serial', 2, 'met'],
      ['host -> guest vs virtio-serial', 0.5, 'missed'],
      ['p50 vs virtio-serial', 0.9, 'met'],
      ['p99 vs virtio-serial', 2, 'reference'],
    ]);
  });

  it('hvsock: a kind left out with --only is missing, not zero', () => {
    const { rows, missing } = hvsockRows({ results: { guestToHost: { hvsock: [1], serial: [1] }, hostToGuest: { hvsock: [], serial: [] }, ping: { hvsock: [], serial: [] } } });
    expect(rows).toHaveLength(1);
    expect(missing).toEqual(['host -> guest MB/s', 'ping-pong p50', 'ping-pong p99']);
  });

  it('virtio-serial: bulk rows over socat, round trips over raw echo', () => {
    const { rows } = virtioSerialRows({
      mib: 64,
      rows: [
        { what: 'socat, 64 MiB guest -> host', mibPerSecond: 100 },
        { what: 'Connection (raw), 64 MiB guest -> host', mibPerSecond: 90 },
        { what: 'RPC streamed body, 64 MiB guest -> host', mibPerSecond: 70 },
      ],
      rpcTrips: { perSecond: 300 },
      echoTrips: { perSecond: 500 },
    });
    expect(rows.map((r) => [r.label, r.value, r.status])).toEqual([
      ['raw Connection vs socat', 0.9, 'reference'],
      ['RPC streamed body vs socat', 0.7, 'missed'],
      ['RPC call vs raw Connection echo', 0.6, 'met'],
    ]);
  });

  it('rpc: RPC over raw echo per in-flight level, the target on one in flight', () => {
    const row = (inFlight, mode, perSecond) => ({ transport: 'unix', inFlight, mode, perSecond });
    const { rows } = rpcRows({ size: 32, rows: [row(1, 'raw echo', 1000), row(1, 'rpc call', 600), row(16, 'raw echo', 4000), row(16, 'rpc call', 1000)] });
    expect(rows.map((r) => [r.label, r.value, r.target, r.status])).toEqual([
      ['RPC call vs raw echo, 1 in flight', 0.6, 0.5, 'met'],
      ['RPC call vs raw echo, 16 in flight', 0.25, undefined, 'reference'],
    ]);
  });
});

describe('chartSpec', () => {
  const rows = [chartRow('g1', 'a', 0.7, { target: 0.9 }), chartRow('g2', 'b', 2)];
  const layerOf = (spec, mark) => spec.spec.layer.find((l) => l.mark.type === mark);

  it('draws the bars from the ratios, a tick at each target and a dashed line at 1x', () => {
    const spec = chartSpec({ title: 't', rows, axisTitle: 'ratio' });
    expect(spec.data.values.map((d) => [d.group, d.value, d.target, d.groupOrder])).toEqual([
      ['g1', 0.7, 0.9, 0],
      ['g2', 2, undefined, 1],
    ]);
    expect(layerOf(spec, 'bar').encoding.x.field).toBe('value');
    expect(layerOf(spec, 'tick').encoding.x.field).toBe('target');
    expect(layerOf(spec, 'rule').encoding.x).toEqual({ datum: 1 });
    expect(spec.data.values[0].text).toBe('0.70x  (target >= 0.9x)');
    expect(spec.data.values[1].text).toBe('2.00x');
    // room for the longest bar and its label
    expect(layerOf(spec, 'bar').encoding.x.scale.domain[1]).toBeGreaterThan(2);
  });

  it('says which rows were not measured, and has no 1x line on an absolute chart', () => {
    const spec = chartSpec({ title: 't', subtitle: ['when'], rows, missing: ['x: y'], axisTitle: 'ms', ratio: false });
    expect(spec.title.subtitle).toEqual(['when', 'black tick: the target', 'not measured in this run: x: y']);
    expect(layerOf(spec, 'rule')).toBeUndefined();
    expect(spec.data.values[0].text).toBe('0.70 ms  (target >= 0.9 ms)');
  });

  it('refuses an empty chart; specFor gives undefined for a JSON with no row it draws', () => {
    expect(() => chartSpec({ title: 't', rows: [], axisTitle: 'x' })).toThrow(/no measured rows/);
    expect(specFor('aio', { throughput: [] })).toBeUndefined();
    expect(specFor('aio-stall', aioResult)).toBeUndefined();
    expect(() => specFor('nope', {})).toThrow(/unknown chart 'nope'/);
  });

  it('captions the date, the machine and the load', () => {
    const spec = specFor('aio', aioResult);
    expect(spec.title.subtitle.join('\n')).toMatch(/2026-12-05 17:51 UTC.*2 cores, Linux 6\.1\.0[\s\S]*load average 18\.62/);
  });

  it('takes the host and load from runContext for a bench that records neither', () => {
    const rpc = { size: 32, seconds: 3, node: 'v20.20.2', rows: [{ inFlight: 1, mode: 'raw echo', perSecond: 10 }, { inFlight: 1, mode: 'rpc call', perSecond: 6 }] };
    const bare = specFor('rpc', rpc, '2026-12-05T20:00:00.000Z').title.subtitle.join('\n');
    expect(bare).toMatch(/2026-12-05 20:00 UTC.*host: \? cores[\s\S]*host load not recorded/);
    const runContext = { date: '2026-12-05T21:00:00.000Z', cores: 2, kernel: '6.1.0', loadAverage: { before: [3, 2, 1], after: [4.5, 2, 1] } };
    const withContext = specFor('rpc', { ...rpc, runContext }, '2026-12-05T20:00:00.000Z').title.subtitle.join('\n');
    expect(withContext).toMatch(/2026-12-05 21:00 UTC · host: 2 cores, Linux 6\.1\.0, Node v20\.20\.2\nhost load average 3\.00 -> 4\.50/);
  });

  it('renders to an SVG with the library (headless)', async () => {
    const svg = await renderSvg(specFor('aio', aioResult));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('0.70x  (target &gt;= 0.9x)');
    expect(svg).toContain('bench/aio');
  });
});

describe('newestResultFor', () => {
  let dir;
  afterEach(() => dir && rmSync(dir, { recursive: true, force: true }));
  const save = (name, body, mtimeSeconds) => {
    const file = join(dir, name);
    writeFileSync(file, typeof body === 'string' ? body : JSON.stringify(body));
    if (mtimeSeconds !== undefined) utimesSync(file, mtimeSeconds, mtimeSeconds);
  };

  it('takes the newest full run that has the section, over newer quick runs and broken files', () => {
    dir = mkdtempSync(join(tmpdir(), 'vmlink-chart-test-'));
    const full = (date, extra = {}) => ({ date, config: { quick: false }, throughput: [{}], ...extra });
    save('aio-old.json', full('2026-12-01T00:00:00.000Z'));
    save('aio-new.json', full('2026-12-02T00:00:00.000Z'));
    save('aio-stall-only.json', { date: '2026-12-03T00:00:00.000Z', config: { quick: false }, stall: [{}] });
    save('aio-quick-2026-12-04.json', { date: '2026-12-04T00:00:00.000Z', config: { quick: true }, throughput: [{}] });
    save('aio-cut-short.json', '{"date": "2026-12-05');
    save('aiox.json', full('2026-12-06T00:00:00.000Z')); // another bench's name
    expect(newestResultFor('aio', dir).file).toBe(join(dir, 'aio-new.json'));
    expect(newestResultFor('aio-stall', dir).file).toBe(join(dir, 'aio-stall-only.json'));
  });

  it('falls back to a quick run, and dates a JSON without a date by its file time', () => {
    dir = mkdtempSync(join(tmpdir(), 'vmlink-chart-test-'));
    save('rpc-a.json', { rows: [] }, 1_000_000);
    save('rpc-b.json', { rows: [] }, 2_000_000);
    expect(newestResultFor('rpc', dir).file).toBe(join(dir, 'rpc-b.json'));
    save('aio-quick-x.json', { date: '2026-12-04T00:00:00.000Z', config: { quick: true }, throughput: [{}] });
    expect(newestResultFor('aio', dir).quick).toBe(true);
    expect(newestResultFor('hvsock', dir)).toBeUndefined();
  });
});
