// One client session's PGPOOL SET values: parameters of context 'session' that the session has
// changed for itself. PGPOOL RESET removes them again; the configured value then applies.

import type { Settings } from './settings.ts';
import type { SettingValue } from './values.ts';

/** A session's own values of session-settable parameters, by table name. */
export class SessionOverrides {
  private readonly values = new Map<string, SettingValue>();
  /** Bumped on every change, so a cache built from the values knows when to rebuild. */
  version = 0;

  get size(): number {
    return this.values.size;
  }

  /** The session's value of `name`, or undefined when it uses the configured one. */
  get<K extends keyof Settings>(name: K): Settings[K] | undefined {
    return this.values.get(name) as Settings[K] | undefined;
  }

  set(name: string, value: SettingValue): void {
    this.values.set(name, value);
    this.version++;
  }

  reset(name: string): void {
    if (this.values.delete(name)) this.version++;
  }

  resetAll(): void {
    if (this.values.size === 0) return;
    this.values.clear();
    this.version++;
  }

  /** `settings` with this session's values laid over it (the same object when there are none). */
  apply(settings: Settings): Settings {
    if (this.values.size === 0) return settings;
    return { ...settings, ...Object.fromEntries(this.values) } as Settings;
  }
}
