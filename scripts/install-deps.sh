#!/usr/bin/env bash
# Installs the Debian 12 packages Petrel needs to build, run and test. Idempotent: it asks
# apt only for what is missing, so a second run costs a dpkg query and nothing else.
set -euo pipefail

# Build and runtime libraries.
build_packages=(
  build-essential cmake ninja-build ccache pkg-config
  libcaf-dev                      # actor framework (0.17.6; cmake/FindCAF.cmake finds it)
  libboost1.81-dev libboost-json1.81-dev   # Beast/Asio (headers), Boost.JSON
  libssl-dev libpq-dev libc-ares-dev libspdlog-dev libsqlite3-dev
  libtomlplusplus-dev             # configuration files
  libgmime-3.0-dev                # RFC 5322/MIME building and parsing
  libidn2-dev                     # IDNA (U-label -> A-label) for recipient domains
  catch2                          # Catch2 v2 unit tests
  libopendkim-dev                 # an independent DKIM verifier for the tests (tests/tools)
)
# What the test suite and benchmarks drive the real binary with.
test_packages=(
  python3 python3-requests python3-pytest curl
  python3-dnslib openssl        # the scripted DNS server; self-signed certificates for STARTTLS
  postgresql-15 postgresql-client-15   # the PostgreSQL store's tests run a private cluster
  python3-dkim python3-nacl     # dkimpy verifies delivered signatures (nacl: Ed25519)
  python3-cryptography          # certificates with chosen dates and names (expired, wrong name)
  gdb                           # thread stacks of a node that does not stop (test reports)
  e2fsprogs                     # a small ext4 file system that goes read-only (tests/system/test_read_only.py)
  python3-jsonschema            # events are checked against docs/schemas/event.schema.json
  python3-yaml                  # answers are checked against docs/openapi.yaml
  python3-prometheus-client     # /metrics is read with the Prometheus text-format parser
  unbound ldnsutils             # DANE tests: a DNSSEC-validating resolver over locally signed zones
  swaks libnet-ssleay-perl libauthen-sasl-perl   # the SMTP submission listener is driven with swaks too (TLS, AUTH)
  chromium chromium-driver python3-selenium       # the web console is tested in a headless browser
  clang-14 libclang-rt-14-dev   # libFuzzer with ASan and UBSan: bench/fuzz.sh (a smoke run is a test)
)

# What the benchmarks in bench/ use on top.
bench_packages=(
  wrk sqlite3
  postfix python3-dnslib          # bench/delivery.sh: smtp-sink/smtp-source, a reference MTA, test DNS
)

want=("${build_packages[@]}")
case "${1:-}" in
  --build-only) ;;
  --bench) want+=("${test_packages[@]}" "${bench_packages[@]}") ;;
  *) want+=("${test_packages[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
updated=0
apt_install() {
  echo "install-deps: installing $*" >&2
  if [ "$updated" -eq 0 ]; then
    "${sudo_cmd[@]}" apt-get update -qq
    updated=1
  fi
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ${#missing[@]} -gt 0 ]; then
  # postfix asks how to configure the system MTA; "No configuration" installs the programs only
  # and leaves no main.cf, so no system postfix starts listening on port 25.
  if [[ " ${missing[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" |
      "${sudo_cmd[@]}" debconf-set-selections
  fi
  apt_install "${missing[@]}"
fi

# The OpenAPI linter (scripts/openapi/lint.sh, a test): @redocly/cli from npm, pinned by
# scripts/openapi/package-lock.json. It needs Node >= 20.19; with Debian 12's own nodejs (18)
# the last release that runs there is installed instead.
if [ "${1:-}" != "--build-only" ]; then
  openapi_dir="$(cd "$(dirname "$0")" && pwd)/openapi"
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if [ ! -x "$openapi_dir/node_modules/.bin/redocly" ]; then
    if [ "$node_major" -ge 20 ]; then
      (cd "$openapi_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    else
      (cd "$openapi_dir" && npm install --no-save --no-audit --no-fund --loglevel=error @redocly/cli@1.34.20 >/dev/null)
    fi
  fi
  # axe-core for the console's accessibility checks (tests/system/test_console.py), pinned by
  # app/console/package-lock.json. The console itself needs no JavaScript package.
  console_dir="$(cd "$(dirname "$0")/../app/console" && pwd)"
  if [ ! -f "$console_dir/node_modules/axe-core/axe.min.js" ]; then
    (cd "$console_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
