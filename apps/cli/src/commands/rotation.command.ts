import { Command, CommandRunner, Option } from 'nest-commander';
import { ExpiryMonitorService, REVOKE_SEVERITIES, RevocationService, RotationCheckService, RotationPolicyService, RotationService, WebhookSecretsService, type RevokeSeverity, type RevokeTarget } from '@app/rotation';
import { operatorContext, withHostLibs } from './host-libs.context';

/** The rotation lib with the host's database and vault (see withHostLibs). */
const withRotation = withHostLibs;

const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
const operator = operatorContext;

/** `cli rotation:check [--job expiry-monitor|rotation-check]`: one run now (under the job's lock; `acquired: false` when another replica runs it). */
@Command({ name: 'rotation:check', description: 'Run the expiry monitor and/or the rotation check once, now' })
export class RotationCheckCommand extends CommandRunner {
  async run(_args: string[], flags: { job?: string }): Promise<void> {
    const job = flags.job ?? 'all';
    if (!['all', 'expiry-monitor', 'rotation-check'].includes(job)) throw new Error('--job must be expiry-monitor or rotation-check');
    print(
      await withRotation(async (get) => ({
        ...(job !== 'rotation-check' ? { expiryMonitor: await get(ExpiryMonitorService).runOnce() } : {}),
        ...(job !== 'expiry-monitor' ? { rotationCheck: await get(RotationCheckService).runOnce() } : {}),
      })),
    );
  }

  @Option({ flags: '--job <job>', description: 'expiry-monitor or rotation-check (default: both)' })
  parseJob(v: string): string {
    return v;
  }
}

/** `cli policies:list --tenant t`: the tenant's policy overrides. */
@Command({ name: 'policies:list', description: "List a tenant's rotation policy overrides" })
export class PoliciesListCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string }): Promise<void> {
    if (!flags.tenant) throw new Error('--tenant is required');
    print(await withRotation((get) => get(RotationPolicyService).list(operator(flags.tenant!))));
  }

  @Option({ flags: '--tenant <tenant>', description: 'the tenant', required: true })
  parseTenant(v: string): string {
    return v;
  }
}

/**
 * `cli rotate --tenant t --credential id [--reason r]`: rotates with the integration's handler or the
 * type's generator. No value option on purpose: a value on a command line stays in shell history.
 */
@Command({ name: 'rotate', description: "Rotate a credential now (its integration's handler or its type's generator)" })
export class RotateCommand extends CommandRunner {
  async run(_args: string[], flags: { tenant?: string; credential?: string; reason?: string }): Promise<void> {
    if (!flags.tenant || !flags.credential) throw new Error('--tenant and --credential are required');
    const out = await withRotation((get) => get(RotationService).rotate(operator(flags.tenant!), flags.credential!, { reason: flags.reason ?? 'cli' }));
    print({ credentialId: out.metadata.id, fromVersion: out.fromVersion, version: out.metadata.version, method: out.method });
  }

  @Option({ flags: '--tenant <tenant>', required: true })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--credential <id>', required: true })
  parseCredential(v: string): string {
    return v;
  }

  @Option({ flags: '--reason <reason>' })
  parseReason(v: string): string {
    return v;
  }
}

interface RevokeFlags {
  tenant?: string;
  credential?: string;
  integration?: string;
  connection?: string;
  all?: boolean;
  reason?: string;
  severity?: string;
}

/** `cli revoke --tenant t (--credential id | --integration i [--connection c] | --all) --reason r [--severity s]`. */
@Command({ name: 'revoke', description: 'Emergency revoke of a credential, a connection, an integration or a whole tenant' })
export class RevokeCommand extends CommandRunner {
  async run(_args: string[], flags: RevokeFlags): Promise<void> {
    if (!flags.tenant || !flags.reason) throw new Error('--tenant and --reason are required');
    const targets = [flags.credential !== undefined, flags.integration !== undefined, flags.all === true].filter(Boolean).length;
    if (targets !== 1 || (flags.connection !== undefined && flags.integration === undefined)) {
      throw new Error('give exactly one target: --credential, --integration (with an optional --connection) or --all');
    }
    const severity = (flags.severity ?? 'critical') as RevokeSeverity;
    if (!REVOKE_SEVERITIES.includes(severity)) throw new Error(`--severity must be one of ${REVOKE_SEVERITIES.join(', ')}`);
    const target: RevokeTarget = flags.credential ? { credentialId: flags.credential } : flags.integration ? { integrationId: flags.integration, connectionId: flags.connection } : { tenant: true };
    const result = await withRotation((get) => get(RevocationService).revoke(operator(flags.tenant!), target, { reason: flags.reason!, severity }));
    print(result);
    if (result.vaultFailures.length) process.exitCode = 1;
  }

