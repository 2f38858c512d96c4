#!/usr/bin/env bash
# tests/http/http_api_test.sh LLMPI SOURCE_DIR CASE MPIEXEC PYENV — the HTTP
# API (docs/api.md) through the official `openai` Python client, unchanged:
# trains a `tiny` checkpoint, makes (once, in PYENV) a virtual environment
# with openai and prometheus_client from PyPI, and runs one CASE of
# tests/http/http_api_test.py (client, limits, conversations, mpi).
# CASE bad (no Python): bad --http addresses, a port in use, bad or missing
# key files, flags that need --http; one message, exit 1, also under mpirun.
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
PYENV=$5
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
source "$SRC/tests/http/pyenv.sh"
make_pyenv "$PYENV"
cd "$WORK"
if [ "$CASE" = bad ]; then
    cat "$SRC"/src/common/*.c > text.txt
    "$LLMPI" train --model tiny --data text.txt --batch 2 --seq 16 --steps 2 --ckpt-dir ck > /dev/null
    CKPT=$(ls ck/ckpt_*.h5 | tail -n 1)
    serve() { timeout 60 "$LLMPI" serve --ckpt "$CKPT" "$@"; }
    expect_error "expected HOST:PORT" serve --http 127.0.0.1:http
    expect_error "expected HOST:PORT" serve --http 127.0.0.1:70000
    expect_error "not a numeric IPv4 or IPv6 address" serve --http localhost:0
    expect_error "--api-keys needs --http" serve --prompt x --api-keys keys.txt
    expect_error "missing-keys.txt" serve --http :0 --api-keys missing-keys.txt
    printf 'ops sk-llmpi-0123456789abcdef *\nbad zzKEYzz *\n' > keys.txt
    expect_error "keys.txt:2:" serve --http :0 --api-keys keys.txt
    grep -q zzKEYzz out.txt && fail "a key appeared in an error message"
    expect_error "also an agent's name" serve --http :0 --agents "$SRC/jobs/agents_scenarios.json" \
        --model-name Brom
    # a port in use: hold one with a server, start another on it
    "$LLMPI" serve --ckpt "$CKPT" --http 127.0.0.1:0 2> first.log &
    pid=$!
    for _ in $(seq 100); do grep -q listening first.log && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' first.log)
    [ -n "$port" ] || fail "the first server did not start"
    expect_error "cannot listen there: Address already in use" serve --http "127.0.0.1:$port"
    kill -TERM $pid
    wait $pid || fail "the first server did not exit 0 on SIGTERM"
    # under mpirun: the coordinator's error ends every rank, promptly
    start=$(date +%s)
    expect_error "keys.txt:2:" timeout 60 "$MPIEXEC" -np 3 --oversubscribe "$LLMPI" serve \
        --ckpt "$CKPT" --http :0 --api-keys keys.txt
    [ $(( $(date +%s) - start )) -lt 30 ] || fail "the job took 30 s or more to end"
    echo "bad: ok"
    exit 0
fi
cat "$SRC"/src/common/*.c "$SRC"/kernels/cpu/*.c > text.txt
"$LLMPI" train --model tiny --context 256 --data text.txt --batch 4 --seq 32 --steps 30 \
    --lr 3e-3 --warmup 3 --log-every 10 --ckpt-dir ck > /dev/null
CKPT=$(ls ck/ckpt_*.h5 | tail -n 1)
"$PYENV/bin/python" "$SRC/tests/http/http_api_test.py" "$CASE" --llmpi "$LLMPI" \
    --ckpt "$CKPT" --agents "$SRC/jobs/agents_scenarios.json" --work "$WORK" \
    --mpiexec "$MPIEXEC"
