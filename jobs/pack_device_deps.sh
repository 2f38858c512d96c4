#!/usr/bin/env bash
# jobs/pack_device_deps.sh — bundle the Debian dependencies for a GPU node
# that cannot reach a package registry (../shared/device/deps.sh), adding
# what llmpi needs beyond its default list: OpenBLAS's OpenMP build, the
# libraries HDF5 links against (libcurl and its own; the default list already
# has the parallel libhdf5-openmpi-dev that llmpi builds with), and the
# libraries Criterion's libgit2 links against.
# Then, on the node:
#   source .devdeps/deps.sh unpack
#   export LD_LIBRARY_PATH=/opt/llmpi-deps/usr/lib/x86_64-linux-gnu/openblas-openmp:$LD_LIBRARY_PATH
#   OMP_NUM_THREADS=$(nproc) bash jobs/gpu_check.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS=${DEPS_SCRIPT:-$ROOT/../shared/device/deps.sh}
export LLMPI_EXTRA_DEBS="libopenblas0-openmp libopenblas-openmp-dev
 libcurl4 libnghttp2-14 librtmp1 libpsl5 libldap-2.5-0 libbrotli1 libsasl2-2 libzstd1
 libidn2-0 libunistring2 libsasl2-modules-db libdb5.3
 libhttp-parser2.9 libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1
 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 libffi8"
cd "$ROOT"
rm -rf .devdeps
bash "$DEPS" pack
