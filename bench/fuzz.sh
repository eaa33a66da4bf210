#!/usr/bin/env bash
# libFuzzer targets for every parser of outside input (tests/fuzz/, docs/reliability.md), built
# with Debian's clang-14 with AddressSanitizer and UndefinedBehaviorSanitizer, and run.
#
#   bench/fuzz.sh build                 build every target into build-fuzz/
#   bench/fuzz.sh run [seconds] [jobs]  run each target for `seconds` (default 600) with `jobs`
#                                       processes (default 2); corpora in build-fuzz/corpus/<target>
#                                       are kept between runs, seeded from tests/data
#   bench/fuzz.sh smoke [seconds]       build, then a short bounded run of each (default 20 s):
#                                       what the test suite does (ctest "fuzz: smoke")
#   bench/fuzz.sh <target> [seconds]    one target
#
# A crash leaves its input in build-fuzz/crashes/<target>/; keep it as a regression input in
# tests/data/fuzz/<target>/ once fixed (the runs replay that folder first).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="${PETREL_FUZZ_DIR:-$root/build-fuzz}"
cxx="${CXX_FUZZ:-clang++-14}"
mkdir -p "$out"

# Relative paths (the script works from the repository's root), so that ccache finds the objects
# of another checkout too.
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I. -DPETREL_SOURCE_DIR="\".\"" -DBOOST_ERROR_CODE_HEADER_ONLY)
export CCACHE_NOHASHDIR=1
mail_sources=(net/mail/*.cpp net/template/mustache.cpp storage/ids.cpp storage/records.cpp config/config_loader.cpp
              config/units.cpp config/bounce_rules.cpp)
mail_libs=($(pkg-config --cflags --libs gmime-3.0 libidn2 tomlplusplus) -lboost_json -lcrypto)

targets=(bounce tracking mustache smtp_reply smtp_command submission config dns http webhook_url)

sources_of() {
  case "$1" in
    bounce) echo "${mail_sources[*]}" ;;
    tracking) echo "net/mail/tracking.cpp net/mail/sha256.cpp" ;;
    mustache) echo "net/template/mustache.cpp" ;;
    smtp_reply) echo "net/smtp_reply.cpp" ;;
    smtp_command) echo "net/smtp_command.cpp net/mail/base64.cpp" ;;
    webhook_url) echo "net/webhook_url.cpp net/ip_policy.cpp" ;;
    submission) echo "app/submission_request.cpp net/json_input.cpp ${mail_sources[*]}" ;;
    config) echo "config/config_loader.cpp config/units.cpp config/bounce_rules.cpp" ;;
    dns) echo "net/dns_client.cpp net/mx.cpp" ;;
    http) echo "net/json_input.cpp" ;;
  esac
}

libs_of() {
  case "$1" in
    bounce | submission) echo "${mail_libs[*]}" ;;
    mustache | http) echo "-lboost_json" ;;
    config) echo "$(pkg-config --cflags --libs tomlplusplus)" ;;
    dns) echo "-lcares -lpthread" ;;
    *) echo "-lcrypto" ;;
  esac
}

# Seed inputs: real data for each parser.
seeds_of() {
  case "$1" in
    bounce) echo "tests/data/bounces tests/data/not-bounces tests/data/charsets" ;;
    submission | http) echo "tests/data/fuzz/submission" ;;
    smtp_command) echo "tests/data/fuzz/smtp_command" ;;
    webhook_url) echo "tests/data/fuzz/webhook_url" ;;
    config) echo "config" ;;
    mustache) echo "tests/data/mustache-spec" ;;
    *) echo "" ;;
  esac
}

# Objects are shared by the targets (the same flags), compiled once each (with ccache when there
# is one), two at a time.
compile_objects() {
  local launcher=()
  command -v ccache >/dev/null && launcher=(ccache)
  # shellcheck disable=SC2207
  local cflags=($(pkg-config --cflags gmime-3.0 libidn2 tomlplusplus))
  local par="${FUZZ_BUILD_JOBS:-2}" running=0 failed=0
  for src in "$@"; do
    local obj="$out/obj/${src%.cpp}.o"
    if [[ -f "$obj" && ! "$src" -nt "$obj" && -z "$(find net config storage app -name '*.hpp' -newer "$obj" 2>/dev/null | head -1)" ]]; then
      continue
    fi
    mkdir -p "$(dirname "$obj")"
    "${launcher[@]}" "$cxx" "${flags[@]}" "${cflags[@]}" -c "$src" -o "$obj" &
    running=$((running + 1))
    if ((running >= par)); then
      wait -n || failed=1
      running=$((running - 1))
    fi
  done
  while ((running > 0)); do
    wait -n || failed=1
    running=$((running - 1))
  done
  return $failed
}

build_one() {
  local t="$1"
  local bin="$out/fuzz_$t"
  # shellcheck disable=SC2207
  local sources=("tests/fuzz/fuzz_$t.cpp" $(sources_of "$t"))
  compile_objects "${sources[@]}"
  local objects=()
  for src in "${sources[@]}"; do objects+=("$out/obj/${src%.cpp}.o"); done
  if [[ -x "$bin" ]] && [[ -z "$(find "${objects[@]}" -newer "$bin" 2>/dev/null | head -1)" ]]; then return; fi
  echo "linking fuzz_$t"
  # shellcheck disable=SC2046
  "$cxx" "${flags[@]}" "${objects[@]}" $(libs_of "$t") -o "$bin"
}

run_one() {
  local t="$1" seconds="$2" jobs="${3:-1}"
  local corpus="$out/corpus/$t" crashes="$out/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  local seeds=()
  for d in tests/data/fuzz/$t $(seeds_of "$t"); do [[ -d "$d" ]] && seeds+=("$d"); done
  echo "== fuzz_$t: ${seconds}s, ${jobs} job(s)"
  local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=200000
              -artifact_prefix="$crashes/" -print_final_stats=1)
  if [[ "$jobs" -gt 1 ]]; then args+=(-fork="$jobs" -ignore_crashes=0); fi
  "$out/fuzz_$t" "${args[@]}" "$corpus" "${seeds[@]}" 2>"$out/$t.log" || {
    echo "fuzz_$t FAILED: see $out/$t.log and $crashes/"
    tail -40 "$out/$t.log"
    return 1
  }
  grep -E "stat::number_of_executed_units|cov:" "$out/$t.log" | tail -2 || true
}

case "${1:-smoke}" in
  build)
    for t in "${targets[@]}"; do build_one "$t"; done ;;
  run)
    for t in "${targets[@]}"; do build_one "$t"; done
    for t in "${targets[@]}"; do run_one "$t" "${2:-600}" "${3:-2}"; done ;;
  smoke)
    for t in "${targets[@]}"; do build_one "$t"; done
    failed=0
    for t in "${targets[@]}"; do run_one "$t" "${2:-20}" 1 || failed=1; done
    exit $failed ;;
  *)
    build_one "$1"
    run_one "$1" "${2:-600}" "${3:-1}" ;;
esac
