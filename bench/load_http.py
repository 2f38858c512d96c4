#!/usr/bin/env python3
"""bench/load_http.py — a bounded open-loop load on `llmpi serve --http` from a
second process: Poisson arrivals at a ramp of rates, past what the pool can
serve. Every request must be answered (200) or refused (429); none may be lost
(a connection error, a broken stream or a client time-out) or left hanging
(after the ramp, /health must show an empty queue, no request outstanding on
any replica and no KV block in use), and the server's RSS is sampled
throughout (docs/performance.md, "HTTP load").

    python load_http.py (--url http://HOST:PORT [--pid PID] |
                         --llmpi BIN --ckpt FILE [--np N] [--serve-args "..."])
                        [--rates 5,10,20,40,80,160] [--stage-seconds 10]
                        [--max-tokens 32] [--chat] [--stream] [--csv FILE] [--json]

The Python environment: httpx only (its twin httpx2, which the `openai`
package brings from its version 3 on, is used when httpx is absent):

    python3 -m venv ENV && ENV/bin/pip install httpx
    ENV/bin/python bench/load_http.py ...

The server: with --llmpi the script starts `BIN serve --ckpt FILE --http
127.0.0.1:0 SERVE_ARGS` (under `MPIEXEC -np N --oversubscribe` with --np),
reads its port and the coordinator's pid from the 'listening on' line of its
stderr (kept in WORK/server.log), and stops it at the end with SIGTERM to the
coordinator, which must then exit 0 (mpirun too). With --url it only sends;
--pid PID (the coordinator's, from the same line) lets it read the RSS.

Per stage (a rate held for --stage-seconds; stages follow each other with no
pause):
  sent, offered/s   requests sent in the stage, and that over its length
  200 429 other lost  the outcomes of the requests *sent* in the stage (lost:
                    a connection error, a broken stream, a client time-out)
  good/s, tok/s     200 answers *received* during the stage (and their
                    completion tokens) over its length
  p50 / p99 ms      send to the whole answer, for the 200s sent in the stage
                    (with --stream also the time to the first token)
  429 p99 ms        send to the refusal: refusals should be fast, and slow
                    ones pile up connections
  queue max         the largest /health queue_depth
  in flight max     the most requests this client had out at once
  conns max         the most established TCP connections to the server's
                    port (/proc/net/tcp: accepted or in the listen backlog)
  RSS MiB           the coordinator's VmRSS (/proc/PID/status) at the
                    stage's first and last sample, and its largest
  all procs max     summed VmRSS of every server process (mpirun, the ranks,
                    a singleton's orted), when started here
  health max ms     the slowest /health answer (its own connection)
  lag p99 ms        how late the client sent, behind the Poisson schedule (a
                    client that cannot keep up shows here)
Samples are taken every --sample-every seconds. --requests-log FILE keeps
every request (stage, status or error, times, tokens) as a JSON line.

Exit status 1 if a request was lost, a status other than 200 or 429 came
back, the server did not drain within --drain-timeout, its own request
counts (/metrics, llmpi_http_requests_total, before and after) differ from
the client's, or (when started here) it did not exit 0 on SIGTERM; 2 on a
usage or start-up error.
"""
import argparse
import asyncio
import csv
import json
import math
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time

try:
    import httpx
except ImportError:
    try:  # openai >= 3 installs httpx2, the same API
        import httpx2 as httpx
    except ImportError:
        sys.exit("load_http.py needs httpx: python3 -m venv ENV && ENV/bin/pip install httpx, "
                 "then run it with ENV/bin/python")

PROMPTS = [
    "static int",
    "for (int i = 0; i < n; i++) {",
    "return",
    "/* the tokenizer */\n",
    "#include <stdio.h>\n",
    "if (!p) return NULL;\n",
    "struct tensor *t =",
    "void kernel_matmul(",
]

LISTEN_RE = re.compile(r"listening on http://(\S+?):(\d+) \(.*pid (\d+)\)")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def die(msg):
    log(f"load_http: {msg}")
    sys.exit(2)


# ---- the server -----------------------------------------------------------

