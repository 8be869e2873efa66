// A Postern policy plugin that has no opinion: DUNNO for every request.
//
// Start here: replace the body of `check`. `build.sh` turns this file into `plugin.wasm` for
// world `policy-plugin`. Host interfaces are imported as `postern:plugin/<name>@0.1.0`, e.g.
//   import { log } from 'postern:plugin/logging@0.1.0';

export const policy = {
  // check: func(request: policy-request) -> result<verdict, plugin-error>
  // Every call runs in a fresh instance: keep no state between calls.
  check(_request) {
    return { decision: { tag: 'dunno' }, actions: [] };
  },
};
