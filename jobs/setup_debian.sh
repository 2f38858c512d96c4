#!/usr/bin/env bash
# jobs/setup_debian.sh — install what llmpi builds, tests and trains with on
# Debian 12 (run as root, or with sudo available). Idempotent.
#   build:  cmake, a C compiler, pkg-config, OpenMP (libgomp, with gcc)
#   BLAS:   libopenblas-openmp-dev (the OpenMP build: inside our own parallel
#           regions it runs single-threaded instead of oversubscribing cores)
#   tests:  libcriterion-dev, python3 (JSON checks in the CLI tests),
#           python3-venv (the HTTP tests install the openai client from PyPI)
#   libs:   libpcre2-dev (tokenizer regex), libcjson-dev (JSON), libyaml-dev
#           (YAML agents files), libmicrohttpd-dev (the HTTP API),
#           libhdf5-openmpi-dev (HDF5's parallel MPI-IO build: every rank writes
#           and reads its own hyperslabs of a checkpoint; CMake refuses a
#           serial HDF5) + hdf5-tools (h5dump, h5diff)
#   data:   fortunes, fortunes-min, fortunes-zh (the embedded default corpus)
#   MPI:    libopenmpi-dev + openmpi-bin (Open MPI: the DP x TP grid and its
#           collectives; mpirun runs the multi-rank tests)
#   Slurm:  slurm-wlm + munge (the tests start a one-node Slurm and submit
#           jobs/*.sbatch to it: tests/slurm/)
#   plots:  python3-matplotlib (bench/plot.py draws the benchmark sweeps)
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
packages=(build-essential cmake pkg-config libopenblas-openmp-dev libcriterion-dev
          libpcre2-dev libcjson-dev libyaml-dev libmicrohttpd-dev libhdf5-openmpi-dev hdf5-tools libopenmpi-dev openmpi-bin
          python3 python3-venv python3-matplotlib slurm-wlm munge
          fortunes fortunes-min fortunes-zh)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi
echo "setup: dependencies present"
