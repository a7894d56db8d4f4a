// Text formats of Pgpool-II's SHOW output: `%F %T` local timestamps, C's `%f` (six decimals),
// and the `M:SS` countdowns of pool_pools.

/** `2026-12-01 19:32:00` in local time, or '' for no date. */
export function timestamp(d: Date | number | null | undefined): string {
  if (d === null || d === undefined) return '';
  const t = typeof d === 'number' ? new Date(d) : d;
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${p(t.getMonth() + 1)}-${p(t.getDate())} ${p(t.getHours())}:${p(t.getMinutes())}:${p(t.getSeconds())}`;
}

/** C's printf("%f"). */
export function fixed6(n: number): string {
  return Number.isFinite(n) ? n.toFixed(6) : 'nan';
}

/** `M:SS` for a number of seconds (negative counts as 0). */
export function minutesSeconds(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
