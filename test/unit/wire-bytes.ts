// Backend protocol messages as bytes, for the tests that feed reply streams below the socket.

/** A message: type byte, Int32 length, body. */
export function msg(type: string, body: Buffer | string = Buffer.alloc(0)): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const h = Buffer.alloc(5);
  h[0] = type.charCodeAt(0);
  h.writeInt32BE(4 + b.length, 1);
  return Buffer.concat([h, b]);
}
