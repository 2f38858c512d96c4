#!/usr/bin/env python3
"""bench/sweep.py — one entry point for llmpi's benchmarks: training
throughput over DP x TP layouts and batch sizes, loss curves per layout,
allreduce bus bandwidth per message size, generation, and serving latency
against load per balancing policy. One CSV row per run is appended under
--out, then bench/plot.py draws the PNGs (bench/README.md).

    python3 bench/sweep.py --llmpi build/llmpi --out runs/sweep
    python3 bench/sweep.py --llmpi build/llmpi --out /tmp/q --quick     # a test
    python3 bench/sweep.py --llmpi build/llmpi --out runs/sweep \\
        --launcher "srun --mpi=pmix -n {np}" --layouts 4x1,2x2,2x1 --model gpt2-mini --seq 256

Every run is `LAUNCHER llmpi ...` with {np} in LAUNCHER replaced by its
rank count (one-rank runs too). What runs (--only):

  train     `llmpi bench train --json` per layout and batch (batch per DP
            rank, as llmpi bench train: weak scaling)     -> train.csv
  loss      `llmpi train --metrics` per layout, the same global batch, data
            and seed, so the curves should overlap         -> loss.csv (a row per step)
  comm      `llmpi bench comm --json` per rank count (every size and
            method)                                        -> comm.csv (a row per size and method)
  generate  `llmpi bench generate --json` per prompt length (random
            weights of --model)                            -> generate.csv
  serve     `llmpi bench serve --json` per offered load, every policy and
            the naive server, on 1 + --replicas ranks      -> serve.csv (a row per policy)

CSV files are appended to (the header is written when a file is new; a file
whose header differs is an error). A run's rows are written together once
the run has succeeded and its numbers have been checked; a failing command
stops the sweep (or, with --keep-going, is reported at the end) with the
command and the end of its output, and writes nothing. At the end the sweep
reads back what it wrote (rows of its own sweep_id: counts, numbers finite
and positive, loss curves of all layouts within --loss-tol of each other)
and checks the plots; exit status 0 only if all of that holds, 1 otherwise,
2 on a usage error.
"""
import argparse
import csv
import io
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BENCHES = ("train", "loss", "comm", "generate", "serve")
POLICIES = ("round-robin", "random", "weighted", "least-outstanding")

# Defaults fit the `tiny` preset (context 64); --quick replaces the grid with
# the smallest one that still draws every plot. Options given explicitly win.
DEFAULTS = {
    "layouts": "1x1,2x1,1x2,2x2", "batches": "4,8", "seq": 64,
    "steps": 10, "warmup_steps": 2,
    "loss_steps": 50, "loss_batch": None, "loss_lr": 1e-3,
    "comm_ranks": None, "comm_max": "256M", "comm_iters": 50,
    "gen_prompts": "16,32", "gen_tokens": 16,
    "replicas": 2, "policies": "all", "rates": "2,8,inf", "requests": 32,
    "serve_prompt": "8:24", "serve_gen": "8:24",
}
QUICK = {
    "layouts": "1x1,2x1,1x2", "batches": "2,4", "steps": 3, "warmup_steps": 1,
    "loss_steps": 10, "comm_max": "256K", "comm_iters": 5,
    "gen_prompts": "8,16", "gen_tokens": 8, "rates": "8,inf", "requests": 8,
}

COMMON = ["sweep_id", "round", "timestamp", "host", "cpus", "load1", "launcher", "model", "device",
          "threads"]
