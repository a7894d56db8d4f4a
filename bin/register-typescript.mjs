// Registers bin/typescript-hooks.mjs on Node's module loader, so that the `.ts` files of this
// package can be imported; returns the function to call once they are all loaded (it lets the
// hooks stop esbuild's service process).
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';

/** Registers the hooks and turns on source maps (stack traces name .ts files and lines). */
export function registerTypeScript() {
  const { port1, port2 } = new MessageChannel();
  register('./typescript-hooks.mjs', import.meta.url, { data: { loaded: port2 }, transferList: [port2] });
  process.setSourceMapsEnabled(true);
  return function modulesLoaded() {
    port1.postMessage('loaded');
    port1.close();
  };
}
