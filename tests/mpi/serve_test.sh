#!/usr/bin/env bash
# tests/mpi/serve_test.sh LLMPI SOURCE_DIR CASE MPIEXEC — `llmpi serve`
# end to end (docs/serving.md). The checkpoint: `tiny` (byte tokenizer)
# trained a few steps on the project's sources. Each CASE is one ctest:
#   greedy    greedy completions of 4 prompts through a pool of 2 replica
#             groups (3 ranks, round-robin), of 2 tensor-parallel groups
#             (R=2 x T=2 on 5 ranks), and through a world of one, in --exact
#             mode and in batched mode: the same text as `llmpi generate` for
#             every prompt; seeded sampling in --exact mode too
#   scenario  every scenario of jobs/agents_scenarios.json on 2 replica
#             groups of 2 tensor-parallel ranks (5 ranks), --turns 3: exit 0, every conversation ends within its
#             limits, the transcript parses (one JSON object per line, the
#             documented fields), requests spread over both groups
#   failover  replica group 1 fails after 5 engine steps, or goes silent
#             (LLMPI_SERVE_FAULT): it is reported down (by its own message, or
#             after --replica-timeout), its requests are served by group 0,
#             every conversation completes, and the transcript holds exactly
#             the messages of a fault-free run (same text per turn: seeds
#             are per request and --exact makes a request's tokens
#             independent of its batch, so the replica does not matter); when the
#             only group fails, the requests fail with a reason, the
#             transcript stays valid and the exit status is non-zero
#   redact    an opening with an e-mail address and a card number: masked in
#             the printed dialogue and the transcript with --redact
#   bad       bad flags and files: one message, every rank exits 1, no hang
source "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh" "$@"
MPIEXEC=$4
export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
cd "$WORK"
mpi() { local np=$1; shift; "$MPIEXEC" -np "$np" --oversubscribe "$LLMPI" "$@"; }
AGENTS=$SRC/jobs/agents_scenarios.json

