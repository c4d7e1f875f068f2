import { failedFigures, type PartResult } from '../../bench/reliability/report';

/** Every bounded figure of a reliability part holds; a failure names the figures and the first violations. */
export function expectEveryBoundHolds(r: PartResult): void {
  const failed = failedFigures(r).map((f) => `${f.name} = ${f.value} (bound ${f.target})`);
  expect({ failed, examples: failed.length ? r.examples : [] }).toEqual({ failed: [], examples: [] });
}

/** A figure of the part by name (fails when the part did not report it). */
export function figure(r: PartResult, name: string): number {
  const f = r.figures.find((x) => x.name === name);
  if (!f) throw new Error(`the part reported no figure "${name}"`);
  return f.value;
}
