// Decodes the first packet a client sends: StartupMessage, SSLRequest, GSSENCRequest or
// CancelRequest. These have a length but no type byte. Pure, no I/O.

import { RequestCode } from './codes.ts';

export type StartupPacket =
  | { kind: 'startup'; major: number; minor: number; params: Map<string, string> }
  | { kind: 'ssl' }
  | { kind: 'gssenc' }
  | { kind: 'cancel'; pid: number; secret: number }
  | { kind: 'invalid'; reason: string };

/** Decodes a whole startup-phase packet (its 4-byte length included). */
export function decodeStartupPacket(pkt: Buffer): StartupPacket {
  if (pkt.length < 8) return { kind: 'invalid', reason: 'invalid length of startup packet' };
  const code = pkt.readInt32BE(4);
  if (code === RequestCode.SSLRequest) return { kind: 'ssl' };
  if (code === RequestCode.GSSENCRequest) return { kind: 'gssenc' };
  if (code === RequestCode.CancelRequest) {
    if (pkt.length !== 16) return { kind: 'invalid', reason: 'invalid length of cancel request packet' };
    return { kind: 'cancel', pid: pkt.readInt32BE(8), secret: pkt.readInt32BE(12) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  const params = new Map<string, string>();
  if (major !== 3) return { kind: 'startup', major, minor, params };
  // name\0value\0 ... \0
  let at = 8;
  const end = pkt.length;
  for (;;) {
    if (at >= end) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
    if (pkt[at] === 0) {
      if (at !== end - 1) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
      break;
    }
    const nameEnd = pkt.indexOf(0, at);
    if (nameEnd < 0 || nameEnd >= end - 1) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
    const valEnd = pkt.indexOf(0, nameEnd + 1);
    if (valEnd < 0) return { kind: 'invalid', reason: 'invalid startup packet layout: expected terminator as last byte' };
    params.set(pkt.toString('utf8', at, nameEnd), pkt.toString('utf8', nameEnd + 1, valEnd));
    at = valEnd + 1;
  }
  return { kind: 'startup', major, minor, params };
}
