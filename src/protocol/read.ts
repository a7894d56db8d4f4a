// Small readers for message bodies: NUL-terminated strings, the name/value pair of a
// ParameterStatus and the text values of a DataRow. Pure, no I/O.

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

/** Decodes a DataRow (header included) into its values as text, null for SQL NULL. */
export function decodeDataRow(buf: Buffer, start: number, end: number): (string | null)[] {
  const n = buf.readInt16BE(start + 5);
  const out: (string | null)[] = [];
  let at = start + 7;
  for (let i = 0; i < n && at + 4 <= end; i++) {
    const len = buf.readInt32BE(at);
    at += 4;
    if (len < 0) out.push(null);
    else {
      out.push(buf.toString('utf8', at, at + len));
      at += len;
    }
  }
  return out;
}
