// The CPU limit of the container pgrouter runs in, from its cgroup (v2's cpu.max, or v1's CFS
// quota and period): a Kubernetes CPU limit. Undefined when there is none or it cannot be read.

import { readFileSync } from 'node:fs';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** CPUs the cgroup's quota allows (e.g. 0.5 for a 500m limit), or undefined without a quota. */
export function cgroupCpuLimit(root = '/sys/fs/cgroup'): number | undefined {
  const v2 = read(`${root}/cpu.max`);
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    if (quota === undefined || quota === 'max') return undefined;
    const q = Number(quota);
    const p = Number(period ?? 100000);
    return q > 0 && p > 0 ? q / p : undefined;
  }
  const q = Number(read(`${root}/cpu/cpu.cfs_quota_us`) ?? read(`${root}/cpu,cpuacct/cpu.cfs_quota_us`) ?? -1);
  const p = Number(read(`${root}/cpu/cpu.cfs_period_us`) ?? read(`${root}/cpu,cpuacct/cpu.cfs_period_us`) ?? 100000);
  return q > 0 && p > 0 ? q / p : undefined;
}
