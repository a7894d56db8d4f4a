// Decodes the fields of an ErrorResponse or NoticeResponse (type byte, then code+string pairs).

/** Field codes of ErrorResponse/NoticeResponse that pgrouter reads. */
export interface ErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  /** The server's routine that raised it (field R; not translated, unlike the message). */
  routine?: string;
}

/** Decodes an ErrorResponse/NoticeResponse message at `buf[start, end)` (header included). */
export function decodeErrorFields(buf: Buffer, start: number, end: number): ErrorFields {
  const out: ErrorFields = { severity: '', code: '', message: '' };
  let at = start + 5;
  while (at < end && buf[at] !== 0) {
    const field = buf[at]!;
    const stop = buf.indexOf(0, at + 1);
    if (stop < 0 || stop >= end) break;
    const value = buf.toString('utf8', at + 1, stop);
    if (field === 0x56 /* V */ || (field === 0x53 /* S */ && out.severity === '')) out.severity = value;
    else if (field === 0x43 /* C */) out.code = value;
    else if (field === 0x4d /* M */) out.message = value;
    else if (field === 0x44 /* D */) out.detail = value;
    else if (field === 0x52 /* R */) out.routine = value;
    at = stop + 1;
  }
  return out;
}
