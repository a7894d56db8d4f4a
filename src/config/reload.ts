// What a reload may change: compares the running configuration with a newly loaded one and
// splits the differences into those that apply now (context reload/session) and those that
// need a restart (context restart), which are reported and left as they were.

import { SETTINGS } from './settings.ts';
import type { BackendConfig, Config } from './load.ts';

export interface ReloadPlan {
  /** The configuration to run with: the new one, with restart-only values kept from the old. */
  readonly config: Config;
  /** Parameters whose new values apply now. */
  readonly applied: readonly string[];
  /** Parameters that changed but need a restart (kept at their running values). */
  readonly needRestart: readonly string[];
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Backend fields that may change on reload; an existing node's address needs a restart. */
function mergeBackends(old: readonly BackendConfig[], next: readonly BackendConfig[], needRestart: string[], applied: string[]): BackendConfig[] {
  const out: BackendConfig[] = [];
  for (const n of next) {
    const o = old.find((b) => b.id === n.id);
    if (!o) {
      applied.push(`backend_hostname${n.id} (new backend)`);
      out.push(n);
      continue;
    }
    if (o.hostname !== n.hostname || o.port !== n.port) {
      needRestart.push(`backend_hostname${n.id}/backend_port${n.id}`);
      out.push({ ...n, hostname: o.hostname, port: o.port });
    } else out.push(n);
    if (o.weight !== n.weight) applied.push(`backend_weight${n.id}`);
    if (!same(o.flag, n.flag)) applied.push(`backend_flag${n.id}`);
    if (!same(o.healthCheck, n.healthCheck)) applied.push(`health_check_*${n.id}`);
  }
  for (const o of old) if (!next.some((b) => b.id === o.id)) {
    // Removing a backend would strand its sessions; keep it until a restart.
    needRestart.push(`backend_hostname${o.id} (removed)`);
    out.push(o);
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The plan for moving from `old` to `next`. */
export function planReload(old: Config, next: Config): ReloadPlan {
  const applied: string[] = [];
  const needRestart: string[] = [];
  const settings: Record<string, unknown> = { ...next.settings };
  const oldSettings = old.settings as unknown as Record<string, unknown>;
  for (const def of SETTINGS) {
    if ('perNode' in def && def.perNode && !('global' in def && def.global)) continue;
    const name = def.name;
    if (!(name in settings)) continue;
    if (same(oldSettings[name], settings[name])) continue;
    if (def.context === 'restart') {
      needRestart.push(name);
      settings[name] = oldSettings[name];
    } else applied.push(name);
  }
  const backends = mergeBackends(old.backends, next.backends, needRestart, applied);
  return {
    config: { ...next, settings: settings as unknown as Config['settings'], backends },
    applied,
    needRestart,
  };
}