COLUMNS = {
    "train": COMMON + [
        "dp", "tp", "ranks", "batch", "global_batch", "seq", "steps", "params", "vocab",
        "ms_per_step", "tokens_per_s", "tokens_per_s_per_rank", "gflops", "gflops_per_rank",
        "mfu", "peak_tflops", "comm_ms_per_step", "comm_share", "tp_comm_ms_per_step",
        "dp_comm_ms_per_step", "loss", "command"],
    "loss": COMMON + [
        "dp", "tp", "ranks", "batch", "seq", "peak_lr", "step", "loss", "val_loss", "grad_norm",
        "tokens_per_s", "ms", "command"],
    "comm": COMMON + [
        "ranks", "dp", "tp", "bytes", "method", "iters", "time_us", "algbw_gbps", "busbw_gbps",
        "command"],
    "generate": COMMON + [
        "params", "vocab", "context", "prompt_tokens", "tokens", "runs",
        "prefill_tokens_per_s", "decode_tokens_per_s", "decode_ms_per_token",
        "sample_ms_per_token", "decode_gflops", "command"],
    "serve": COMMON + [
        "replicas", "requests", "rate", "concurrency", "prompt_tokens", "gen_tokens", "policy",
        "naive", "completed", "errors", "tokens", "duration_s", "tokens_per_s",
        "requests_per_s", "mean_in_flight", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms",
        "tpot_p99_ms", "speedup_vs_naive", "per_replica", "slow_replica", "slow_step_s",
        "params", "vocab", "command"],
}
# Read back at the end: must be finite and > 0 (POSITIVE) or >= 0 (NONNEG).
POSITIVE = {
    "train": ["tokens_per_s", "ms_per_step"],
    "loss": ["loss"],
    "comm": ["time_us", "algbw_gbps"],  # and busbw_gbps where ranks > 1
    "generate": ["prefill_tokens_per_s", "decode_tokens_per_s"],
    "serve": ["tokens_per_s", "duration_s", "completed"],
}
NONNEG = {
    "train": ["comm_ms_per_step"],
    "loss": [],
    "comm": ["busbw_gbps"],
    "generate": ["decode_ms_per_token"],
    "serve": ["ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"],
}
PLOTS = {"loss": "loss_curves.png", "train": "train_tokens_per_s.png",
         "comm": "allreduce_busbw.png", "generate": "generate_tokens_per_s.png",
         "serve": "serve_latency.png"}


def log(*a, end="\n"):
    print(*a, file=sys.stderr, end=end, flush=True)


class SweepError(Exception):
    pass


class BenchError(SweepError):
    """A benchmark command failed or printed something unusable."""

    def __init__(self, what, argv, why, output=""):
        tail = "\n".join(("    " + l) for l in output.rstrip().splitlines()[-25:])
        super().__init__(f"{what}: `{shlex.join(argv)}` {why}"
                         + (f"; its output ends:\n{tail}" if tail else " (no output)"))


# ---------------------------------------------------------------- arguments

def csv_list(s, conv=str, what="list"):
    try:
        items = [conv(x.strip()) for x in s.split(",") if x.strip()]
    except ValueError as e:
        raise SweepError(f"bad {what} '{s}': {e}")
    if not items:
        raise SweepError(f"empty {what}")
    return items


def layout(s):
    dp, sep, tp = s.lower().partition("x")
    if not sep or not dp.isdigit() or not tp.isdigit() or int(dp) < 1 or int(tp) < 1:
        raise ValueError(f"'{s}' is not DPxTP (e.g. 2x1)")
    return int(dp), int(tp)


