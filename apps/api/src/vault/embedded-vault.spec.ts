import { EmulatorDataDirInUseError } from '@app/keyvault-emulator';
import { startFailureFields } from '../http/error-log-fields';
import { EmbeddedVaultDataDirInUseError } from './embedded-vault';

describe('EmbeddedVaultDataDirInUseError', () => {
  const held = () => new EmbeddedVaultDataDirInUseError(new EmulatorDataDirInUseError('/srv/cv/data/vault', 4242));

  it("keeps the holder's facts for whoever catches it", () => {
    const e = held();
    expect([e.code, e.dataDir, e.pid, e.lockFile]).toEqual(['DATA_DIR_IN_USE', '/srv/cv/data/vault', 4242, '/srv/cv/data/vault/emulator.pid']);
  });

  // The host's "Failed to start" line logs the cause chain's messages (startFailureFields): the local vault's own advice
  // to code that starts it ("another dataDir (leave it out for a temporary one)") is wrong for the host, whose
  // EMULATOR_DATA_DIR left out is ./data/vault.
  it("reaches the host's failed-start log in the host's terms only: not the local vault's advice to code that embeds it", () => {
    const logged = JSON.stringify(startFailureFields(held()));
    expect(logged).toContain('(EMULATOR_DATA_DIR) is in use by the local Key Vault of process 4242');
    expect(logged).toContain('delete /srv/cv/data/vault/emulator.pid');
    expect(logged).not.toMatch(/dataDir|temporary/);
  });
});
