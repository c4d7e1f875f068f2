import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * One figure of a benchmark, as `npm run bench` prints it (one JSON line each) and lists it in the
 * summary table of docs/BENCHMARKS.md. `ratio` is value/baseline when there is a baseline.
 */
export interface Figure {
  bench: string;
  figure: string;
  value: number;
  baseline: number | null;
  ratio: number | null;
  /** e.g. `ratio >= 0.3`, `value <= 20 ms`; null: reported, no target. */
  target: string | null;
  met: boolean | null;
}

/** The keys of a figure line, in the order printed. */
const FIGURE_KEYS = ['bench', 'figure', 'value', 'baseline', 'ratio', 'target', 'met'] as const;

export interface FigureTarget {
  /** What the target bounds: the ratio to the baseline, or the value itself. */
  on: 'ratio' | 'value';
  op: '>=' | '<=';
  limit: number;
  /** Unit of the value shown in the target (e.g. `ms`, `%`). */
  unit?: string;
}

/** Builds a figure (rounded) and decides `met`. */
export function figure(bench: string, name: string, value: number, baseline: number | null, target: FigureTarget | null): Figure {
  const ratio = baseline ? Math.round((value / baseline) * 1000) / 1000 : null;
  const measured = target?.on === 'ratio' ? ratio : value;
  const met = target && measured !== null ? (target.op === '>=' ? measured >= target.limit : measured <= target.limit) : null;
  const text = target ? `${target.on} ${target.op === '>=' ? '≥' : '≤'} ${target.limit}${target.unit ? ` ${target.unit}` : ''}` : null;
  return { bench, figure: name, value: Math.round(value * 100) / 100, baseline, ratio, target: text, met };
}

/** Prints the figure as one JSON line on stdout (the keys in the documented order). */
export function emitFigure(f: Figure): Figure {
  process.stdout.write(`${JSON.stringify(Object.fromEntries(FIGURE_KEYS.map((k) => [k, f[k]])))}\n`);
  return f;
}

/** A figure line of a bench's output, or null for any other line. */
export function parseFigure(line: string): Figure | null {
  if (!line.startsWith('{"bench"') || !line.includes('"figure"')) return null;
  try {
    const o = JSON.parse(line) as Partial<Figure>;
    return typeof o.figure === 'string' && typeof o.bench === 'string' && typeof o.value === 'number' ? (o as Figure) : null;
  } catch {
    return null;
  }
}

/**
 * A figure's (or section's) name for a run over `credentials` credentials (`--credentials N`): unchanged for one;
 * else the count joins the name's closing parenthesis ("value read (sqlite)" → "value read (sqlite, 1000
 * credentials)") or a new one, so the figures of a spread run never take the one-credential rows' names.
 */
export function withCredentials(name: string, credentials: number): string {
  if (credentials === 1) return name;
  return name.endsWith(')') ? `${name.slice(0, -1)}, ${credentials} credentials)` : `${name} (${credentials} credentials)`;
}

/** The credential count a figure's name says (`withCredentials`), 1 when it says none. */
export function credentialsOf(name: string): number {
  const n = /[(,] ?(\d+) credentials\)$/.exec(name)?.[1];
  return n ? Number(n) : 1;
}

const SUMMARY = '## Summary';

/** The rows of the summary table in `doc`, as written, with their bench and figure. */
function summaryRows(doc: string): Array<{ bench: string; figure: string; text: string }> {
  const start = doc.indexOf(`${SUMMARY}\n`);
  if (start < 0) return [];
  const end = doc.indexOf('\n## ', start + SUMMARY.length);
  return doc
    .slice(start, end < 0 ? undefined : end)
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| bench ') && !l.startsWith('|---'))
    .map((text) => {
      const [bench, figure = ''] = text.slice(2).split(' | ');
      return { bench, figure, text };
    });
}
const docPath = () => join(__dirname, '..', '..', '..', 'docs', 'BENCHMARKS.md');

/** The figures of the summary table now in docs/BENCHMARKS.md (to keep the rows of benches not run). */
export function summaryFigures(doc = existsSync(docPath()) ? readFileSync(docPath(), 'utf8') : ''): Figure[] {
  return summaryRows(doc).flatMap(({ text: l }) => {
    const [bench, name, target, now, met, baseline] = l.slice(2, -2).split(' | ');
    const value = Number(now.replace(/[^0-9.eE+-].*$/, ''));
    if (!bench || !name || !Number.isFinite(value)) return [];
    const ratio = /\(ratio ([0-9.]+)\)/.exec(now)?.[1];
    return [{ bench, figure: name, value, baseline: baseline && baseline !== '—' ? Number(baseline) : null, ratio: ratio ? Number(ratio) : null, target: target === '—' ? null : target, met: met === 'yes' ? true : met === 'no' ? false : null }];
  });
}

/**
 * Writes the summary table (figure, target, now, met) as the first section of docs/BENCHMARKS.md (`summaryDoc`).
 */
export function writeSummary(fresh: Figure[], note: string): void {
  const path = docPath();
  writeFileSync(path, summaryDoc(existsSync(path) ? readFileSync(path, 'utf8') : '', fresh, note));
}

/**
 * `doc` with its summary table rewritten: `fresh` figures replace every row of their bench and credential count
 * (`credentialsOf`: a run with `--credentials 1000` replaces only the rows that say 1000 credentials); rows of
 * benches (or counts) not run stay as they were.
 */
export function summaryDoc(doc: string, fresh: Figure[], note: string): string {
  doc ||= '# Benchmarks\n\nResults of the benchmarks under `bench/`. Each section is written by its benchmark.\n\n';
  const runOf = (bench: string, name: string) => `${bench}\n${credentialsOf(name)}`;
  const ran = new Set(fresh.map((f) => runOf(f.bench, f.figure)));
  const line = (f: Figure) =>
    `| ${f.bench} | ${f.figure} | ${f.target ?? '—'} | ${f.value}${f.ratio !== null ? ` (ratio ${f.ratio})` : ''} | ${f.met === null ? '—' : f.met ? 'yes' : 'no'} | ${f.baseline ?? '—'} |`;
  // Rows of benches not run stay exactly as written (some carry more than a number, e.g. `403 (100.7%)`).
  const kept = summaryRows(doc).filter((r) => !ran.has(runOf(r.bench, r.figure))).map((r) => r.text);
  const rows = [...kept, ...fresh.map(line)];
  const section = `${SUMMARY}\n\n${note.trim()}\n\n| bench | figure | target | now | met | baseline |\n|---|---|---|---|---|---|\n${rows.join('\n')}\n`;
  const start = doc.indexOf(`${SUMMARY}\n`);
  if (start >= 0) {
    const after = doc.indexOf('\n## ', start + SUMMARY.length);
    return doc.slice(0, start) + section + (after >= 0 ? `\n${doc.slice(after + 1)}` : '');
  }
  const first = doc.indexOf('\n## ');
  return first >= 0 ? `${doc.slice(0, first + 1)}${section}\n${doc.slice(first + 1)}` : `${doc.replace(/\n*$/, '\n\n')}${section}`;
}
