#!/usr/bin/env bash
# Make sure the services the integration tests use are up; tests that need one that is
# still missing skip themselves and say why.
set -uo pipefail
redis_up() { python3 -c 'import socket; socket.create_connection(("127.0.0.1", 6379), 1).close()' 2>/dev/null; }
if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting redis-server on 127.0.0.1:6379"
    mkdir -p /tmp/snowplow-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/snowplow-redis --logfile /tmp/snowplow-redis/redis.log || true
    for _ in $(seq 1 50); do redis_up && break; sleep 0.1; done
  fi
  redis_up || echo "services: no Redis on 127.0.0.1:6379; Redis tests will be skipped"
fi
# The browser tests drive the system Chromium (Debian package); install it when missing and
# allowed to (root, as in CI). Quick when it is already there.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "services: installing chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "services: could not install chromium; browser tests will be skipped"
fi
# The browser tests also run Snowplow's own JavaScript tracker, installed from the npm registry
# into test-artifacts/ (never committed) when npm is there; without it that test is skipped.
tracker_dir="$(dirname "$0")/../test-artifacts/js"
if [ ! -f "$tracker_dir/node_modules/@snowplow/browser-tracker/dist/index.umd.min.js" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "services: installing @snowplow/browser-tracker from npm for the browser tests"
    mkdir -p "$tracker_dir"
    (cd "$tracker_dir" && npm install --no-save --no-audit --no-fund --no-package-lock \
      --silent @snowplow/browser-tracker@4.10.1 >/dev/null 2>&1) \
      || echo "services: could not install @snowplow/browser-tracker; its browser test will be skipped"
  else
    echo "services: no npm; the browser test with Snowplow's JavaScript tracker will be skipped"
  fi
fi
# The HTTP interop tests put nginx (Debian package) in front of our collector; they start it
# themselves, on a free loopback port. Install it when missing and allowed to, as chromium.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && [ "$(id -u)" = 0 ] \
  && command -v apt-get >/dev/null 2>&1; then
  echo "services: installing nginx for the HTTP interop tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq \
    --no-install-recommends nginx >/dev/null) \
    || echo "services: could not install nginx; nginx interop tests will be skipped"
fi
exit 0
