import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODULE_METADATA } from '@nestjs/common/constants';
// nest-commander keeps its metadata keys out of its index; the decorators' own keys, read as they write them.
import { CommandMeta, OptionMeta } from 'nest-commander/src/constants';
import { CliModule } from './cli.module';

type Ctor = abstract new (...args: never[]) => unknown;

/** Each registered command's name and the long flags of its options, from the decorators themselves. */
function registeredCommands(): { name: string; flags: string[] }[] {
  const providers = Reflect.getMetadata(MODULE_METADATA.PROVIDERS, CliModule) as Ctor[];
  return providers.map((command) => {
    const { name } = Reflect.getMetadata(CommandMeta, command) as { name: string };
    const flags = new Set<string>();
    // Options declared on a base class (the backup key flags) count too, as nest-commander reads them.
    for (let proto = command.prototype as Record<string, unknown> | null; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as Record<string, unknown> | null) {
      for (const method of Object.getOwnPropertyNames(proto)) {
        const option = typeof proto[method] === 'function' ? (Reflect.getMetadata(OptionMeta, proto[method]) as { flags?: string } | undefined) : undefined;
        const flag = /--[a-z][a-z0-9-]*/.exec(option?.flags ?? '');
        if (flag) flags.add(flag[0]);
      }
    }
    return { name, flags: [...flags] };
  });
}

/** The first cell of each row of the README's CLI table: `` `rotate --tenant <t> …` ``. */
function documentedRows(): string[] {
  const readme = readFileSync(join(__dirname, '../../../README.md'), 'utf8');
  const section = readme.split(/^## CLI$/m)[1]?.split(/^## /m)[0] ?? '';
  return [...section.matchAll(/^\| `([^|]*(?:\\\|[^|]*)*)` \|/gm)].map((m) => m[1]);
}

describe("README's CLI table", () => {
  const commands = registeredCommands();
  const rows = documentedRows();

  it('has a row for every command, naming each of its options', () => {
    expect(commands.length).toBeGreaterThan(10);
    const missing = commands.flatMap(({ name, flags }) => {
      const own = rows.filter((r) => r === name || r.startsWith(`${name} `));
      if (!own.length) return [name];
      return flags.filter((f) => !own.some((r) => new RegExp(`${f}(?![a-z-])`).test(r))).map((f) => `${name} ${f}`);
    });
    expect(missing).toEqual([]);
  });

  it('documents no command the CLI does not have', () => {
    expect(rows.map((r) => r.split(' ')[0]).filter((name) => !commands.some((c) => c.name === name))).toEqual([]);
  });
});
