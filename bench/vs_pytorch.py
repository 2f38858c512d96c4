#!/usr/bin/env python3
"""Training throughput: PyTorch eager (CPU, float32) vs llmpi.

Builds the same GPT-2 as tests/golden/make_fixtures.py (shared model code),
trains it with AdamW on random tokens, then runs
`<llmpi> bench train --model M --batch B --seq T --threads N --json`
and prints a comparison.

    python3 bench/vs_pytorch.py --model gpt2-mini --batch 8 --seq 256 --threads 2
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "golden"))
from make_fixtures import PRESETS, forward, init_params, param_groups  # noqa: E402


def flops_per_token(n_params, cfg, T):
    # Model FLOPs per token for one training step (forward + backward):
    #   6 * N_params            matmuls: 2 (fwd) + 4 (bwd) FLOPs per weight;
    #                           N_params counts ALL params incl. wte (tied head,
    #                           counted once) and wpe
    # + 6 * L * T * C           attention scores and weighted sum (QK^T and AV,
    #                           2*2*T*C fwd, x3 for fwd+bwd = 12*L*T*C), halved
    #                           because the mask is causal
    return 6 * n_params + 6 * cfg["L"] * T * cfg["C"]


def bench_pytorch(args, cfg):
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    params = init_params(cfg, torch.float32, gen)
    n_params = sum(p.numel() for p in params.values())
    opt = torch.optim.AdamW(param_groups(params, 0.1), lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    B, T = args.batch, args.seq
    total = args.warmup_steps + args.steps
    data = torch.randint(0, cfg["V"], (total, B, T + 1), generator=gen)
    sdpa = args.attn == "sdpa"

    times, losses = [], []
    for i in range(total):
        x, y = data[i, :, :-1], data[i, :, 1:]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, loss = forward(params, x, cfg, y, sdpa=sdpa)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= args.warmup_steps:
            times.append(dt)
        if args.verbose:
            tag = "warmup" if i < args.warmup_steps else "step"
            print(f"  pytorch {tag} {i}: loss {losses[-1]:.4f} {dt * 1e3:.1f} ms", flush=True)
    elapsed = sum(times)
    tok_s = B * T * len(times) / elapsed
    gflops = flops_per_token(n_params, cfg, T) * tok_s / 1e9
    return dict(tokens_per_s=tok_s, gflops=gflops, ms_per_step=1e3 * elapsed / len(times),
                n_params=n_params, loss_first=losses[0], loss_last=losses[-1])


def bench_llmpi(args):
    cmd = [args.llmpi, "bench", "train", "--model", args.model, "--batch", str(args.batch),
           "--seq", str(args.seq), "--threads", str(args.threads), "--json"]
    cmd += shlex.split(args.llmpi_extra)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    print("running:", " ".join(shlex.quote(c) for c in cmd), flush=True)
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.llmpi_timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {args.llmpi_timeout}s"
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout)[-2000:]
        return None, f"exit status {r.returncode}\n{tail}"
    try:
        res = json.loads(lines[-1])
        res = dict(res, tokens_per_s=float(res["tokens_per_s"]), gflops=float(res["gflops"]))
    except (ValueError, KeyError, TypeError) as e:
        return None, f"could not parse last stdout line as JSON ({e}): {lines[-1]!r}"
    return res, None


def main():
    ap = argparse.ArgumentParser(description="PyTorch vs llmpi training throughput (CPU)")
    ap.add_argument("--model", default="gpt2-mini", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--llmpi", default=os.path.join("build", "llmpi"), help="llmpi binary")
    ap.add_argument("--llmpi-extra", default="", help="extra args appended to the llmpi command")
    ap.add_argument("--llmpi-timeout", type=float, default=3600)
    ap.add_argument("--attn", choices=["sdpa", "manual"], default="sdpa",
                    help="PyTorch attention: fused scaled_dot_product_attention or explicit "
                         "masked softmax (as in the fixture)")
    ap.add_argument("--skip-pytorch", action="store_true")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    cfg = PRESETS[args.model]
    if args.seq > cfg["maxT"]:
        ap.error(f"--seq {args.seq} exceeds maxT={cfg['maxT']} of {args.model}")
    if args.steps < 1:
        ap.error("--steps must be >= 1")

    print(f"model {args.model} (L={cfg['L']} C={cfg['C']} NH={cfg['NH']} V={cfg['V']} "
          f"maxT={cfg['maxT']}), batch {args.batch}, seq {args.seq}, threads {args.threads}, "
          f"steps {args.steps} (+{args.warmup_steps} warmup)", flush=True)

    pt = None
    if not args.skip_pytorch:
        print(f"torch {torch.__version__}, attention={args.attn}", flush=True)
        pt = bench_pytorch(args, cfg)
        print(f"pytorch: {pt['tokens_per_s']:.1f} tokens/s, {pt['gflops']:.2f} GFLOP/s, "
              f"{pt['ms_per_step']:.1f} ms/step, params {pt['n_params']}, "
              f"loss {pt['loss_first']:.4f} -> {pt['loss_last']:.4f}", flush=True)

    ll, err = None, None
    if not (os.path.isfile(args.llmpi) and os.access(args.llmpi, os.X_OK)):
        err = f"llmpi binary not found at {args.llmpi} (build it first); PyTorch figure only"
        print(err)
    else:
        ll, err = bench_llmpi(args)
        if err:
            print(f"llmpi failed: {err}")

    print()
    print(f"{'impl':<8} {'tokens/s':>12} {'GFLOP/s':>10}")
    if pt:
        print(f"{'pytorch':<8} {pt['tokens_per_s']:>12.1f} {pt['gflops']:>10.2f}")
    if ll:
        print(f"{'llmpi':<8} {ll['tokens_per_s']:>12.1f} {ll['gflops']:>10.2f}")
    ratio = None
    if pt and ll:
        ratio = ll["tokens_per_s"] / pt["tokens_per_s"]
        print(f"ratio llmpi/pytorch (tokens/s): {ratio:.3f}")
    if args.json:
        print(json.dumps(dict(model=args.model, batch=args.batch, seq=args.seq,
                              threads=args.threads, pytorch=pt, llmpi=ll, ratio=ratio,
                              llmpi_error=err if not ll else None)))
    # a missing binary is fine (exit 0); a binary that fails is an error
    return 1 if (err and os.path.isfile(args.llmpi)) else 0


if __name__ == "__main__":
    sys.exit(main())