def rate(s):
    if s.lower() == "inf":
        return "inf"
    if float(s) <= 0:
        raise ValueError("rates are > 0 or inf")
    return s


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="sweep.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Grid defaults fit the tiny preset (context 64); --quick: "
               + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()))
    a = p.add_argument
    a("--llmpi", required=True, help="the llmpi binary")
    a("--out", required=True, help="results directory: *.csv appended, *.png redrawn")
    a("--launcher", default="mpirun -np {np} --oversubscribe",
      help="command prefix with {np} (default: %(default)s; under Slurm e.g. "
           "'srun --mpi=pmix -n {np}')")
    a("--only", default=",".join(BENCHES), help="subset of %(default)s")
    a("--quick", action="store_true", help="the smallest grid that covers every plot (tests)")
    a("--repeat", type=int, default=1, help="rounds over the whole grid (plots take medians)")
    a("--model", default="tiny", help="preset for every run (default %(default)s)")
    a("--device", default="cpu", help="cpu, cuda or auto (default %(default)s)")
    a("--threads", type=int, default=None,
      help="CPU threads per rank (default: $OMP_NUM_THREADS, else 1); also sets "
           "OMP_NUM_THREADS for the runs")
    a("--seq", type=int, help="tokens per sequence, train and loss (default 64)")
    g = p.add_argument_group("train (llmpi bench train)")
    g.add_argument("--layouts", help="DPxTP list, ranks = DP x TP (default 1x1,2x1,1x2,2x2)")
    g.add_argument("--batches", help="sequences per DP rank (default 4,8)")
    g.add_argument("--steps", type=int, help="timed steps per run (default 10)")
    g.add_argument("--warmup-steps", type=int, help="untimed steps first (default 2)")
    g.add_argument("--train-args", default="", help="more flags for llmpi bench train")
    g = p.add_argument_group("loss (llmpi train, per layout)")
    g.add_argument("--loss-steps", type=int, help="optimizer steps (default 50)")
    g.add_argument("--loss-batch", type=int,
                   help="global batch, the same for every layout (default: the smallest "
                        "multiple of every layout's DP that is >= 8)")
    g.add_argument("--loss-lr", type=float, help="peak learning rate (default 1e-3)")
    g.add_argument("--loss-tol", type=float, default=0.01,
                   help="the last step's loss of every layout must be within this relative "
                        "distance of 1x1's (or the first layout's; default %(default)s; 0: no "
                        "check)")
    g.add_argument("--data", help="training data (default: the repository's C sources, "
                                  "as bytes)")
    g.add_argument("--loss-args", default="", help="more flags for llmpi train")
    g = p.add_argument_group("comm (llmpi bench comm)")
    g.add_argument("--comm-ranks", help="rank counts (default: those of --layouts above 1)")
    g.add_argument("--comm-max", help="largest message (default 256M)")
    g.add_argument("--comm-iters", type=int, help="timed calls per size (default 50)")
    g.add_argument("--comm-args", default="", help="more flags for llmpi bench comm")
    g = p.add_argument_group("generate (llmpi bench generate)")
    g.add_argument("--gen-prompts", help="prompt lengths (default 16,32)")
    g.add_argument("--gen-tokens", type=int, help="decode steps (default 16)")
    g.add_argument("--gen-args", default="", help="more flags for llmpi bench generate")
    g = p.add_argument_group("serve (llmpi bench serve)")
    g.add_argument("--replicas", type=int, help="replica ranks; the run has 1 + this (default 2)")
    g.add_argument("--policies", help="balancing policies, or all (default all)")
    g.add_argument("--rates", help="offered loads, requests/s or inf (default 2,8,inf)")
    g.add_argument("--requests", type=int, help="requests per run (default 32)")
    g.add_argument("--serve-prompt", help="prompt lengths A:B (default 8:24)")
    g.add_argument("--serve-gen", help="output lengths A:B (default 8:24)")
    g.add_argument("--serve-args", default="",
                   help="more flags for llmpi bench serve (e.g. '--slow-replica 1:0.05')")
    g = p.add_argument_group("running")
    g.add_argument("--timeout", type=float, default=1800,
                   help="seconds per command (default %(default)s)")
    g.add_argument("--wait-idle", type=float, default=0, metavar="S",
                   help="before each run wait up to S seconds for the CPUs to be 95%% idle over "
                        "2 s (a shared machine; default 0: do not wait)")
    g.add_argument("--keep-going", action="store_true",
                   help="go on after a failed run (exit 1 at the end)")
    g.add_argument("--no-plot", action="store_true", help="do not draw the plots")
    g.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    args = p.parse_args(argv)
    for k, v in DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, QUICK.get(k, v) if args.quick else v)
    if args.threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        args.threads = int(env) if env.isdigit() and int(env) > 0 else 1
    try:
        args.only = csv_list(args.only, what="--only")
        bad = [b for b in args.only if b not in BENCHES]
        if bad:
            raise SweepError(f"--only: unknown {','.join(bad)} (choose from {','.join(BENCHES)})")
        args.layouts = csv_list(args.layouts, layout, "--layouts")
        args.batches = csv_list(args.batches, int, "--batches")
        args.gen_prompts = csv_list(args.gen_prompts, int, "--gen-prompts")
        args.rates = csv_list(args.rates, rate, "--rates")
        if args.comm_ranks is None:
            args.comm_ranks = sorted({d * t for d, t in args.layouts if d * t > 1}) or [2]
        else:
            args.comm_ranks = csv_list(args.comm_ranks, int, "--comm-ranks")
        if args.policies == "all":
            args.policy_list = list(POLICIES) if args.replicas >= 2 else ["least-outstanding"]
        else:
            args.policy_list = csv_list(args.policies, what="--policies")
            bad = [x for x in args.policy_list if x not in POLICIES]
            if bad:
                raise SweepError(f"--policies: unknown {','.join(bad)} "
                                 f"({','.join(POLICIES)} or all)")
        if "{np}" not in args.launcher:
            raise SweepError(f"--launcher '{args.launcher}' has no {{np}}")
        if args.loss_batch is None:
            lcm = 1
            for d, _ in args.layouts:
                lcm = lcm * d // math.gcd(lcm, d)
            args.loss_batch = lcm * -(-8 // lcm)
        bad = [f"{d}x{t}" for d, t in args.layouts if args.loss_batch % d]
        if bad and "loss" in args.only:
            raise SweepError(f"--loss-batch {args.loss_batch} is not a multiple of the DP "
                             f"of {','.join(bad)}")
        for k in ("repeat", "threads", "seq", "steps", "loss_steps", "comm_iters", "gen_tokens",
                  "replicas", "requests"):
            if getattr(args, k) < 1:
                raise SweepError(f"--{k.replace('_', '-')} must be >= 1")
    except SweepError as e:
        p.error(str(e))
    return args


# ---------------------------------------------------------------- CSV files

class CsvFile:
    """Appends rows; the header is written when the file is new and must
    match otherwise. Each append is one write of whole rows."""

    def __init__(self, path, columns):
        self.path, self.columns = path, columns
        if os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != columns:
                raise SweepError(
                    f"{path}: its header differs from the one this sweep.py writes; move the "
                    f"file aside or use another --out\n  file:  {','.join(header)}\n"
                    f"  wants: {','.join(columns)}")

    def append(self, rows):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            w.writeheader()
        for r in rows:
            w.writerow({k: cell(r.get(k)) for k in self.columns})
        with open(self.path, "a", newline="") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())

    def read(self):
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def cell(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, list):
        return " ".join(str(x) for x in v)
    return v


