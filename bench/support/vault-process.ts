import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';

export interface VaultStats {
  total: number;
  byStatus: Record<string, number>;
  byOperationAndStatus: Record<string, number>;
}

/**
 * The local vault in a process of its own (the built `apps/keyvault-emulator/src/main.js`), as Azure
 * Key Vault is a service of its own: its CPU (TLS, persistence snapshots) is not taken from the
 * process being measured. Stats and reset through its admin endpoints.
 */
export class VaultProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly vaultUrl: string,
    readonly caCertPem: string,
  ) {}

  /** `throttle.limit` is the budget of every operation, Set Secret included, unless `createSecretLimit` says otherwise. */
  static async start(o: { dataDir: string; throttle: { limit: number; windowMs: number; createSecretLimit?: number } }): Promise<VaultProcess> {
    const main = join(__dirname, '..', '..', 'apps', 'keyvault-emulator', 'src', 'main.js');
    const { limit, windowMs, createSecretLimit = limit } = o.throttle;
    const args = [main, '--port', '0', '--data-dir', o.dataDir, '--throttle-limit', String(limit), '--throttle-window-ms', String(windowMs)];
    args.push('--throttle-create-secret-limit', String(createSecretLimit));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = await new Promise<{ url: string; ca: string }>((resolve, reject) => {
      let out = '';
      const onData = (b: Buffer) => {
        out += b.toString();
        const url = /Vault URL: (\S+)/.exec(out)?.[1];
        const ca = /CA certificate: (\S+)/.exec(out)?.[1];
        if (url && ca) {
          child.stdout!.off('data', onData);
          child.stdout!.resume();
          resolve({ url, ca });
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => reject(new Error(`the vault process exited (${code}) before it was ready`)));
    });
    return new VaultProcess(child, lines.url, readFileSync(lines.ca, 'utf8'));
  }

  stats(): Promise<VaultStats> {
    return this.admin('GET', '/_emulator/stats') as Promise<VaultStats>;
  }

  async resetStats(): Promise<void> {
    await this.admin('POST', '/_emulator/reset');
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.kill('SIGTERM');
    await exited;
  }

  private admin(method: string, path: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request(new URL(path, this.vaultUrl), { method, ca: this.caCertPem }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => {
          const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
          if (ok) resolve(body ? JSON.parse(body) : undefined);
          else reject(new Error(`${method} ${path}: ${res.statusCode}`));
        });
      });
      req.on('error', reject);
      req.end();
    });
  }
}
