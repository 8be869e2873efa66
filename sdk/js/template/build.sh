#!/usr/bin/env bash
# Builds plugin.js into a Postern plugin component: $1/plugin.wasm (default ./build).
#   WORLD=policy-plugin (default) | lookup-plugin | filter-plugin — the role the plugin exports
#   POSTERN_WIT=<dir>   Postern's wit/ directory (default: ./wit, else the repository's wit/)
# Needs node + npm; the pinned componentize-js and jco come from package-lock.json (npm ci).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$(mkdir -p "${1:-$here/build}" && cd "${1:-$here/build}" && pwd)"
world="${WORLD:-policy-plugin}"
if [ -n "${POSTERN_WIT:-}" ]; then
    wit="$POSTERN_WIT"
elif [ -d "$here/wit" ]; then
    wit="$here/wit"
else
    wit="$here/../../../wit"
fi
if [ ! -f "$wit/worlds.wit" ]; then
    echo "build.sh: no Postern WIT in $wit; copy Postern's wit/ next to build.sh or set POSTERN_WIT" >&2
    exit 2
fi
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
# -d http -d fetch-event: Postern does not provide wasi:http; a component importing it won't load.
node_modules/.bin/componentize-js plugin.js \
    --wit "$wit" --world-name "$world" \
    -d http -d fetch-event \
    -o "$out/plugin.wasm" >/dev/null
echo "$out/plugin.wasm"
