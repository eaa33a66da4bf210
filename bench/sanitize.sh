#!/usr/bin/env bash
# The test suite under AddressSanitizer and UndefinedBehaviorSanitizer (GCC), built in
# build-asan/ (docs/reliability.md, "Sanitizers"). Slow: a build of its own (about an hour on 2
# cores the first time; ccache keeps later ones to minutes), then about 12 minutes of tests.
#
#   bench/sanitize.sh                      every test but the fuzz smoke run (fuzzing has its own)
#   bench/sanitize.sh -R "unit|component"  ctest arguments narrow it
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
bash scripts/install-deps.sh
# Every UBSan check aborts except the null-reference check, which is recoverable so that its one
# finding in a third-party header can be suppressed (bench/ubsan.supp); halt_on_error still
# aborts on any null report the suppressions do not name.
flags="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -fsanitize-recover=null"
if [ ! -f build-asan/build.ninja ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="$flags" \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
fi
cmake --build build-asan -j "${PETREL_JOBS:-2}"
# A report fails the test that caused it: the process aborts with the report on stderr.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=${PETREL_DETECT_LEAKS:-1}:halt_on_error=1"
# Tests that measure the glibc allocator (memory given back) skip that part under ASan's own.
export PETREL_SANITIZERS=address,undefined
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$PWD/bench/ubsan.supp"
exec ctest --test-dir build-asan --output-on-failure -j "${PETREL_JOBS:-2}" -E "fuzz: smoke" "$@"
