import { SingleBar, Presets } from 'cli-progress';
import type { MigrationProgress } from '@app/migration';

/** Progress on stderr: a cli-progress bar on a TTY (done/total, rate, ETA), plain lines otherwise. */
export class ProgressReporter {
  private bar?: SingleBar;
  private started = Date.now();
  private lastLine = 0;

  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly lineEveryMs = 2000,
  ) {}

  start(total: number): void {
    this.started = Date.now();
    if (this.out.isTTY) {
      this.bar = new SingleBar(
        {
          stream: this.out,
          format: 'migrating {bar} {value}/{total} | {rate}/s | ETA {eta_formatted} | failed {failed} | skipped {skipped}',
          etaBuffer: 50,
          hideCursor: true,
        },
        Presets.shades_classic,
      );
      this.bar.start(total, 0, { rate: '0.0', failed: 0, skipped: 0 });
    } else {
      this.out.write(`migrating ${total} connection(s)\n`);
    }
  }

  update(p: MigrationProgress): void {
    const elapsed = Math.max(1, Date.now() - this.started) / 1000;
    const rate = p.done / elapsed;
    if (this.bar) {
      this.bar.setTotal(p.total);
      this.bar.update(p.done, { rate: rate.toFixed(1), failed: p.failed, skipped: p.skipped });
      return;
    }
    if (Date.now() - this.lastLine < this.lineEveryMs && p.done < p.total) return;
    this.lastLine = Date.now();
    const eta = rate > 0 ? Math.ceil((p.total - p.done) / rate) : 0;
    const pct = p.total ? Math.floor((p.done / p.total) * 100) : 100;
    this.out.write(`progress ${p.done}/${p.total} (${pct}%) ${rate.toFixed(1)}/s ETA ${eta}s migrated ${p.successful} failed ${p.failed} skipped ${p.skipped}\n`);
  }

  stop(): void {
    this.bar?.stop();
  }
}
