// Module resolve hook for the tests: the JS client (clients/js/realtime.js)
// imports the bare name "socket.io-client", which Node would look for in
// clients/js/node_modules. The tests resolve it from tests/node_modules
// instead (the browser demo does the same with an import map).
//   import { register } from 'node:module';
//   register('../lib/client_resolve.mjs', import.meta.url);
//   const { RealtimeClient } = await import('../../clients/js/realtime.js');
const TESTS = new URL('../', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'socket.io-client' || specifier.startsWith('socket.io-client/')) {
    return next(specifier, { ...context, parentURL: TESTS });
  }
  return next(specifier, context);
}
