import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machineLine } from '../support/measure';
import type { ProfileName } from './profile';

/** One measured figure of a part, with the bound it is held to. */
export interface Figure {
  name: string;
  value: number;
  unit?: string;
  /** The bound as text ("= 0", "≤ 10 %"); absent for a figure that is context only. */
  target?: string;
  ok?: boolean;
}

/** What one part ran and found. */
export interface PartResult {
  part: string;
  profile: ProfileName;
  /** How the part measures (one paragraph, for docs/RELIABILITY.md). */
  method: string;
  /** What exactly this run did (counts, durations, databases). */
  ran: string;
  figures: Figure[];
  /** The first few violations, for a failure message (never a credential value). */
  examples: string[];
  durationS: number;
}

/** A figure held to a bound: `ok` says whether it holds. */
export function bounded(name: string, value: number, op: '=' | '≤' | '≥', bound: number, unit?: string): Figure {
  const ok = op === '=' ? value === bound : op === '≤' ? value <= bound : value >= bound;
  return { name, value, unit, target: `${op} ${bound}${unit ? ` ${unit}` : ''}`, ok };
}

export const info = (name: string, value: number, unit?: string): Figure => ({ name, value, unit });

export function failedFigures(r: PartResult): Figure[] {
  return r.figures.filter((f) => f.ok === false);
}

/** One JSON line per figure, as `npm run reliability` prints them. */
export function figureLines(r: PartResult): string[] {
  return r.figures.map((f) => JSON.stringify({ part: r.part, profile: r.profile, figure: f.name, value: f.value, unit: f.unit, target: f.target, ok: f.ok }));
}

/** Collects up to `max` examples of violations. */
export class Examples {
  readonly list: string[] = [];
  constructor(private readonly max = 10) {}
  add(s: string): void {
    if (this.list.length < this.max) this.list.push(s);
  }
}

const DOC = join(__dirname, '..', '..', '..', 'docs', 'RELIABILITY.md');
const HEADER = `# Reliability

Written by \`npm run reliability\` (\`bench/reliability/\`): each part below is a function taking a size
profile; \`npm test\` runs every part's \`short\` profile as \`test/reliability/*.e2e-spec.ts\` with the
same assertions. \`npm run reliability [-- --profile short|medium|full] [--parts a,b] [--databases sqlite,postgres]
[--trials N] [--minutes M] [--note "..."]\` prints one JSON line per figure and rewrites the section of each
part it ran (\`--trials\`/\`--minutes\` size and time-box the crash part).
`;

/** Replaces (or appends) the section of each part in docs/RELIABILITY.md. */
export function writeReliabilityDoc(results: PartResult[], note: string): string {
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : `${HEADER}\n`;
  const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
  for (const r of results) {
    const header = `## ${r.part}`;
    const rows = r.figures.map((f) => `| ${f.name} | ${f.value}${f.unit ? ` ${f.unit}` : ''} | ${f.target ?? '—'} | ${f.ok === undefined ? '' : f.ok ? 'yes' : '**no**'} |`);
    const section = [
      header,
      '',
      `Run ${when} UTC, profile \`${r.profile}\`, ${r.durationS} s, on ${machineLine()}. ${note}`.trim(),
      '',
      `**Method.** ${r.method}`,
      '',
      `**What ran.** ${r.ran}`,
      '',
      '| figure | value | bound | holds |',
      '|---|---|---|---|',
      ...rows,
      ...(r.examples.length ? ['', 'First violations:', '', ...r.examples.map((e) => `- ${e.replace(/\n/g, ' ')}`)] : []),
      '',
    ].join('\n');
    const start = doc.indexOf(`${header}\n`);
    if (start >= 0) {
      const after = doc.indexOf('\n## ', start + header.length);
      doc = doc.slice(0, start) + section + (after >= 0 ? doc.slice(after) : '');
    } else {
      doc = `${doc.replace(/\n*$/, '\n\n')}${section}`;
    }
  }
  writeFileSync(DOC, doc);
  return DOC;
}

const traceStart = Date.now();
/** With RELIABILITY_TRACE=1, a timestamped progress line on stderr (where a part spends its time). */
export function trace(line: string): void {
  if (process.env.RELIABILITY_TRACE) process.stderr.write(`[${((Date.now() - traceStart) / 1000).toFixed(1)} s] ${line}\n`);
}
