// Small readers for message bodies: NUL-terminated strings and the name/value pair of a
// ParameterStatus. Pure, no I/O.

/** Reads a NUL-terminated string at `at`; returns it and the offset after its NUL, or null if unterminated before `end`. */
export function readCString(buf: Buffer, at: number, end: number): { value: string; next: number } | null {
  const stop = buf.indexOf(0, at);
  if (stop < 0 || stop >= end) return null;
  return { value: buf.toString('utf8', at, stop), next: stop + 1 };
}

/** Decodes ParameterStatus (header included) into [name, value]. */
export function decodeParameterStatus(buf: Buffer, start: number, end: number): [string, string] | null {
  const name = readCString(buf, start + 5, end);
  if (name === null) return null;
  const value = readCString(buf, name.next, end);
  if (value === null) return null;
  return [name.value, value.value];
}
