"""tests/http/http_api_test.py — `llmpi serve --http` through the official
`openai` Python client, unchanged, and through plain HTTP where the client
has no call for it (docs/api.md). Run by tests/http/http_api_test.sh, which
makes the checkpoint and the Python environment:

    python http_api_test.py CASE --llmpi BIN --ckpt FILE --agents FILE --work DIR
                            [--mpiexec MPIEXEC]

Cases:
  client        chat completion, streamed chat completion, completion, model
                list; greedy text equal to `llmpi generate` on the same prompt
                (the reference), streamed text equal to the whole answer;
                errors as the client sees them: 401 (no key, wrong key), 403
                (key not allowed for the agent), 404 (unknown model), 400
                (max_tokens over the limit, prompt past the context, bad
                body), 413 (body too large); no key in the server's log
  limits        a slow replica (--step-delay): 429 with Retry-After when the
                queue is full, 504 past --http-timeout, a client that
                disconnects mid-stream has its generation cancelled and its KV
                blocks freed (health and metrics say so); /metrics parsed by
                prometheus_client, every count equal to what was sent
  conversations a router conversation opened, fed and read over HTTP (long
                poll), a message to the broadcast scenario's topic answered by
                every subscriber, closing, and the errors (404, 403, 409)
  redact        --redact: a model trained to say an e-mail address says
                "[EMAIL]" through the API, whole and streamed (whole lines),
                and a message posted into a conversation reads back masked
  mpi           the same server under mpirun with 2 replica groups: completions
                equal `llmpi generate`, a cancel travels to the replica and
                frees its blocks, SIGTERM to mpirun ends every rank with 0
"""
import argparse
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai

KEYS = {
    "ops": "sk-llmpi-ops-0123456789abcdef0123",
    "game": "sk-llmpi-game-fedcba9876543210fedc",
}


RUNNING = []  # servers to kill if the test ends early (a failed check, an exception)


