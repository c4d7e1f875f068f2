/**
 * `npm run bench` — runs every benchmark (`bench/*.bench.ts`, one after the other, each in its own
 * process), or only the ones named: `npm run bench -- http-read scale --seconds 3` (options after the
 * names go to each bench). Prints one JSON line per figure on stdout
 * (`{"bench","figure","value","baseline","ratio","target","met"}`; everything else a bench prints goes
 * to stderr) and rewrites the summary table at the top of docs/BENCHMARKS.md; each bench rewrites its
 * own section. A bench that fails is reported and the others still run; the exit code says so.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Figure, parseFigure, writeSummary } from './support/figures';
import { machineLine, today } from './support/measure';

const SUFFIX = '.bench.js';

function runBench(name: string, args: string[]): Promise<{ figures: Figure[]; code: number }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(__dirname, `${name}${SUFFIX}`), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    const figures: Figure[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const f = parseFigure(line);
      if (f) {
        figures.push(f);
        process.stdout.write(`${line}\n`);
      } else process.stderr.write(`${line}\n`);
    });
    child.once('exit', (code, signal) => resolve({ figures, code: code ?? (signal ? 1 : 0) }));
  });
}

async function main(): Promise<void> {
  const all = readdirSync(__dirname)
    .filter((f) => f.endsWith(SUFFIX))
    .map((f) => f.slice(0, -SUFFIX.length))
    .sort();
  const argv = process.argv.slice(2);
  const firstOption = argv.findIndex((a) => a.startsWith('-'));
  const names = firstOption < 0 ? argv : argv.slice(0, firstOption);
  const options = firstOption < 0 ? [] : argv.slice(firstOption);
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length) throw new Error(`no such bench: ${unknown.join(', ')} (there are: ${all.join(', ')})`);
  const selected = names.length ? names : all;
  const figures: Figure[] = [];
  const failed: string[] = [];
  for (const name of selected) {
    process.stderr.write(`\n=== ${name}\n`);
    const r = await runBench(name, options);
    figures.push(...r.figures);
    if (r.code !== 0) failed.push(name);
  }
  writeSummary(
    figures,
    `Rows are rewritten by \`npm run bench\` (every bench) or \`npm run bench -- <name>\` (that bench's rows; the
others stay as last measured). Last run ${today()} (${selected.join(', ')}) on ${machineLine()}. "now" is the value
(with its ratio to the baseline when there is one); "met" compares the target with the ratio or the value as the
target says. Each section below says how it was measured.${failed.length ? ` Failed in that run: ${failed.join(', ')}.` : ''}`,
  );
  if (failed.length) {
    process.stderr.write(`failed: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