def finite(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------- the plan

class Job:
    def __init__(self, bench, label, np_, argv, parse, expect=None):
        self.bench, self.label, self.np, self.argv = bench, label, np_, argv
        self.parse, self.expect = parse, expect


def last_json(out):
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON object on stdout")


def need(obj, keys, nonneg=()):
    """obj's keys must be finite numbers, > 0 (keys) or >= 0 (nonneg)."""
    for k in list(keys) + list(nonneg):
        x = finite(obj.get(k))
        if x is None or x < 0 or (k in keys and x == 0):
            raise ValueError(f"{k} = {obj.get(k)!r}, expected a finite number "
                             f"{'> 0' if k in keys else '>= 0'}")


def plan(args, llmpi, work):
    L = shlex.split
    launch = lambda n: L(args.launcher.replace("{np}", str(n)))  # noqa: E731
    base = ["--model", args.model, "--device", args.device, "--threads", str(args.threads)]
    jobs = []

    if "train" in args.only:
        for dp, tp in args.layouts:
            for b in args.batches:
                n = dp * tp
                argv = launch(n) + [llmpi, "bench", "train", *base, "--tp", str(tp),
                                    "--batch", str(b), "--seq", str(args.seq),
                                    "--steps", str(args.steps), "--warmup-steps",
                                    str(args.warmup_steps), "--json", *L(args.train_args)]

                def parse(out, job, dp=dp, tp=tp, n=n, b=b):
                    j = last_json(out)
                    if (j.get("ranks"), j.get("dp"), j.get("tp")) != (n, dp, tp):
                        raise ValueError(
                            f"ran as ranks {j.get('ranks')} = DP {j.get('dp')} x TP {j.get('tp')}, "
                            f"not {n} = {dp} x {tp} (does the launcher start one MPI world? under "
                            f"Slurm: srun --mpi=pmix)")
                    need(j, ["tokens_per_s", "ms_per_step"], ["comm_ms_per_step"])
                    row = {k: j.get(k) for k in COLUMNS["train"] if k in j}
                    row.update(dp=dp, tp=tp, ranks=n, batch=b)
                    return [row], (f"{j['tokens_per_s']:,.0f} tokens/s, "
                                   f"{j['ms_per_step']:.1f} ms/step")
                jobs.append(Job("train", f"train dp{dp}xtp{tp} batch {b}", n, argv, parse, 1))

    if "loss" in args.only:
        data = args.data or os.path.join(work, "text.txt")
        for dp, tp in args.layouts:
            n = dp * tp
            metrics = os.path.join(work, f"metrics_dp{dp}xtp{tp}.jsonl")
            fifth = max(1, args.loss_steps // 5)
            argv = launch(n) + [llmpi, "train", *base, "--tp", str(tp), "--data", data,
                                "--steps", str(args.loss_steps), "--batch", str(args.loss_batch),
                                "--seq", str(args.seq), "--lr", repr(args.loss_lr),
                                "--warmup", str(min(10, fifth)), "--log-every", str(fifth),
                                "--metrics", metrics, *L(args.loss_args)]

            def parse(out, job, dp=dp, tp=tp, n=n, metrics=metrics):
                rows = []
                with open(metrics) as f:
                    for line in f:
                        if line.strip():
                            m = json.loads(line)
                            need(m, ["loss"])
                            rows.append(dict(
                                {k: m.get(k) for k in ("step", "loss", "val_loss", "grad_norm",
                                                       "tokens_per_s", "ms")},
                                dp=dp, tp=tp, ranks=n, batch=args.loss_batch, seq=args.seq,
                                peak_lr=args.loss_lr))
                os.remove(metrics)
                if not rows:
                    raise ValueError(f"{metrics}: no steps")
                last = rows[-1]
                val = last["val_loss"]
                return rows, (f"{len(rows)} steps, loss {rows[0]['loss']:.4f} -> {last['loss']:.4f}"
                              + (f", val {val:.4f}" if val is not None else ""))
            jobs.append(Job("loss", f"loss dp{dp}xtp{tp}", n, argv, parse,
                            None if args.loss_args else args.loss_steps))

    if "comm" in args.only:
        for n in args.comm_ranks:
            argv = launch(n) + [llmpi, "bench", "comm", "--max", args.comm_max,
                                "--iters", str(args.comm_iters), "--json", *L(args.comm_args)]

            def parse(out, job, n=n):
                j = last_json(out)
                if j.get("world") != n:
                    raise ValueError(f"ran as a world of {j.get('world')}, not {n} (does the "
                                     f"launcher start one MPI world?)")
                if j.get("verified") is not True:
                    raise ValueError("results not verified")
                rows = []
                for r in j.get("results", []):
                    need(r, ["time_us", "algbw_gbps"], ["busbw_gbps"])
                    if n > 1:
                        need(r, ["busbw_gbps"])
                    rows.append(dict(r, ranks=n, dp=j.get("dp"), tp=j.get("tp")))
                if not rows:
                    raise ValueError("no results")
                peak = max(rows, key=lambda r: r["busbw_gbps"])
                return rows, (f"{len(rows)} sizes x methods, busbw up to {peak['busbw_gbps']:.2f} "
                              f"GB/s ({peak['method']}, {peak['bytes']} B)")
            jobs.append(Job("comm", f"comm {n} ranks", n, argv, parse))

    if "generate" in args.only:
        for pt in args.gen_prompts:
            argv = launch(1) + [llmpi, "bench", "generate", *base, "--prompt-tokens", str(pt),
                                "--tokens", str(args.gen_tokens), "--json", *L(args.gen_args)]

            def parse(out, job):
                j = last_json(out)
                need(j, ["prefill_tokens_per_s", "decode_tokens_per_s"], ["decode_ms_per_token"])
                return [j], (f"prefill {j['prefill_tokens_per_s']:,.0f}, decode "
                             f"{j['decode_tokens_per_s']:,.1f} tokens/s")
            jobs.append(Job("generate", f"generate prompt {pt}", 1, argv, parse, 1))

    if "serve" in args.only:
        n = 1 + args.replicas
        naive = "--no-baseline" not in L(args.serve_args)
        for r in args.rates:
            argv = launch(n) + [llmpi, "bench", "serve", *base, "--requests", str(args.requests),
                                "--rate", r, "--prompt-tokens", args.serve_prompt,
                                "--gen-tokens", args.serve_gen]
            if args.policies != "all":
                argv += ["--balance", ",".join(args.policy_list)]
            argv += ["--json", *L(args.serve_args)]

            def parse(out, job):
                j = last_json(out)
                if j.get("replicas") != args.replicas:
                    raise ValueError(f"ran with {j.get('replicas')} replicas, not {args.replicas}")
                rows = []
                for run in j.get("runs", []):
                    need(run, ["tokens_per_s", "duration_s"],
                         ["ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms"])
                    if run.get("errors") or run.get("completed") != j.get("requests"):
                        raise ValueError(f"{run.get('policy')}: {run.get('completed')} of "
                                         f"{j.get('requests')} requests completed, "
                                         f"{run.get('errors')} errors")
                    rows.append(dict(run, **{k: j.get(k) for k in (
                        "replicas", "requests", "rate", "concurrency", "prompt_tokens",
                        "gen_tokens", "slow_replica", "slow_step_s", "params", "vocab")}))
                got = sorted(r["policy"] for r in rows)
                want = sorted(args.policy_list + (["naive"] if naive else []))
                if "--balance" not in args.serve_args and got != want:
                    raise ValueError(f"policies {got}, expected {want}")
                best = max((r for r in rows if not r.get("naive")), key=lambda r: r["tokens_per_s"],
                           default=rows[0] if rows else None)
                if best is None:
                    raise ValueError("no runs")
                return rows, (f"{len(rows)} runs, best {best['policy']} "
                              f"{best['tokens_per_s']:,.0f} tokens/s, "
                              f"TTFT p50 {best['ttft_p50_ms']:.1f} ms")
            jobs.append(Job("serve", f"serve rate {r} ({args.replicas} replicas)", n, argv, parse))
    return jobs


# ---------------------------------------------------------------- running

def run_job(job, env, timeout):
    """Runs the command in its own process group; returns stdout, or raises
    BenchError with the end of its output."""
    p = subprocess.Popen(job.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, start_new_session=True)
    out = err = ""
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                break
            try:
                out, err = p.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if isinstance(e, subprocess.TimeoutExpired):
            raise BenchError(job.label, job.argv, f"timed out after {timeout:g} s", out + err)
        raise
    if p.returncode != 0:
        raise BenchError(job.label, job.argv, f"failed (exit status {p.returncode})", out + err)
    return out, err


def cpu_times():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], sum(v)  # idle + iowait, all


def wait_idle(limit):
    """Waits until the CPUs were >= 95% idle over 2 s, at most `limit` s;
    returns the seconds waited, or None when they never were."""
    t0 = time.monotonic()
    try:
        idle0, all0 = cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0  # no /proc/stat: do not wait
    while True:
        time.sleep(2)
        idle1, all1 = cpu_times()
        if all1 > all0 and (idle1 - idle0) / (all1 - all0) >= 0.95:
            return time.monotonic() - t0
        if time.monotonic() - t0 >= limit:
            return None
        idle0, all0 = idle1, all1


def project_text(path):
    """The repository's own C sources, the same text the tests train on."""
    parts = []
    for d in ("src/common", "src/train", "kernels/cpu"):
        full = os.path.join(REPO, d)
        if os.path.isdir(full):
            parts += [os.path.join(full, f) for f in sorted(os.listdir(full)) if f.endswith(".c")]
    if not parts:
        raise SweepError(f"no C sources under {REPO} to train on: give --data")
    with open(path, "wb") as out:
        for f in parts:
            with open(f, "rb") as src:
                out.write(src.read())


def validate(args, files, sweep_id, written, jobs_ok):
    """Reads back this sweep's rows; returns a list of problems."""
    problems = []
    for bench, f in files.items():
        rows = [r for r in f.read() if r["sweep_id"] == sweep_id]
        if len(rows) != written[bench]:
            problems.append(f"{f.path}: {len(rows)} rows of sweep {sweep_id}, "
                            f"wrote {written[bench]}")
        for i, r in enumerate(rows):
            keys = POSITIVE[bench]
            if bench == "comm" and r["ranks"] != "1":
                keys = keys + ["busbw_gbps"]
            for k in keys + NONNEG[bench]:
                x = finite(r.get(k))
                if x is None or x < 0 or (k in keys and x == 0):
                    problems.append(f"{f.path}: row {i + 1} of the sweep: {k} = {r.get(k)!r}")
        if bench == "loss" and args.loss_tol > 0 and rows:
            for rnd in sorted({r["round"] for r in rows}):
                last = {}
                for r in rows:
                    if r["round"] == rnd:
                        last[f"{r['dp']}x{r['tp']}"] = (int(r["step"]), float(r["loss"]))
                ref_name = "1x1" if "1x1" in last else next(iter(last))
                ref_step, ref = last[ref_name]
                for name, (step, loss) in last.items():
                    if step != ref_step or abs(loss - ref) > args.loss_tol * abs(ref):
                        problems.append(
                            f"{f.path}: round {rnd}: layout {name} ends at step {step} with loss "
                            f"{loss:.6g}, layout {ref_name} at step {ref_step} with {ref:.6g} "
                            f"(--loss-tol {args.loss_tol}): the layouts do not train alike")
    for bench, n in jobs_ok.items():
        if n and written[bench] == 0:
            problems.append(f"{bench}: {n} runs succeeded but no rows were written")
    return problems


def main(argv=None):
    args = parse_args(argv)
    llmpi = os.path.abspath(args.llmpi)
    if not (os.path.isfile(llmpi) and os.access(llmpi, os.X_OK)):
        log(f"sweep.py: error: --llmpi {args.llmpi}: not an executable file")
        return 2
    plot = None
    if not args.no_plot and not args.dry_run:
        try:
            sys.path.insert(0, HERE)
            import plot  # noqa: F401  (bench/plot.py; needs matplotlib)
        except ImportError as e:
            log(f"sweep.py: error: cannot draw the plots ({e}): install matplotlib (Debian: "
                f"apt-get install python3-matplotlib, for {sys.executable}), or give --no-plot")
            return 2
    os.makedirs(args.out, exist_ok=True)
    host = socket.gethostname()
    sweep_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + f"-{host}-{os.getpid()}"
    common = {"sweep_id": sweep_id, "host": host, "cpus": os.cpu_count(),
              "launcher": os.path.basename(shlex.split(args.launcher)[0]),
              "model": args.model, "device": args.device, "threads": args.threads}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    env.setdefault("OMP_WAIT_POLICY", "passive")

    with tempfile.TemporaryDirectory(prefix="llmpi-sweep-") as work:
        jobs = plan(args, llmpi, work)
        if args.dry_run:
            for i, j in enumerate(jobs, 1):
                print(f"[{i}/{len(jobs)}] {j.label}: {shlex.join(j.argv)}")
            return 0
        try:
            files = {b: CsvFile(os.path.join(args.out, f"{b}.csv"), COLUMNS[b]) for b in args.only}
            if "loss" in args.only and not args.data:
                project_text(os.path.join(work, "text.txt"))
        except SweepError as e:
            log(f"sweep.py: error: {e}")
            return 1
        written = {b: 0 for b in args.only}
        jobs_ok = {b: 0 for b in args.only}
        failed = []
        total = len(jobs) * args.repeat
        t_start = time.time()
        log(f"sweep {sweep_id}: {total} run(s), {args.model} on {args.device}, "
            f"{args.threads} thread(s) per rank, launcher '{args.launcher}', out {args.out}")
        k = 0
        for rnd in range(1, args.repeat + 1):
            for job in jobs:
                k += 1
                note = ""
                if args.wait_idle > 0:
                    waited = wait_idle(args.wait_idle)
                    note = (f" [CPUs busy after {args.wait_idle:g} s, ran anyway]" if waited is None
                            else f" [waited {waited:.0f} s for idle CPUs]" if waited >= 3 else "")
                load1 = round(os.getloadavg()[0], 2)
                log(f"[{k}/{total}] {job.label} ... ", end="")
                t0 = time.monotonic()
                try:
                    out, err = run_job(job, env, args.timeout)
                    try:
                        rows, summary = job.parse(out, job)
                    except (ValueError, KeyError, TypeError, OSError) as e:
                        raise BenchError(job.label, job.argv, f"gave unusable output ({e})",
                                         out + err)
                    if job.expect is not None and len(rows) != job.expect:
                        raise BenchError(job.label, job.argv,
                                         f"gave {len(rows)} rows, expected {job.expect}", out + err)
                    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    cmd = shlex.join(job.argv)
                    full = [dict(r, **common, round=rnd, timestamp=stamp, load1=load1, command=cmd)
                            for r in rows]
                    files[job.bench].append(full)
                    written[job.bench] += len(full)
                    jobs_ok[job.bench] += 1
                    log(f"{summary} ({time.monotonic() - t0:.1f} s){note}")
                except BenchError as e:
                    log("FAILED")
                    log(f"sweep.py: error: {e}")
                    failed.append(job.label)
                    if not args.keep_going:
                        return 1
        log(f"sweep {sweep_id}: {k - len(failed)} of {total} runs in "
            f"{time.time() - t_start:.0f} s; rows: "
            + ", ".join(f"{b}.csv +{n}" for b, n in written.items()))

    problems = validate(args, files, sweep_id, written, jobs_ok)
    if plot is not None:
        try:
            drawn = plot.plot_dir(args.out, only=args.only)
        except Exception as e:  # a plotting bug must not hide the CSVs
            problems.append(f"plot.py failed: {type(e).__name__}: {e}")
            drawn = []
        for b in args.only:
            path = os.path.join(args.out, PLOTS[b])
            if not written[b]:
                continue
            if path not in drawn or not os.path.isfile(path) or os.path.getsize(path) < 1000 \
                    or os.path.getmtime(path) < t_start:
                problems.append(f"{path}: not drawn")
        for path in drawn:
            log(f"plot: {path} ({os.path.getsize(path) // 1024} KiB)")
    for p in problems:
        log(f"sweep.py: check failed: {p}")
    if failed:
        log(f"sweep.py: {len(failed)} run(s) failed: {'; '.join(failed)}")
    ok = not problems and not failed
    log(f"sweep {sweep_id}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