@atexit.register
def _kill_leftovers():
    for p in RUNNING:
        if p.poll() is None:
            p.terminate()  # mpirun passes SIGTERM on to its ranks; SIGKILL would orphan them
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Server:
    """A `llmpi serve --http 127.0.0.1:0` process (or an mpirun of one)."""

    def __init__(self, args, extra, name, np=None):
        self.log = os.path.join(args.work, f"{name}.log")
        self.out = os.path.join(args.work, f"{name}.out")
        cmd = [args.llmpi, "serve", "--ckpt", args.ckpt, "--http", "127.0.0.1:0"] + extra
        if np:
            cmd = [args.mpiexec, "-np", str(np), "--oversubscribe"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=open(self.out, "w"), stderr=open(self.log, "w"))
        RUNNING.append(self.proc)
        deadline = time.time() + 60
        self.port = None
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+) .*pid (\d+)\)",
                          open(self.log).read())
            if m:
                self.port, self.coordinator_pid = int(m.group(1)), int(m.group(2))
            elif self.proc.poll() is not None:
                fail(f"{name}: the server exited with {self.proc.returncode}:\n"
                     + open(self.log).read())
            else:
                time.sleep(0.05)
        check(self.port, f"{name}: no 'listening on' line within 60 s")
        self.base = f"http://127.0.0.1:{self.port}"

    def client(self, key=None, **kw):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=key or "none",
                             max_retries=0, timeout=60, **kw)

    def get(self, path, key=None):
        return http("GET", self.base + path, key=key)

    def stop(self, sig=signal.SIGTERM, within=20, coordinator=False):
        """Signal the server (coordinator: the coordinator rank itself, as
        srun or scancel would; else the process started, mpirun included)."""
        if coordinator:
            os.kill(self.coordinator_pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail(f"the server did not stop within {within} s of {sig.name}")
        log = open(self.log).read()
        check(rc == 0, f"the server exited with {rc} after {sig.name}:\n{log}")
        return log


def http(method, url, body=None, key=None, raw=None, headers=None):
    """(status, headers, parsed JSON or text) of one plain request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(headers or {})
    if data is not None:
        h["Content-Type"] = "application/json"
    if key:
        h["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, text = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, text = e.code, e.headers, e.read().decode()
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def sanitize(b):
    """The server's rule (src/infer/utf8.c): every byte that does not start
    a valid UTF-8 sequence, and NUL, becomes U+FFFD."""
    out, i = [], 0
    while i < len(b):
        c = b[i]
        k = 1 if c < 0x80 else 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else \
            4 if 0xF0 <= c <= 0xF4 else 0
        ok = c != 0 and k and i + k <= len(b)
        if ok and k > 1:
            try:
                b[i:i + k].decode("utf-8")
            except UnicodeDecodeError:
                ok = False
        if ok:
            out.append(b[i:i + k].decode("utf-8"))
            i += k
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def generate(args, prompt, max_tokens, stop=None):
    cmd = [args.llmpi, "generate", "--ckpt", args.ckpt, "--quiet", "--temperature", "0",
           "--max-tokens", str(max_tokens), "--prompt", prompt]
    if stop:
        cmd += ["--stop", stop]
    return sanitize(subprocess.run(cmd, check=True, capture_output=True).stdout)


def expect_status(exc_type, status, fn, what, param=None):
    try:
        fn()
    except exc_type as e:
        check(e.status_code == status, f"{what}: status {e.status_code}, expected {status}")
        body = e.body if isinstance(e.body, dict) else {}
        err = body.get("error", body)
        check(isinstance(err, dict) and err.get("message"), f"{what}: no error message: {e.body}")
        if param:
            check(err.get("param") == param, f"{what}: param {err.get('param')!r}, expected {param!r}")
        print(f"  {what}: {status} {err.get('message')}")
        return e
    fail(f"{what}: no error raised")


# ---------------------------------------------------------------------------

def case_client(args):
    keys_file = os.path.join(args.work, "keys.txt")
    with open(keys_file, "w") as f:
        f.write("# name key models\n")
        f.write(f"ops   {KEYS['ops']}  *\n")
        f.write(f"game\t{KEYS['game']}\tBrom,Elsa\n")
    srv = Server(args, ["--agents", args.agents, "--api-keys", keys_file,
                        "--http-max-tokens", "40", "--http-max-body-mb", "0.01"], "client")
    ops, game = srv.client(KEYS["ops"]), srv.client(KEYS["game"])

    # models: everything for ops, only its agents for game
    ids = [m.id for m in ops.models.list().data]
    check(ids[0] == "llmpi" and "Brom" in ids and "dispatcher" in ids, f"models: {ids}")
    ids = sorted(m.id for m in game.models.list().data)
    check(ids == ["Brom", "Elsa"], f"models for game: {ids}")
    print(f"  models: {len(ops.models.list().data)} for ops, {ids} for game")

    # completion: greedy equals llmpi generate
    prompt = "static int"
    r = ops.completions.create(model="llmpi", prompt=prompt, max_tokens=24, temperature=0)
    want = generate(args, prompt, 24)
    check(r.choices[0].text == want, f"completion {r.choices[0].text!r} != generate {want!r}")
    check(r.object == "text_completion" and r.choices[0].finish_reason in ("length", "stop"),
          f"completion shape: {r}")
    check(r.usage.completion_tokens <= 24 and r.usage.prompt_tokens == len(prompt.encode()),
          f"usage {r.usage} (the tiny model's tokens are bytes)")
    check(r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, "total")
    print(f"  completion == llmpi generate: {want!r} ({r.choices[0].finish_reason})")

    # chat on the bare model: the documented layout, stop at the end of line
    msgs = [{"role": "system", "content": "You write C."},
            {"role": "user", "content": "int main"}]
    r = ops.chat.completions.create(model="llmpi", messages=msgs, max_tokens=20, temperature=0)
    layout = "You write C.\n\nuser: int main\nassistant:"
    want = generate(args, layout, 20, stop="\n")
    got = r.choices[0].message.content
    check(got == want, f"chat {got!r} != generate {want!r}")
    check(r.object == "chat.completion" and r.choices[0].message.role == "assistant", "shape")
    check(r.usage.prompt_tokens == len(layout.encode()), f"usage {r.usage}")
    print(f"  chat == llmpi generate on the chat layout: {got!r}")

    # streamed chat: same text, role first, finish_reason last, usage when asked
    chunks = list(ops.chat.completions.create(model="llmpi", messages=msgs, max_tokens=20,
                                              temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    check(text == got, f"streamed {text!r} != whole {got!r}")
    check(chunks[0].choices[0].delta.role == "assistant", "first chunk has the role")
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    check(finals == [r.choices[0].finish_reason], f"finish reasons {finals}")
    check(chunks[-1].usage and chunks[-1].usage.completion_tokens == r.usage.completion_tokens,
          f"usage chunk {chunks[-1]}")
    print(f"  streamed chat: {len(chunks)} chunks, same text, usage {chunks[-1].usage.total_tokens}")

    # an agent as the model, with a key limited to it
    r = game.chat.completions.create(model="Brom", messages=[{"role": "user", "content": "Ale?"}],
                                     max_tokens=12, seed=5)
    check(r.model == "Brom" and r.choices[0].finish_reason in ("stop", "length"), f"{r}")
    s = "".join(c.choices[0].delta.content or "" for c in game.chat.completions.create(
        model="Brom", messages=[{"role": "user", "content": "Ale?"}], max_tokens=12, seed=5,
        stream=True))
    check(s == r.choices[0].message.content, f"seeded stream {s!r} != {r.choices[0].message.content!r}")
    print(f"  agent Brom (seeded, streamed == whole): {s!r}")

    # errors, as the client raises them
    expect_status(openai.AuthenticationError, 401,
                  lambda: srv.client("sk-llmpi-wrong-key-000000000000").models.list(), "wrong key")
    st, _, body = http("GET", srv.base + "/v1/models")
    check(st == 401 and body["error"]["type"] == "authentication_error", f"no key: {st} {body}")
    print(f"  no key: 401 {body['error']['message']}")
    expect_status(openai.PermissionDeniedError, 403, lambda: game.chat.completions.create(
        model="dispatcher", messages=[{"role": "user", "content": "x"}]), "key not allowed")
    expect_status(openai.NotFoundError, 404, lambda: ops.chat.completions.create(
        model="gpt-9", messages=[{"role": "user", "content": "x"}]), "unknown model", "model")
    expect_status(openai.BadRequestError, 400, lambda: ops.completions.create(
        model="llmpi", prompt="x", max_tokens=41), "max_tokens over the limit", "max_tokens")
    expect_status(openai.BadRequestError, 400, lambda: ops.completions.create(
        model="llmpi", prompt="x" * 300, max_tokens=5), "prompt past the context", "prompt")
    expect_status(openai.BadRequestError, 400, lambda: ops.completions.create(
        model="llmpi", prompt="x" * 230, max_tokens=30), "prompt + max_tokens past the context",
        "max_tokens")
    expect_status(openai.BadRequestError, 400, lambda: ops.chat.completions.create(
        model="llmpi", messages=[{"role": "wizard", "content": "x"}]), "bad role")
    expect_status(openai.APIStatusError, 413, lambda: ops.completions.create(
        model="llmpi", prompt="y" * 20000, max_tokens=5), "body too large")
    st, _, body = http("POST", srv.base + "/v1/chat/completions", raw=b"{not json", key=KEYS["ops"])
    check(st == 400, f"bad JSON: {st}")
    st, hdrs, body = http("GET", srv.base + "/v1/chat/completions", key=KEYS["ops"])
    check(st == 405 and "POST" in hdrs.get("Allow", ""), f"GET on a POST endpoint: {st}")
    st, _, body = srv.get("/health")
    check(st == 200 and body["status"] == "ok" and body["replicas"][0]["ready"], f"health {body}")

    log = srv.stop()
    for k in KEYS.values():
        check(k not in log and k not in open(srv.out).read(), "a key appears in the server's output")
    check(re.search(r'"POST /v1/chat/completions" 200 .* key=game', log), "access log lines")
    print("  SIGTERM: exit 0; no key in the log, key names are")


def metric_families(text):
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(fams, name, suffix="", **labels):
    base = name[:-len("_total")] if name.endswith("_total") else name
    for s in fams[base].samples:
        if s.name == base + suffix or s.name == name + suffix:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def wait_until(what, cond, within=10):
    deadline = time.time() + within
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    fail(f"{what}: not within {within} s")


def case_limits(args):
    # 40 ms per engine step: a 12-token answer takes ~0.5 s, a 150-token one
    # ~6 s, past the 3 s timeout
    srv = Server(args, ["--step-delay", "0.04", "--http-max-queue", "1",
                        "--http-timeout", "3"], "limits")
    cl = srv.client()
    sent = {}

    def tally(endpoint, code):
        sent[(endpoint, str(code))] = sent.get((endpoint, str(code)), 0) + 1

    r = cl.completions.create(model="llmpi", prompt="int", max_tokens=12, temperature=0)
    tally("/v1/completions", 200)
    check(r.usage.completion_tokens == 12 or r.choices[0].finish_reason == "stop", f"{r}")

    # queue full: one long request running, the next is refused at once
    holder = {}
    t = threading.Thread(target=lambda: holder.setdefault("r", cl.with_options(timeout=30).completions.create(
        model="llmpi", prompt="int", max_tokens=22, temperature=0)))
    t.start()
    wait_until("the first request running", lambda: srv.get("/health")[2]["queue_depth"] == 1)
    tally("/health", 200)  # at least once; counted exactly below from the server's own view
    e = expect_status(openai.RateLimitError, 429, lambda: cl.completions.create(
        model="llmpi", prompt="int", max_tokens=5), "queue full")
    check(e.response.headers.get("retry-after") == "1", "429 without Retry-After")
    tally("/v1/completions", 429)
    t.join()
    check(holder["r"].usage.completion_tokens >= 1, "the running request finished")
    tally("/v1/completions", 200)

    # past the timeout: 504, and the generation is cancelled
    e = expect_status(openai.APIStatusError, 504, lambda: cl.completions.create(
        model="llmpi", prompt="int", max_tokens=150), "past --http-timeout")
    tally("/v1/completions", 504)

    # a client that leaves mid-stream: its generation stops, its blocks return
    wait_until("idle", lambda: srv.get("/health")[2]["replicas"][0]["kv_blocks_used"] == 0)
    stream = cl.completions.create(model="llmpi", prompt="int", max_tokens=150, stream=True)
    tally("/v1/completions", 200)  # the stream's answer had begun: 200
    it = iter(stream)
    next(it)
    next(it)
    used = srv.get("/health")[2]["replicas"][0]["kv_blocks_used"]
    check(used > 0, "the streaming request holds KV blocks")
    t0 = time.time()
    stream.close()
    # within 2 s: before both the answer's end (~6 s) and the server's own
    # 3 s timeout, so only the disconnect can have freed them
    wait_until("blocks freed after the disconnect",
               lambda: srv.get("/health")[2]["replicas"][0]["kv_blocks_used"] == 0, within=2)
    print(f"  disconnect: {used} KV blocks freed in {time.time() - t0:.2f} s "
          f"(the whole answer would take ~6 s)")

    st, hdrs, text = srv.get("/metrics")
    check(st == 200 and hdrs.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          f"metrics content type {hdrs.get('Content-Type')}")
    fams = metric_families(text)
    for name, typ in [("llmpi_http_requests", "counter"), ("llmpi_http_queue_depth", "gauge"),
                      ("llmpi_generated_tokens", "counter"),
                      ("llmpi_time_to_first_token_seconds", "histogram"),
                      ("llmpi_time_per_output_token_seconds", "histogram"),
                      ("llmpi_replica_up", "gauge"), ("llmpi_kv_pool_usage_ratio", "gauge")]:
        check(name in fams and fams[name].type == typ, f"{name} as {typ}: {fams.get(name)}")
    for (endpoint, code), n in sent.items():
        if endpoint == "/health":
            continue
        got = sample(fams, "llmpi_http_requests_total", "_total", endpoint=endpoint, code=code)
        check(got == n, f"requests {endpoint} {code}: metrics say {got}, sent {n}")
    cancelled = sample(fams, "llmpi_generations_total", "_total", outcome="cancelled")
    check(cancelled == 2, f"cancelled generations: {cancelled} (the 504 and the disconnect)")
    ok = sample(fams, "llmpi_generations_total", "_total", outcome="ok")
    check(ok == 2, f"ok generations: {ok}")
    n = sample(fams, "llmpi_time_to_first_token_seconds", "_count")
    inf = sample(fams, "llmpi_time_to_first_token_seconds", "_bucket", le="+Inf")
    check(n == ok and inf == n, f"TTFT histogram count {n}, +Inf {inf}")
    buckets = [s.value for s in fams["llmpi_time_to_first_token_seconds"].samples
               if s.name.endswith("_bucket")]
    check(buckets == sorted(buckets), "buckets are cumulative")
    check(sample(fams, "llmpi_replica_up", replica="0") == 1, "replica up")
    check(sample(fams, "llmpi_kv_blocks_used", replica="0") == 0, "no blocks in use")
    print(f"  /metrics: {len(fams)} families parsed; counts match the {sum(sent.values())} requests")
    srv.stop()


def case_conversations(args):
    keys_file = os.path.join(args.work, "keys.txt")
    with open(keys_file, "w") as f:
        f.write(f"ops {KEYS['ops']} *\ngame {KEYS['game']} Brom,Elsa\n")
    srv = Server(args, ["--agents", args.agents, "--api-keys", keys_file], "conv")
    k = KEYS["ops"]
    st, _, c = http("POST", srv.base + "/v1/conversations", {"scenario": "customer-service"}, key=k)
    check(st == 200 and c["status"] == "open" and c["pattern"] == "router", f"create: {st} {c}")
    cid = c["id"]
    st, _, p = http("POST", f"{srv.base}/v1/conversations/{cid}/messages",
                    {"content": "My invoice shows a double charge."}, key=k)
    check(st == 200 and p["turn"] >= 0, f"post: {st} {p}")
    turn = p["turn"]
    answer = []

    def specialist_answered():
        st, _, msgs = http("GET", f"{srv.base}/v1/conversations/{cid}/messages?after={turn}&wait=10",
                           key=k)
        check(st == 200, f"read: {st} {msgs}")
        answer.extend(m for m in msgs["data"] if not m.get("routing") and m["from"] != "user")
        return answer
    wait_until("a specialist's answer (long poll)", specialist_answered, within=60)
    check(answer[0]["from"] in ("billing", "technical", "escalation") and answer[0]["turn"] > turn,
          f"answer {answer}")
    print(f"  router conversation {cid}: user turn {turn}, answered by {answer[0]['from']}")
    st, _, d = http("DELETE", f"{srv.base}/v1/conversations/{cid}", key=k)
    check(st == 200 and d["status"] == "ended" and d["end_reason"] == "closed", f"close {d}")
    st, _, e = http("POST", f"{srv.base}/v1/conversations/{cid}/messages", {"content": "x"}, key=k)
    check(st == 409, f"post after close: {st} {e}")

    # a message to the broadcast scenario's topic: every subscriber answers
    st, _, p = http("POST", srv.base + "/v1/topics/questions/messages",
                    {"content": "What is 2+2?", "from": "visitor"}, key=k)
    check(st == 200 and p["topic"] == "questions", f"topic post: {st} {p}")
    cid, n_agents = p["id"], len(p["agents"])
    got = {}

    def answers():
        _, _, m = http("GET", f"{srv.base}/v1/conversations/{cid}/messages?after=0&wait=5", key=k)
        for x in m["data"]:
            if x["from"] != "visitor":
                got[x["from"]] = x["content"]
        return len(got) == n_agents
    wait_until("every subscriber's answer", answers, within=60)
    print(f"  topic 'questions' (conversation {cid}): answered by {sorted(got)}")

    st, _, e = http("GET", srv.base + "/v1/conversations/999/messages", key=k)
    check(st == 404, f"unknown conversation: {st}")
    st, _, e = http("POST", srv.base + "/v1/conversations", {"scenario": "customer-service"},
                    key=KEYS["game"])
    check(st == 403 and e["error"]["type"] == "permission_error", f"not allowed: {st} {e}")
    st, _, e = http("POST", srv.base + "/v1/conversations", {"scenario": "nope"}, key=k)
    check(st == 404, f"unknown scenario: {st}")
    st, _, e = http("POST", srv.base + "/v1/topics/nothing/messages", {"content": "x"}, key=k)
    check(st == 404, f"unknown topic: {st}")
    print("  errors: 404 conversation/scenario/topic, 403 key, 409 after close")
    srv.stop()


def case_redact(args):
    # a tiny model that learned one line by heart, e-mail address included
    with open(os.path.join(args.work, "pii.txt"), "w") as f:
        f.write("contact bob.smith@example.com today\n" * 3000)
    ck = os.path.join(args.work, "ckpii")
    subprocess.run([args.llmpi, "train", "--model", "tiny", "--data", f.name, "--batch", "8",
                    "--seq", "32", "--steps", "150", "--lr", "1e-2", "--warmup", "5",
                    "--ckpt-dir", ck], check=True, capture_output=True)
    args.ckpt = os.path.join(ck, sorted(os.listdir(ck))[-1])
    raw = generate(args, "contact ", 40)
    check("bob.smith@example.com" in raw, f"the model did not learn the address: {raw!r}")
    srv = Server(args, ["--redact", "--agents", args.agents], "redact")
    cl = srv.client()
    r = cl.completions.create(model="llmpi", prompt="contact ", max_tokens=40, temperature=0)
    text = r.choices[0].text
    check("[EMAIL]" in text and "@" not in text, f"not masked: {text!r} (raw {raw!r})")
    chunks = list(cl.completions.create(model="llmpi", prompt="contact ", max_tokens=40,
                                        temperature=0, stream=True))
    streamed = "".join(c.choices[0].text for c in chunks if c.choices)
    check(streamed == text, f"streamed {streamed!r} != whole {text!r}")
    print(f"  completion {raw!r} goes out as {text!r}, streamed in {len(chunks)} events")
    # a router conversation waits for user messages (a two-agent one may
    # have run to its last turn before the post arrives)
    st, _, c = http("POST", srv.base + "/v1/conversations", {"scenario": "customer-service"})
    cid = c["id"]
    st, _, p = http("POST", f"{srv.base}/v1/conversations/{cid}/messages",
                    {"content": "write to jane.doe@example.org or call +1 415 555 0100"})
    check(st == 200, f"post: {st} {p}")
    mine = []

    def posted():  # a post joins the history once the reply in flight is in
        _, _, m = http("GET", f"{srv.base}/v1/conversations/{cid}/messages?after=0&wait=5")
        mine[:] = [x["content"] for x in m["data"] if x["from"] == "user"]
        return mine
    wait_until("the posted message in the history", posted, within=30)
    check(any("[EMAIL]" in t and "[PHONE]" in t for t in mine) and
          not any("jane.doe" in t or "555" in t for t in mine), f"conversation read: {mine}")
    print(f"  a posted message reads back as {mine[-1]!r}")
    srv.stop()


def case_mpi(args):
    srv = Server(args, ["--step-delay", "0.03"], "mpi", np=3)
    cl = srv.client()
    st, _, h = srv.get("/health")
    check(st == 200 and len(h["replicas"]) == 2, f"health under mpirun: {h}")
    wait_until("both replicas report their pool",
               lambda: all(r["kv_blocks_total"] > 0 for r in srv.get("/health")[2]["replicas"]))
    for prompt in ["static int", "for (", "return"]:
        r = cl.completions.create(model="llmpi", prompt=prompt, max_tokens=10, temperature=0)
        want = generate(args, prompt, 10)
        check(r.choices[0].text == want, f"{prompt!r}: {r.choices[0].text!r} != {want!r}")
    print("  3 completions over 2 replica groups == llmpi generate")
    # 200 tokens at 30 ms a step: ~6 s; the blocks must be back within 3 s
    stream = cl.completions.create(model="llmpi", prompt="int", max_tokens=200, stream=True)
    it = iter(stream)
    next(it)
    next(it)
    busy = [r for r in srv.get("/health")[2]["replicas"] if r["kv_blocks_used"] > 0]
    check(len(busy) == 1, f"one replica holds the stream's blocks: {busy}")
    stream.close()
    wait_until("the replica freed the blocks (cancel over MPI)",
               lambda: all(r["kv_blocks_used"] == 0 and r["outstanding"] == 0
                           for r in srv.get("/health")[2]["replicas"]), within=3)
    print("  a disconnect cancels on the replica group: its blocks are freed")
    srv.stop(within=30, coordinator=True)
    print("  SIGTERM to the coordinator: every rank exited 0")
    # mpirun itself signalled: it forwards SIGTERM to every rank (the
    # replicas ignore it, the coordinator stops them in order) and exits 1
    # by Open MPI's own rule for a signalled job; only promptness is ours
    srv = Server(args, [], "mpi2", np=3)
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        fail("mpirun did not end within 30 s of SIGTERM")
    check("stopping the HTTP server" in open(srv.log).read(), "orderly stop after mpirun's SIGTERM")
    print(f"  SIGTERM to mpirun: the job ended (mpirun's status {srv.proc.returncode})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=["client", "limits", "conversations", "redact", "mpi"])
    ap.add_argument("--llmpi", required=True)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--agents", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--mpiexec", default="mpirun")
    args = ap.parse_args()
    print(f"openai {openai.__version__}")
    globals()["case_" + args.case](args)
    print(f"{args.case}: ok")


if __name__ == "__main__":
    main()
