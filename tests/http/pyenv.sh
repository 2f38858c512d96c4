# tests/http/pyenv.sh — sourced by the HTTP tests: make_pyenv DIR makes (once
# per build directory, under a lock: tests may run side by side) a virtual
# environment with the official openai client and prometheus_client from
# PyPI. Major versions are pinned: the client's error classes and streaming
# API are what the tests exercise.
make_pyenv() {
    local env=$1
    (
        flock 9
        if ! "$env/bin/python" -c "import openai, prometheus_client" 2>/dev/null; then
            python3 -m venv "$env"
            "$env/bin/pip" install -q "openai>=1.40,<4" "prometheus_client>=0.20,<1"
        fi
    ) 9> "$env.lock" || fail "could not install openai and prometheus_client from PyPI"
}