make_ckpt() {
    cat "$SRC"/src/common/*.c "$SRC"/kernels/cpu/*.c > text.txt
    "$LLMPI" train --model tiny --data text.txt --batch 4 --seq 32 --steps 30 \
        --lr 3e-3 --warmup 3 --log-every 10 --ckpt-dir ck > /dev/null
    CKPT=$(ls ck/ckpt_*.h5 | tail -n 1)
    [ -f "$CKPT" ] || fail "training wrote no checkpoint"
}

# same_as_generate OUT.jsonl OPTS...: each line's text equals llmpi generate's
same_as_generate() {
    local out=$1; shift
    local i=0
    for p in "${PROMPTS[@]}"; do
        "$LLMPI" generate --ckpt "$CKPT" --quiet --prompt "$p" "$@" > "gen$i.txt"
        i=$((i + 1))
    done
    python3 - "$out" "${#PROMPTS[@]}" <<'PY' || fail "$out differs from llmpi generate"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n = int(sys.argv[2])
assert [r["prompt"] for r in rows] == list(range(n)), rows
for r in rows:
    want = open(f"gen{r['prompt']}.txt", encoding="utf-8", errors="surrogateescape").read()
    assert r["text"] == want, f"prompt {r['prompt']}: {r['text']!r} != {want!r}"
    assert r["tokens"] > 0
print(f"  {sys.argv[1]}: {n} prompts equal llmpi generate")
PY
}

PROMPTS=("int main(" "static " "for (int i = 0; " "/* ")
pargs() { for p in "${PROMPTS[@]}"; do printf '%s\0%s\0' --prompt "$p"; done; }

case "$CASE" in
greedy)
    make_ckpt
    mapfile -d '' P < <(pargs)
    g=(--temperature 0 --max-tokens 40)
    mpi 3 serve --ckpt "$CKPT" "${P[@]}" "${g[@]}" --balance round-robin --exact > pool_exact.jsonl
    same_as_generate pool_exact.jsonl "${g[@]}"
    python3 -c "import json,sys; r={json.loads(l)['replica'] for l in open('pool_exact.jsonl')}; sys.exit(r != {0, 1})" ||
        fail "round-robin did not use both replica groups"
    mpi 3 serve --ckpt "$CKPT" "${P[@]}" "${g[@]}" --balance round-robin > pool.jsonl
    same_as_generate pool.jsonl "${g[@]}"
    "$LLMPI" serve --ckpt "$CKPT" "${P[@]}" "${g[@]}" > one.jsonl
    same_as_generate one.jsonl "${g[@]}"
    mpi 5 serve --ckpt "$CKPT" "${P[@]}" "${g[@]}" --tp 2 --balance round-robin > tp.jsonl
    same_as_generate tp.jsonl "${g[@]}"
    mpi 5 serve --ckpt "$CKPT" "${P[@]}" "${g[@]}" --tp 2 --exact > tp_exact.jsonl
    same_as_generate tp_exact.jsonl "${g[@]}"
    s=(--temperature 0.9 --top-k 20 --seed 5 --max-tokens 30)
    mpi 3 serve --ckpt "$CKPT" "${P[@]}" "${s[@]}" --exact > sampled.jsonl
    same_as_generate sampled.jsonl "${s[@]}"
    ;;
scenario)
    make_ckpt
    mpi 5 serve --ckpt "$CKPT" --agents "$AGENTS" --scenario all --turns 3 --tp 2 \
        --transcript tr.jsonl > dialogue.txt 2> err.txt || { cat err.txt; fail "serve failed"; }
    cat dialogue.txt err.txt
    python3 - <<'PY' || fail "bad transcript"
import json
rows = [json.loads(l) for l in open("tr.jsonl")]
assert rows, "empty transcript"
for r in rows:
    for k in ("conv", "scenario", "turn", "who", "role", "when", "text", "tokens",
              "replica", "latency_ms"):
        assert k in r, (k, r)
agents = {}
for r in rows:
    if r["role"] == "agent":
        agents.setdefault(r["conv"], 0)
        agents[r["conv"]] += 1
        assert r["replica"] in (0, 1) and r["latency_ms"] > 0, r
assert all(n <= 3 for n in agents.values()), agents
print(f"  {len(rows)} transcript lines, agent turns per conversation {agents}")
PY
    grep -q "requests per replica group" err.txt || fail "no summary"
    [ "$(grep -c 'ended:' err.txt)" -ge 3 ] || fail "expected every conversation to end"
    ;;
failover)
    make_ckpt
    # --exact: a request's tokens must not depend on what it is batched with
    # (a request moved to another group is batched differently, and batched
    # products round differently from single ones: sgemv vs sgemm)
    run=(serve --ckpt "$CKPT" --agents "$AGENTS" --scenario all --turns 4 --replica-timeout 2
         --exact)
    mpi 3 "${run[@]}" --transcript ok.jsonl > /dev/null 2> ok.err || { cat ok.err; fail "fault-free run"; }
    # the only replica group fails: every conversation ends with an error,
    # the transcript keeps what was written, exit 1 (not a hang)
    rc=0
    LLMPI_SERVE_FAULT=0:fail:3 "$MPIEXEC" -np 2 --oversubscribe -x LLMPI_SERVE_FAULT "$LLMPI" \
        "${run[@]}" --transcript lost.jsonl > /dev/null 2> lost.err || rc=$?
    cat lost.err
    [ $rc -ne 0 ] || fail "no replica left must end non-zero"
    grep -q "replica group 0 is down" lost.err || fail "replica 0 not reported down"
    grep -q "no replica group is up" lost.err || fail "the requests did not fail with a reason"
    python3 -c "import json; [json.loads(l) for l in open('lost.jsonl')]" || fail "transcript damaged"
    for f in fail hang; do
        t0=$(date +%s)
        LLMPI_SERVE_FAULT=1:$f:5 "$MPIEXEC" -np 3 --oversubscribe -x LLMPI_SERVE_FAULT "$LLMPI" \
            "${run[@]}" --transcript $f.jsonl > /dev/null 2> $f.err || { cat $f.err; fail "$f: serve failed"; }
        cat $f.err
        grep -q "replica group 1 is down" $f.err || fail "$f: replica 1 not reported down"
        [ $(( $(date +%s) - t0 )) -lt 30 ] || fail "$f: took too long"
        python3 - ok.jsonl $f.jsonl <<'PY' || fail "$f: the transcript differs from the fault-free run"
import json, sys
def key(path):
    return sorted((r["conv"], r["turn"], r["who"], r["text"]) for r in map(json.loads, open(path)))
a, b = key(sys.argv[1]), key(sys.argv[2])
assert a == b, (len(a), len(b))
print(f"  {sys.argv[2]}: {len(b)} messages, the same as without the fault")
PY
    done
    ;;
redact)
    make_ckpt
    o="Please refund jane.doe@example.com, card 4111 1111 1111 1111, now."
    mpi 2 serve --ckpt "$CKPT" --agents "$AGENTS" --scenario assistant --turns 1 \
        --opening "$o" --redact --transcript tr.jsonl > dialogue.txt
    cat dialogue.txt
    if grep -q "jane.doe@example.com\|4111 1111" dialogue.txt tr.jsonl; then
        fail "personal data reached the dialogue or the transcript"
    fi
    grep -q "\[EMAIL\]" tr.jsonl && grep -q "\[CARD\]" tr.jsonl || fail "no redaction tags"
    ;;
bad)
    make_ckpt
    t0=$(date +%s)
    expect_error "^llmpi serve: rank 0: error: unknown option '--bogus'" \
        mpi 3 serve --ckpt "$CKPT" --prompt x --bogus
    [ "$(grep -c 'error:' "$WORK/out.txt")" -eq 1 ] || fail "expected one error message"
    expect_error "error: --scenario needs --agents FILE" "$LLMPI" serve --ckpt "$CKPT" --scenario x
    expect_error "error: nothing to serve" "$LLMPI" serve --ckpt "$CKPT"
    expect_error "error: .*missing.h5" mpi 3 serve --ckpt missing.h5 --prompt x
    expect_error "error: .*no-such-scenario" \
        mpi 3 serve --ckpt "$CKPT" --agents "$AGENTS" --scenario no-such-scenario
    echo '{"agents": [{"name": "a", "persona": "p", "colour": "red"}]}' > bad_agents.json
    expect_error "error: .*bad_agents.json.*colour" \
        mpi 2 serve --ckpt "$CKPT" --agents bad_agents.json --scenario x
    expect_error "rank 0: error: 4 ranks: the coordinator plus replica groups of --tp 2" \
        mpi 4 serve --ckpt "$CKPT" --prompt x --tp 2
    expect_error "error: tp: --tp 3 does not divide the heads" \
        mpi 4 serve --ckpt "$CKPT" --prompt x --tp 3
    expect_error "error: --tp 2 needs replica groups" "$LLMPI" serve --ckpt "$CKPT" --prompt x --tp 2
    expect_error "error: --balance 'fastest'|error: .*fastest" \
        mpi 3 serve --ckpt "$CKPT" --prompt x --balance fastest
    # a prompt the KV pool can never hold fails alone; the others complete
    # (tiny: 8 KiB per 16-position block, so 0.01 MiB holds one block)
    rc=0
    "$LLMPI" serve --ckpt "$CKPT" --prompt "a prompt of some forty bytes, far too long" \
        --prompt "int" --max-tokens 5 --kv-cache-mb 0.01 --temperature 0 > small.jsonl \
        2> small.err || rc=$?
    cat small.jsonl small.err
    [ $rc -eq 1 ] || fail "a failed prompt must make the exit status 1 (got $rc)"
    grep -q "error: 1 of 2 prompts failed" small.err || fail "no failure summary"
    python3 - <<'PY' || fail "expected the long prompt refused and the short one served"
import json
a, b = [json.loads(l) for l in open("small.jsonl")]
assert a["finish"] == "error" and "whole KV pool" in a["text"], a
assert b["finish"] == "max_tokens" and b["tokens"] == 5, b
PY
    el=$(( $(date +%s) - t0 ))
    [ $el -lt 60 ] || fail "the failure cases took ${el} s"
    ;;
*) fail "unknown case $CASE" ;;
esac
echo ok