  @Option({ flags: '--tenant <tenant>', required: true })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--credential <id>' })
  parseCredential(v: string): string {
    return v;
  }

  @Option({ flags: '--integration <id>' })
  parseIntegration(v: string): string {
    return v;
  }

  @Option({ flags: '--connection <id>' })
  parseConnection(v: string): string {
    return v;
  }

  @Option({ flags: '--all', description: 'every credential of the tenant' })
  parseAll(): boolean {
    return true;
  }

  @Option({ flags: '--reason <reason>', required: true })
  parseReason(v: string): string {
    return v;
  }

  @Option({ flags: '--severity <severity>', description: 'low, medium, high or critical (default)' })
  parseSeverity(v: string): string {
    return v;
  }
}

interface WebhookRotateFlags {
  tenant?: string;
  integration?: string;
  connection?: string;
  stage?: boolean;
  activate?: boolean;
  discard?: boolean;
  rotation?: string;
}

/** An argument as a POSIX shell reads it back: bare when plain, else single-quoted (ids may hold any character). */
function shellWord(arg: string): string {
  return /^[A-Za-z0-9._:@/=+-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * `cli webhook:rotate --tenant t --integration i --connection c [--stage | --activate | --discard] [--rotation id]`.
 *
 * Without a mode: rotates now, in two phases, through the integration's WebhookSecretUpdater (an
 * embedding app registers one; the stock CLI has none and answers WEBHOOK_UPDATER_NOT_REGISTERED).
 * For every other provider the operator rotates: `--stage` prints a new secret ONCE (install it in
 * the provider's dashboard; verification accepts it from now on), `--activate` makes it current (the
 * previous one verifies through the overlap window), `--discard` drops it. Only `--stage` ever
 * prints a secret.
 */
@Command({ name: 'webhook:rotate', description: "Rotate a connection's webhook secret: through its updater, or --stage / --activate / --discard by hand" })
export class WebhookRotateCommand extends CommandRunner {
  async run(_args: string[], flags: WebhookRotateFlags): Promise<void> {
    if (!flags.tenant || !flags.integration || !flags.connection) throw new Error('--tenant, --integration and --connection are required');
    const modes = (['stage', 'activate', 'discard'] as const).filter((m) => flags[m] === true);
    if (modes.length > 1) throw new Error('give at most one of --stage, --activate, --discard');
    if (flags.rotation !== undefined && !(modes[0] === 'activate' || modes[0] === 'discard')) throw new Error('--rotation goes with --activate or --discard');
    const target = { tenantId: flags.tenant, integrationId: flags.integration, connectionId: flags.connection, context: operator(flags.tenant) };
    print(
      await withRotation(async (get) => {
        const webhooks = get(WebhookSecretsService);
        if (modes[0] === 'stage') {
          const staged = await webhooks.stageConnection(target);
          // The whole command: --activate needs the connection's three flags too, not only the rotation id.
          const activate = ['webhook:rotate', '--tenant', target.tenantId, '--integration', target.integrationId, '--connection', target.connectionId, '--activate', '--rotation', staged.rotationId];
          return { ...staged, next: `Install \`secret\` in the provider, then run \`npm run -s cli -- ${activate.map(shellWord).join(' ')}\`. It is not shown again.` };
        }
        if (modes[0] === 'activate') return webhooks.activateConnection(target, flags.rotation);
        if (modes[0] === 'discard') return webhooks.discardConnection(target, flags.rotation);
        return webhooks.rotateConnection(target);
      }),
    );
  }

  @Option({ flags: '--stage', description: 'stage a new secret and print it once, to install at the provider by hand' })
  parseStage(): boolean {
    return true;
  }

  @Option({ flags: '--activate', description: 'make the staged secret current (after the provider has it)' })
  parseActivate(): boolean {
    return true;
  }

  @Option({ flags: '--discard', description: 'drop the staged secret' })
  parseDiscard(): boolean {
    return true;
  }

  @Option({ flags: '--rotation <id>', description: 'the rotationId printed by --stage (refused if another secret is staged now)' })
  parseRotation(v: string): string {
    return v;
  }

  @Option({ flags: '--tenant <tenant>', required: true })
  parseTenant(v: string): string {
    return v;
  }

  @Option({ flags: '--integration <id>', required: true })
  parseIntegration(v: string): string {
    return v;
  }

  @Option({ flags: '--connection <id>', required: true })
  parseConnection(v: string): string {
    return v;
  }
}
