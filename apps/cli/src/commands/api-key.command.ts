import { Command, CommandRunner, Option } from 'nest-commander';
import { ALL_SCOPES, generateApiKey } from '@app/api-host';

interface Flags {
  id: string;
  tenant: string;
  scopes: string[];
}

/** Prints a new API key once, and the AUTH_API_KEYS entry (a hash) that makes the host accept it. */
@Command({ name: 'api-key:create', description: 'Generate an API key for the host (shown once) and its AUTH_API_KEYS entry' })
export class ApiKeyCreateCommand extends CommandRunner {
  async run(_args: string[], flags: Flags): Promise<void> {
    const { key, entry } = generateApiKey(flags.id, flags.tenant, flags.scopes);
    process.stdout.write(
      `API key (store it now, it is not kept anywhere):\n  ${key}\n\nAdd this entry to the AUTH_API_KEYS JSON array:\n  ${JSON.stringify(entry)}\n`,
    );
  }

  @Option({ flags: '--id <id>', description: 'key id (letters, digits, dashes)', required: true })
  parseId(v: string): string {
    return v;
  }

  @Option({ flags: '--tenant <tenant>', description: 'tenant the key acts for', required: true })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--scopes <scopes>', description: `comma-separated: ${ALL_SCOPES.join(', ')}`, required: true })
  parseScopes(v: string): string[] {
    return v.split(',').map((s) => s.trim()).filter(Boolean);
  }
}