def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def descendants(root):
    """root and every process below it (from /proc/*/stat)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Server:
    def __init__(self, args):
        self.proc = None
        self.base = args.url.rstrip("/") if args.url else None
        self.pid = args.pid
        self.log_path = None
        self.ranks = []
        if args.url:
            return
        self.log_path = os.path.join(args.work, "server.log")
        cmd = [args.llmpi, "serve", "--ckpt", args.ckpt, "--http", "127.0.0.1:0"]
        cmd += args.serve_argv
        if args.np:
            cmd = [args.mpiexec, "-np", str(args.np), "--oversubscribe"] + cmd
        self.cmd = cmd
        log("server: " + " ".join(shlex.quote(c) for c in cmd))
        self.proc = subprocess.Popen(cmd, stdout=open(os.path.join(args.work, "server.out"), "w"),
                                     stderr=open(self.log_path, "w"), start_new_session=True)
        deadline = time.time() + args.start_timeout
        while True:
            m = LISTEN_RE.search(open(self.log_path, errors="replace").read())
            if m:
                self.base = f"http://{m.group(1)}:{m.group(2)}"
                self.pid = int(m.group(3))
                break
            if self.proc.poll() is not None:
                log(open(self.log_path, errors="replace").read())
                die(f"the server exited with {self.proc.returncode} before listening")
            if time.time() > deadline:
                os.killpg(self.proc.pid, signal.SIGKILL)
                die(f"no 'listening on' line within {args.start_timeout} s")
            time.sleep(0.05)
        self.ranks = [p for p in descendants(self.proc.pid) if rss_kib(p) is not None]
        log(f"server: {self.base}, coordinator pid {self.pid}, {len(self.ranks)} processes")

    def rss(self):
        """(coordinator KiB, all server processes KiB) or Nones."""
        c = rss_kib(self.pid) if self.pid else None
        if not self.proc:
            return c, None
        tot = 0
        for p in descendants(self.proc.pid):
            v = rss_kib(p)
            if v:
                tot += v
        return c, tot

    def stop(self, within=30):
        """SIGTERM to the coordinator; its exit status (mpirun's with --np)."""
        if not self.proc:
            return None
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return f"still running {within} s after SIGTERM (killed)"

    def odd_log_lines(self):
        """Lines of the server's stderr other than the access log's."""
        if not self.log_path:
            return []
        acc = re.compile(r'^llmpi serve: http \S+ "(GET|POST|DELETE|PUT|HEAD|OPTIONS) ')
        return [ln.rstrip() for ln in open(self.log_path, errors="replace")
                if not acc.match(ln) and not LISTEN_RE.search(ln)]


def tcp_established(port):
    """Established TCP connections whose local port is port (the server's side
    of every client connection, accepted or still in its listen backlog)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    x = line.split()
                    if x[3] == "01" and int(x[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except (OSError, StopIteration, ValueError, IndexError):
            pass
    return n


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return None


def wait_idle(within):
    """Wait (up to within s) for the CPUs to be >= 95% idle over 2 s; the
    seconds waited, or None if they never were. Before the server starts:
    its replicas, idle in MPI_Probe under mpirun, poll."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within:
        a = cpu_times()
        time.sleep(2)
        b = cpu_times()
        if b[0] > a[0] and (b[1] - a[1]) / (b[0] - a[0]) >= 0.95:
            return round(time.monotonic() - t0, 1)
    log(f"warning: the CPUs were not 95% idle within {within:g} s; starting anyway")
    return None


# ---- metrics --------------------------------------------------------------

def request_counts(text, endpoint):
    """{code: n} of llmpi_http_requests_total for one endpoint."""
    out = {}
    for m in re.finditer(r"^llmpi_http_requests_total\{([^}]*)\}\s+(\S+)$", text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("endpoint") == endpoint:
            out[labels.get("code")] = out.get(labels.get("code"), 0) + int(float(m.group(2)))
    return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    f, c = math.floor(k), math.ceil(k)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


# ---- the load -------------------------------------------------------------

class Load:
    def __init__(self, args, server):
        self.a = args
        self.srv = server
        self.rng = random.Random(args.seed)
        self.results = []  # dicts, one per request
        self.samples = []  # (t, coordinator KiB, all KiB, queue_depth, health s, conns)
        self.port = int(server.base.rsplit(":", 1)[1])
        self.in_flight = 0
        self.in_flight_max = {}  # stage -> the most requests out at once
        self.health_errors = []
        self.path = "/v1/chat/completions" if args.chat else "/v1/completions"
        self.headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}

    def body(self, prompt):
        b = {"model": self.a.model, "max_tokens": self.a.max_tokens,
             "temperature": self.a.temperature}
        if self.a.chat:
            b["messages"] = [{"role": "user", "content": prompt}]
        else:
            b["prompt"] = prompt
        if self.a.stream:
            b["stream"] = True
            b["stream_options"] = {"include_usage": True}
        return b

    async def one(self, client, stage, t_sched, prompt):
        r = {"stage": stage, "t_sched": t_sched, "t_send": time.monotonic(), "status": None,
             "error": None, "tokens": 0, "ttft": None}
        self.in_flight += 1
        self.in_flight_max[stage] = max(self.in_flight_max.get(stage, 0), self.in_flight)
        try:
            if self.a.stream:
                async with client.stream("POST", self.path, json=self.body(prompt)) as resp:
                    r["status"] = resp.status_code
                    if resp.status_code == 200:
                        done = False
                        async for line in resp.aiter_lines():
                            if not line.startswith("data:"):
                                continue
                            d = line[5:].strip()
                            if d == "[DONE]":
                                done = True
                                break
                            o = json.loads(d)
                            ch = (o.get("choices") or [{}])[0]
                            piece = ch.get("text") or (ch.get("delta") or {}).get("content")
                            if piece and r["ttft"] is None:
                                r["ttft"] = time.monotonic() - r["t_send"]
                            if o.get("usage"):
                                r["tokens"] = o["usage"].get("completion_tokens", 0)
                        if not done:
                            r["error"] = "stream ended without [DONE]"
                    else:
                        await resp.aread()
                        r["retry_after"] = resp.headers.get("retry-after")
            else:
                resp = await client.post(self.path, json=self.body(prompt))
                r["status"] = resp.status_code
                if resp.status_code == 200:
                    r["tokens"] = resp.json()["usage"]["completion_tokens"]
                else:
                    r["retry_after"] = resp.headers.get("retry-after")
                    r["body"] = resp.text[:200]
        except httpx.TimeoutException as e:
            r["error"] = f"client time-out ({type(e).__name__})"
        except Exception as e:  # noqa: BLE001 — whatever it was, the request is lost
            r["error"] = f"{type(e).__name__}: {e}"[:200]
        r["t_done"] = time.monotonic()
        self.in_flight -= 1
        self.results.append(r)

    async def health(self, hc):
        t = time.monotonic()
        resp = await hc.get("/health")
        return resp.json(), time.monotonic() - t

    async def sampler(self, hc, stop):
        while not stop.is_set():
            t = time.monotonic()
            c, tot = self.srv.rss()
            qd = hs = None
            try:
                h, hs = await self.health(hc)
                qd = h.get("queue_depth")
            except Exception as e:  # noqa: BLE001 — any failure is reported
                self.health_errors.append(f"{t - self.t0:.1f}s {type(e).__name__}: {e}")
            self.samples.append((t, c, tot, qd, hs, tcp_established(self.port)))
            try:
                await asyncio.wait_for(stop.wait(), self.a.sample_every)
            except asyncio.TimeoutError:
                pass

    async def run(self):
        a = self.a
        limits = httpx.Limits(max_connections=a.max_connections,
                              max_keepalive_connections=a.max_connections)
        timeout = httpx.Timeout(a.client_timeout, pool=a.client_timeout)
        async with httpx.AsyncClient(base_url=self.srv.base, limits=limits, timeout=timeout,
                                     headers=self.headers) as client, \
                httpx.AsyncClient(base_url=self.srv.base, timeout=10,
                                  headers=self.headers) as hc:
            # warm-up (not counted): the first allocations, then the baseline
            for i in range(max(a.warmup, 1)):
                try:
                    resp = await client.post(self.path,
                                             json=self.body(PROMPTS[i % len(PROMPTS)]))
                except httpx.HTTPError as e:
                    die(f"warm-up request to {self.srv.base}: {type(e).__name__}: {e}")
                if resp.status_code != 200:
                    die(f"warm-up request: {resp.status_code} {resp.text[:200]}")
            self.loadavg0 = loadavg()
            self.metrics0 = (await hc.get("/metrics")).text
            self.rss0 = self.srv.rss()
            stop = asyncio.Event()
            self.t0 = time.monotonic()
            sampler = asyncio.create_task(self.sampler(hc, stop))
            tasks = []
            for stage, rate in enumerate(a.rates):
                start = self.t0 + stage * a.stage_seconds
                end = start + a.stage_seconds
                t = start + self.rng.expovariate(rate)
                while t < end:
                    now = time.monotonic()
                    if t > now:
                        await asyncio.sleep(t - now)
                    prompt = self.rng.choice(PROMPTS)
                    tasks.append(asyncio.create_task(self.one(client, stage, t, prompt)))
                    t += self.rng.expovariate(rate)
                now = time.monotonic()
                if end > now:
                    await asyncio.sleep(end - now)
            self.t_end = self.t0 + len(a.rates) * a.stage_seconds
            # every request ends: answered, refused, or the client's time-out
            await asyncio.gather(*tasks)
            self.t_answered = time.monotonic()
            # nothing left hanging: the server's queue and replicas empty
            self.drain = None
            last = None
            deadline = time.monotonic() + a.drain_timeout
            while time.monotonic() < deadline:
                try:
                    h, _ = await self.health(hc)
                    last = h
                    reps = h.get("replicas", [])
                    if (h.get("queue_depth") == 0 and reps and
                            all(x.get("outstanding") == 0 and x.get("kv_blocks_used") == 0
                                and x.get("ready") for x in reps)):
                        self.drain = time.monotonic() - self.t_answered
                        break
                except Exception as e:  # noqa: BLE001
                    last = f"{type(e).__name__}: {e}"
                await asyncio.sleep(0.05)
            self.last_health = last
            stop.set()
            await sampler
            try:
                self.metrics1 = (await hc.get("/metrics")).text
            except httpx.HTTPError as e:
                self.metrics1 = None
                self.metrics1_error = f"{type(e).__name__}: {e}"
            self.loadavg1 = loadavg()
            self.rss1 = self.srv.rss()

    # ---- the report -------------------------------------------------------

    def stages(self):
        a, rows = self.a, []
        for i, rate in enumerate(a.rates):
            s0, s1 = self.t0 + i * a.stage_seconds, self.t0 + (i + 1) * a.stage_seconds
            rs = [r for r in self.results if r["stage"] == i]
            ok = [r for r in rs if r["error"] is None and r["status"] == 200]
            got = [r for r in self.results if r["error"] is None and r["status"] == 200
                   and s0 <= r["t_done"] < s1]
            lat = [r["t_done"] - r["t_send"] for r in ok]
            refused = [r["t_done"] - r["t_send"] for r in rs
                       if r["error"] is None and r["status"] == 429]
            ttft = [r["ttft"] for r in ok if r["ttft"] is not None]
            lag = [r["t_send"] - r["t_sched"] for r in rs]
            sm = [s for s in self.samples if s0 <= s[0] < s1]
            coord = [s[1] for s in sm if s[1] is not None]
            allr = [s[2] for s in sm if s[2] is not None]
            qd = [s[3] for s in sm if s[3] is not None]
            hs = [s[4] for s in sm if s[4] is not None]
            conns = [s[5] for s in sm]
            mib = (lambda v: round(v / 1024, 1) if v is not None else None)
            rows.append({
                "stage": i + 1, "rate": rate, "sent": len(rs),
                "offered_rps": round(len(rs) / a.stage_seconds, 2),
                "ok": len(ok),
                "r429": sum(1 for r in rs if r["error"] is None and r["status"] == 429),
                "other": sum(1 for r in rs if r["error"] is None and r["status"] not in (200, 429)),
                "lost": sum(1 for r in rs if r["error"] is not None),
                "goodput_rps": round(len(got) / a.stage_seconds, 2),
                "tokens_per_s": round(sum(r["tokens"] for r in got) / a.stage_seconds, 1),
                "lat_p50_ms": round(pct(lat, 50) * 1000) if lat else None,
                "lat_p99_ms": round(pct(lat, 99) * 1000) if lat else None,
                "r429_p99_ms": round(pct(refused, 99) * 1000) if refused else None,
                "ttft_p50_ms": round(pct(ttft, 50) * 1000) if ttft else None,
                "ttft_p99_ms": round(pct(ttft, 99) * 1000) if ttft else None,
                "send_lag_p99_ms": round(pct(lag, 99) * 1000, 1) if lag else None,
                "queue_depth_max": max(qd) if qd else None,
                "in_flight_max": self.in_flight_max.get(i, 0),
                "connections_max": max(conns) if conns else None,
                "rss_mib_start": mib(coord[0]) if coord else None,
                "rss_mib_end": mib(coord[-1]) if coord else None,
                "rss_mib_max": mib(max(coord)) if coord else None,
                "all_rss_mib_max": mib(max(allr)) if allr else None,
                "health_ms_max": round(max(hs) * 1000, 1) if hs else None,
            })
        return rows

    def table(self, rows, out):
        cols = [("stage", "stage"), ("rate", "rate/s"), ("sent", "sent"),
                ("offered_rps", "offered/s"), ("ok", "200"), ("r429", "429"),
                ("other", "other"), ("lost", "lost"), ("goodput_rps", "good/s"),
                ("tokens_per_s", "tok/s"), ("lat_p50_ms", "p50 ms"), ("lat_p99_ms", "p99 ms"),
                ("r429_p99_ms", "429 p99 ms")]
        if self.a.stream:
            cols += [("ttft_p50_ms", "ttft p50"), ("ttft_p99_ms", "ttft p99")]
        cols += [("queue_depth_max", "queue max"), ("in_flight_max", "in flight max"),
                 ("connections_max", "conns max"), ("rss", "RSS MiB start/end/max")]
        if any(r["all_rss_mib_max"] for r in rows):
            cols += [("all_rss_mib_max", "all procs max")]
        cols += [("health_ms_max", "health max ms"), ("send_lag_p99_ms", "lag p99 ms")]
        cells = []
        for r in rows:
            c = []
            for k, _ in cols:
                if k == "rss":
                    v = (f"{r['rss_mib_start']}/{r['rss_mib_end']}/{r['rss_mib_max']}"
                         if r["rss_mib_start"] is not None else "-")
                else:
                    v = "-" if r[k] is None else str(r[k])
                c.append(v)
            cells.append(c)
        w = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(cols)]
        print(" | ".join(h.rjust(w[i]) for i, (_, h) in enumerate(cols)), file=out)
        print("-+-".join("-" * x for x in w), file=out)
        for c in cells:
            print(" | ".join(v.rjust(w[i]) for i, v in enumerate(c)), file=out)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("the server")
    g.add_argument("--url", help="a running server (http://HOST:PORT)")
    g.add_argument("--pid", type=int, help="with --url: the coordinator's pid, for its RSS")
    g.add_argument("--llmpi", help="start BIN serve here")
    g.add_argument("--ckpt", help="its checkpoint")
    g.add_argument("--np", type=int, help="under MPIEXEC -np N --oversubscribe")
    g.add_argument("--mpiexec", default="mpirun")
    g.add_argument("--serve-args", default="", help="more `llmpi serve` options (one string)")
    g.add_argument("--http-timeout", type=float, default=30,
                   help="the server's --http-timeout: passed to a server started here unless "
                        "--serve-args has one (default 30)")
    g.add_argument("--work", help="for server.log and server.out (default: a temporary "
                                  "directory, removed unless the run fails)")
    g.add_argument("--start-timeout", type=float, default=120)
    g = ap.add_argument_group("the load")
    g.add_argument("--rates", default="5,10,20,40,80,160", help="req/s per stage")
    g.add_argument("--stage-seconds", type=float, default=10)
    g.add_argument("--max-tokens", type=int, default=32)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--model", default="llmpi")
    g.add_argument("--api-key")
    g.add_argument("--chat", action="store_true", help="/v1/chat/completions")
    g.add_argument("--stream", action="store_true", help="stream the answers (SSE)")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--warmup", type=int, default=2,
                   help="requests before the ramp, one at a time (uncounted; at least 1)")
    g.add_argument("--client-timeout", type=float,
                   help="per request (default: 2 x --http-timeout + 30 s)")
    g.add_argument("--max-connections", type=int, default=1000,
                   help="the client's connection pool (default 1000: no queue on this side)")
    g.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="before starting, wait up to S s for the CPUs to be 95%% idle "
                        "over 2 s (a shared machine)")
    g.add_argument("--sample-every", type=float, default=0.25,
                   help="RSS and /health sampling period in seconds")
    g.add_argument("--drain-timeout", type=float, default=30,
                   help="seconds after the last answer for /health to show nothing left")
    g = ap.add_argument_group("output")
    g.add_argument("--csv", help="one row per stage")
    g.add_argument("--requests-log", metavar="FILE",
                   help="one JSON line per request (times in s from the ramp's start)")
    g.add_argument("--json", action="store_true",
                   help="print one JSON object on stdout (the table goes to stderr)")
    a = ap.parse_args()
    if bool(a.url) == bool(a.llmpi):
        ap.error("give --url or --llmpi (with --ckpt)")
    if a.llmpi and not a.ckpt:
        ap.error("--llmpi needs --ckpt")
    try:
        a.rates = [float(x) for x in a.rates.split(",")]
    except ValueError:
        ap.error(f"--rates {a.rates!r}: a comma list of numbers")
    if not a.rates or min(a.rates) <= 0:
        ap.error("--rates: positive numbers")
    a.serve_argv = shlex.split(a.serve_args)
    if "--http-timeout" in a.serve_argv:
        a.http_timeout = float(a.serve_argv[a.serve_argv.index("--http-timeout") + 1])
    elif a.llmpi:
        a.serve_argv += ["--http-timeout", f"{a.http_timeout:g}"]
    if a.client_timeout is None:
        a.client_timeout = 2 * a.http_timeout + 30
    if a.client_timeout <= a.http_timeout:
        log(f"warning: --client-timeout {a.client_timeout:g} is not above the server's "
            f"--http-timeout {a.http_timeout:g}: a slow answer shows as lost, not as 504")
    return a


