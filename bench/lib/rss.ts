// Resident memory of a process and its descendants, from /proc/<pid>/status (VmRSS, VmHWM).

import { readdirSync, readFileSync } from 'node:fs';

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** `pid` and every live descendant (cluster workers, if pgrouter ever forks them). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // pid (comm) state ppid ...; comm may contain spaces and parentheses.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid);
      if (list) list.push(Number(e));
      else children.set(ppid, [Number(e)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const stack = [pid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Summed VmRSS and VmHWM (kB) of the process tree of `pid`. */
export function treeMemoryKb(pid: number): { rssKb: number; hwmKb: number; processes: number } {
  const pids = processTree(pid);
  let rssKb = 0;
  let hwmKb = 0;
  for (const p of pids) {
    rssKb += statusKb(p, 'VmRSS');
    hwmKb += statusKb(p, 'VmHWM');
  }
  return { rssKb, hwmKb, processes: pids.length };
}
