#!/usr/bin/env bash
# Builds policy.js into a component for world `policy-plugin`: $1/policy_js.wasm (default ./build).
# Needs node + npm; the pinned componentize-js and jco come from package-lock.json (npm ci).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/build}" && cd "${1:-$here/build}" && pwd)"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: $tool not found; install Node.js 18 or newer (with npm)" >&2
        exit 127
    fi
done

cd "$here"
if [ ! -x node_modules/.bin/componentize-js ]; then
    # npm ci installs exactly what package-lock.json pins. A registry that lacks some other
    # platforms' optional binaries of jco's dependencies (rolldown, jco-node-fs, componentize-qjs
    # bindings) yields a lock without them, which npm ci rejects as "not in sync"; then
    # `npm install --no-save` installs the same locked versions without rewriting the lock.
    if ! npm ci --no-audit --no-fund --loglevel=error 2>"$out/npm-ci.log"; then
        echo "build.sh: npm ci refused package-lock.json (see $out/npm-ci.log); using npm install --no-save" >&2
        npm install --no-save --no-audit --no-fund --loglevel=error
    fi
fi

# StarlingMonkey (SpiderMonkey) plus policy.js, snapshotted with wizer (~12 MB).
# -d http -d fetch-event: the host does not provide wasi:http, so the engine must not import it.
# componentize-js's own CLI, not `jco componentize`: jco 1.35.0 runs its nested
# componentize-js 0.22.0 instead of the pinned 0.23.0, and its WIT pre-check cannot read the
# --wit directory (preview2-shim 0.26 starts with no preopens: "failed to get path metadata").
node_modules/.bin/componentize-js policy.js \
    --wit ../../wit --world-name policy-plugin \
    -d http -d fetch-event \
    -o "$out/policy_js.wasm" >/dev/null
echo "$out/policy_js.wasm"
