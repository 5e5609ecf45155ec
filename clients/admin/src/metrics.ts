// Server health from GET /metrics (Prometheus text format): the few series the console charts,
// turned into rates and per-interval latencies, and drawn as small SVG line charts.

/** Sample name (with its labels, as written) -> value. */
export type Samples = Map<string, number>;

export function parseMetrics(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (space <= 0) continue;
    const value = Number(line.slice(space + 1));
    if (!Number.isNaN(value)) out.set(line.slice(0, space), value);
  }
  return out;
}

export interface Point {
  connections: number;
  changesPerSecond: number | null;
  commitMeanMs: number | null;
  commitP95Ms: number | null;
  fanoutMeanMs: number | null;
  fanoutP95Ms: number | null;
}

interface Histogram {
  buckets: Array<[number, number]>; // [upper bound, cumulative count], ascending
  sum: number;
  count: number;
}

function histogram(samples: Samples, name: string): Histogram {
  const buckets: Array<[number, number]> = [];
  const prefix = `${name}_bucket{le="`;
  for (const [key, value] of samples) {
    if (!key.startsWith(prefix)) continue;
    const le = key.slice(prefix.length, key.length - 2);
    buckets.push([le === '+Inf' ? Infinity : Number(le), value]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  return { buckets, sum: samples.get(`${name}_sum`) ?? 0, count: samples.get(`${name}_count`) ?? 0 };
}

/** Mean and 95th percentile (upper bucket bound) of what was observed between two scrapes, in ms. */
function latency(prev: Histogram, cur: Histogram): [number | null, number | null] {
  const n = cur.count - prev.count;
  if (n <= 0) return [null, null];
  const mean = ((cur.sum - prev.sum) / n) * 1000;
  const target = n * 0.95;
  let p95: number | null = null;
  for (let i = 0; i < cur.buckets.length; i++) {
    const [bound, cumulative] = cur.buckets[i]!;
    const before = prev.buckets[i]?.[1] ?? 0;
    if (cumulative - before >= target) {
      p95 = Number.isFinite(bound) ? bound * 1000 : null;
      break;
    }
  }
  return [mean, p95];
}

/** Keeps the last scrapes and derives one Point per scrape. */
export class MetricsHistory {
  readonly points: Point[] = [];
  private prev: { at: number; samples: Samples } | null = null;

  constructor(private readonly capacity = 90) {}

  add(samples: Samples, at: number): Point {
    const prev = this.prev;
    const seconds = prev ? (at - prev.at) / 1000 : 0;
    const committed = samples.get('possync_changes_committed_total') ?? 0;
    const point: Point = {
      connections: samples.get('possync_connections') ?? 0,
      changesPerSecond: null,
      commitMeanMs: null,
      commitP95Ms: null,
      fanoutMeanMs: null,
      fanoutP95Ms: null,
    };
    if (prev && seconds > 0) {
      const before = prev.samples.get('possync_changes_committed_total') ?? 0;
      // A restarted server starts its counters over.
      point.changesPerSecond = committed >= before ? (committed - before) / seconds : committed / seconds;
      const name = (n: string) => [histogram(prev.samples, n), histogram(samples, n)] as const;
      [point.commitMeanMs, point.commitP95Ms] = latency(...name('possync_commit_duration_seconds'));
      [point.fanoutMeanMs, point.fanoutP95Ms] = latency(...name('possync_fanout_latency_seconds'));
    }
    this.prev = { at, samples };
    this.points.push(point);
    if (this.points.length > this.capacity) this.points.shift();
    return point;
  }
}

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 100;
const HEIGHT = 40;

/** Draws one or two series (null: no data) as a line chart scaled to its own maximum. */
export function drawChart(figure: Element, series: Array<Array<number | null>>, capacity: number): void {
  let svg = figure.querySelector('svg');
  if (!svg) {
    svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    figure.appendChild(svg);
  }
  let max = 0;
  for (const s of series) for (const v of s) if (v !== null && v > max) max = v;
  if (max <= 0) max = 1;
  const x = (i: number, n: number) => WIDTH - (n - 1 - i) * (WIDTH / Math.max(1, capacity - 1));
  const y = (v: number) => HEIGHT - 2 - (v / max) * (HEIGHT - 4);
  const paths: string[] = series.map((s) => {
    let d = '';
    let pen = false;
    s.forEach((v, i) => {
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i, s.length).toFixed(2)} ${y(v).toFixed(2)}`;
      pen = true;
    });
    return d;
  });
  const first = series[0] ?? [];
  const points = first.map((v, i) => (v === null ? null : `${x(i, first.length).toFixed(2)} ${y(v).toFixed(2)}`));
  const filled = points.filter((p): p is string => p !== null);
  let area = '';
  if (filled.length > 1 && points.every((p) => p !== null)) {
    area = `M${x(0, first.length).toFixed(2)} ${HEIGHT}L${filled.join('L')}L${WIDTH} ${HEIGHT}Z`;
  }
  svg.replaceChildren();
  if (area) svg.appendChild(path(area, 'area'));
  paths.forEach((d, i) => {
    if (d) svg!.appendChild(path(d, i === 0 ? 'line' : 'line2'));
  });
}

function path(d: string, cls: string): SVGPathElement {
  const p = document.createElementNS(SVG, 'path');
  p.setAttribute('d', d);
  p.setAttribute('class', cls);
  return p;
}

/** A number for a chart's caption. */
export function formatValue(v: number | null, digits = 1): string {
  if (v === null) return '–';
  if (v >= 100 || Number.isInteger(v)) return String(Math.round(v));
  return v.toFixed(digits);
}