def main():
    a = parse_args()
    keep_work = a.work is not None
    if not a.work:
        a.work = tempfile.mkdtemp(prefix="load_http.")
    os.makedirs(a.work, exist_ok=True)
    idle_wait = wait_idle(a.wait_idle) if a.wait_idle > 0 else None
    srv = Server(a)
    load = Load(a, srv)
    load.idle_wait = idle_wait
    failures = []
    try:
        asyncio.run(load.run())
    except BaseException:
        srv.stop()
        if srv.log_path:
            log(f"the server's log: {srv.log_path}")
        raise
    alive = srv.proc is None or srv.proc.poll() is None
    rc = srv.stop()
    rows = load.stages()

    # ---- checks ----
    res = load.results
    lost = [r for r in res if r["error"] is not None]
    other = [r for r in res if r["error"] is None and r["status"] not in (200, 429)]
    n200 = sum(1 for r in res if r["error"] is None and r["status"] == 200)
    n429 = sum(1 for r in res if r["error"] is None and r["status"] == 429)
    for r in lost[:10]:
        failures.append(f"lost: stage {r['stage'] + 1}, sent at "
                        f"{r['t_send'] - load.t0:.2f} s, after {r['t_done'] - r['t_send']:.2f} s: "
                        f"{r['error']}")
    if len(lost) > 10:
        failures.append(f"... {len(lost)} requests lost in all")
    for r in other[:10]:
        failures.append(f"status {r['status']}: stage {r['stage'] + 1}: {r.get('body', '')}")
    if len(other) > 10:
        failures.append(f"... {len(other)} statuses other than 200 and 429 in all")
    if load.drain is None:
        failures.append(f"not drained {a.drain_timeout:g} s after the last answer: "
                        f"/health {json.dumps(load.last_health)}")
    ep = "/v1/chat/completions" if a.chat else "/v1/completions"
    client_counts = {}
    for r in res:
        if r["error"] is None:
            client_counts[str(r["status"])] = client_counts.get(str(r["status"]), 0) + 1
    if load.metrics1 is None:
        server_counts = None
        failures.append(f"/metrics after the run: {load.metrics1_error}")
    else:
        m0, m1 = request_counts(load.metrics0, ep), request_counts(load.metrics1, ep)
        server_counts = {k: m1.get(k, 0) - m0.get(k, 0) for k in set(m0) | set(m1)}
        server_counts = {k: v for k, v in server_counts.items() if v}
    if server_counts is not None and server_counts != client_counts:
        failures.append(f"/metrics counted {server_counts} on {ep}, the client got "
                        f"{client_counts} (+{len(lost)} lost)")
    if not alive:
        failures.append(f"the server exited during the run ({rc})")
    elif srv.proc is not None and rc != 0:
        failures.append(f"the server's exit status after SIGTERM: {rc}")
    odd = srv.odd_log_lines()
    expected = re.compile(r"SIGTERM: stopping the HTTP server|requests per replica group")
    odd = [ln for ln in odd if not expected.search(ln)]
    mib = (lambda v: round(v / 1024, 1) if v is not None else None)

    summary = {
        "sent": len(res), "ok": n200, "r429": n429, "other": len(other), "lost": len(lost),
        "duration_s": round(load.t_end - load.t0, 2),
        "last_answer_after_ramp_s": round(load.t_answered - load.t_end, 2),
        "drained_after_s": None if load.drain is None else round(load.drain, 2),
        "rss_mib_after_warmup": mib(load.rss0[0]), "rss_mib_after_drain": mib(load.rss1[0]),
        "all_rss_mib_after_warmup": mib(load.rss0[1]),
        "all_rss_mib_after_drain": mib(load.rss1[1]),
        "retry_after": sorted({r.get("retry_after") for r in res
                               if r["status"] == 429 and r["error"] is None} - {None}),
        "server_counts": server_counts, "health_errors": load.health_errors,
        "loadavg_start": load.loadavg0, "loadavg_end": load.loadavg1,
        "idle_wait_s": load.idle_wait,
        "server_exit": rc, "server_log_other_lines": odd[:20],
    }
    out = sys.stderr if a.json else sys.stdout
    print(f"{ep}, max_tokens {a.max_tokens}{', streamed' if a.stream else ''}; "
          f"stages of {a.stage_seconds:g} s; server {srv.base}"
          + (f" ({' '.join(srv.cmd[:4])} ...)" if srv.proc and a.np else ""), file=out)
    load.table(rows, out)
    print(f"total: {len(res)} sent, {n200} x 200, {n429} x 429, {len(other)} other, "
          f"{len(lost)} lost; last answer {summary['last_answer_after_ramp_s']} s after the "
          f"ramp; drained {summary['drained_after_s']} s after it; server counts "
          f"{server_counts}", file=out)
    print(f"load average (1 min) {load.loadavg0} at the start, {load.loadavg1} at the end"
          + ("" if a.wait_idle <= 0 else f"; waited {load.idle_wait} s for idle CPUs"
             if load.idle_wait is not None else
             f"; the CPUs were not 95% idle within --wait-idle {a.wait_idle:g} s"), file=out)
    print(f"RSS MiB: coordinator {summary['rss_mib_after_warmup']} after warm-up, "
          f"{summary['rss_mib_after_drain']} after the drain"
          + (f"; all server processes {summary['all_rss_mib_after_warmup']} -> "
             f"{summary['all_rss_mib_after_drain']}" if load.rss0[1] else ""), file=out)
    if load.health_errors:
        print(f"/health failed {len(load.health_errors)} times: {load.health_errors[:5]}",
              file=out)
    if odd:
        print("server stderr (other than the access log):", file=out)
        for ln in odd[:20]:
            print("  " + ln, file=out)
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    if a.requests_log:
        with open(a.requests_log, "w") as f:
            for r in sorted(res, key=lambda r: r["t_send"]):
                o = {k: v for k, v in r.items() if k not in ("t_sched", "t_send", "t_done")}
                o["stage"] += 1
                o["sent"] = round(r["t_send"] - load.t0, 4)
                o["late"] = round(r["t_send"] - r["t_sched"], 4)
                o["took"] = round(r["t_done"] - r["t_send"], 4)
                f.write(json.dumps(o) + "\n")
    for f in failures:
        print("FAIL: " + f, file=out)
    print("ok" if not failures else f"{len(failures)} failure(s)", file=out)
    if a.json:
        print(json.dumps({"config": {k: v for k, v in vars(a).items() if k != "serve_argv"},
                          "server": srv.base, "stages": rows, "summary": summary,
                          "failures": failures}, default=str))
    if not failures and not keep_work and srv.log_path:
        for n in ("server.log", "server.out"):
            try:
                os.unlink(os.path.join(a.work, n))
            except OSError:
                pass
        try:
            os.rmdir(a.work)
        except OSError:
            pass
    elif failures and srv.log_path:
        log(f"the server's log: {srv.log_path}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
