#!/usr/bin/env python3
"""bench/plot.py — PNG plots of the CSVs that bench/sweep.py appends to.

    python3 bench/plot.py DIR [--sweep ID|all]

Draws, in DIR, from whichever CSVs are there:

  loss_curves.png            loss.csv: training loss against step, one curve per
                             DP x TP layout, and each curve's difference from
                             the 1x1 (or first) layout's
  train_tokens_per_s.png     train.csv: tokens/s against layout, one bar per
                             batch size, and the exposed communication's share
                             of the step
  allreduce_busbw.png        comm.csv: allreduce bus bandwidth against message
                             size (log-log), a colour per rank count, a line
                             style per method
  generate_tokens_per_s.png  generate.csv: prefill and decode tokens/s against
                             prompt length
  serve_latency.png          serve.csv: TTFT and TPOT (p50, p99) and tokens/s
                             against offered load, one series per balancing
                             policy and the naive server

Rows: by default those of the newest sweep in each file (the sweep_id of its
last row); --sweep ID picks another, --sweep all pools every sweep with the
host, model and device of the newest row. Repeated points (sweep.py
--repeat, or pooled sweeps) are drawn at their median. Titles name the
machine, model, device and launcher. matplotlib with the Agg backend (no
display): Debian's python3-matplotlib.
"""
import argparse
import csv
import io
import math
import os
import statistics
import sys
import textwrap
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

DPI = 100
POLICY_ORDER = ("round-robin", "random", "weighted", "least-outstanding", "naive")
METHOD_STYLE = {"mpi": "-", "comm": "--", "bucketed": ":"}


def read(path, sweep=None):
    """This plot's rows of a CSV, or [] when the file is absent or empty."""
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    last = rows[-1]
    if sweep == "all":
        key = ("host", "model", "device")
        return [r for r in rows if all(r[k] == last[k] for k in key)]
    sid = sweep or last["sweep_id"]
    return [r for r in rows if r["sweep_id"] == sid]


def num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def median_by(rows, key, value):
    """{key(row): median of value over those rows}, rows without a value skipped."""
    groups = defaultdict(list)
    for r in rows:
        v = num(r.get(value))
        if v is not None:
            groups[key(r)].append(v)
    return {k: statistics.median(v) for k, v in groups.items()}


def subtitle(rows):
    r = rows[-1]
    sweeps = len({x["sweep_id"] for x in rows})
    rounds = len({(x["sweep_id"], x["round"]) for x in rows})
    date = r["timestamp"][:10]
    s = (f"{r['host']} ({r['cpus']} CPUs), {r['model']} on {r['device']}, "
         f"{r['threads']} thread(s)/rank, {r['launcher']}, {date}")
    loads = [x for x in (num(r.get("load1")) for r in rows) if x is not None]
    if loads:
        lo, hi = f"{min(loads):.1f}", f"{max(loads):.1f}"
        s += f"; load avg {lo}" + (f"-{hi}" if hi != lo else "")
    if rounds > 1:
        s += f"; median of {rounds} runs" + (f" from {sweeps} sweeps" if sweeps > 1 else "")
    return s


def layout_key(r):
    return (int(r["dp"]), int(r["tp"]))


def layout_sort(k):
    dp, tp = k
    return (dp * tp, tp)


def layout_name(k):
    return f"{k[0]}x{k[1]}"


def ranks_label(k):
    n = k[0] * k[1]
    return f"{n} rank" + ("s" if n > 1 else "")


def save(fig, rows, title, path):
    sub = textwrap.fill(subtitle(rows), width=int(fig.get_figwidth() * 12.5))
    fig.suptitle(f"{title}\n{sub}", fontsize=10)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    plt.close(fig)
    try:  # a 128-colour palette: a third of the bytes, no visible change
        from PIL import Image  # Pillow comes with matplotlib
        Image.open(buf).convert("RGB").quantize(colors=128).save(tmp, optimize=True)
    except ImportError:
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
    os.replace(tmp, path)
    return path


def plain_log(a, axis="y"):
    """A log axis labelled 0.5, 2, 300 rather than 5x10^-1."""
    ax = a.yaxis if axis == "y" else a.xaxis
    f = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.set_major_formatter(f)
    ax.set_minor_formatter(FuncFormatter(
        lambda v, _pos: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))


def positive(v):
    return v if v is not None and v > 0 else float("nan")


def size_label(b, _pos=None):
    b = int(round(b))
    for unit, n in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= n and b % n == 0:
            return f"{b // n}{unit}"
    return str(b)


# ---------------------------------------------------------------- the plots

def plot_loss(rows, path):
    curves = defaultdict(dict)  # layout -> step -> median loss
    by_step = lambda r: (layout_key(r), int(r["step"]))  # noqa: E731
    for (lay, step), v in median_by(rows, by_step, "loss").items():
        curves[lay][step] = v
    vals = median_by(rows, by_step, "val_loss")
    layouts = sorted(curves, key=layout_sort)
    ref = (1, 1) if (1, 1) in curves else layouts[0]
    fig, (ax, dx) = plt.subplots(2, 1, figsize=(7, 5.4), sharex=True,
                                 gridspec_kw={"height_ratios": [2.2, 1]})
    for i, lay in enumerate(layouts):
        steps = sorted(curves[lay])
        c = f"C{i}"
        ax.plot(steps, [curves[lay][s] for s in steps], color=c, lw=1.4,
                ls=("-", "--", "-.", ":")[i % 4],
                label=f"DP{lay[0]} x TP{lay[1]} ({ranks_label(lay)})")
        vs = sorted((s, v) for (l2, s), v in vals.items() if l2 == lay)
        if vs:
            ax.plot([s for s, _ in vs], [v for _, v in vs], "o", color=c, ms=5, mfc="none")
        common = [s for s in steps if s in curves[ref]]
        dx.plot(common, [curves[lay][s] - curves[ref][s] for s in common], color=c, lw=1.2)
    r0 = rows[0]
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title(f"global batch {r0['batch']} x {r0['seq']} tokens, peak lr {r0['peak_lr']}; "
                 f"circles: validation loss", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    dx.set_xlabel("step")
    dx.set_ylabel(f"minus {layout_name(ref)}'s loss")
    dx.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    dx.grid(alpha=0.3)
    return save(fig, rows, "Loss curves across DP x TP layouts", path)


def plot_train(rows, path):
    tps = median_by(rows, lambda r: (layout_key(r), int(r["batch"])), "tokens_per_s")
    share = median_by(rows, lambda r: (layout_key(r), int(r["batch"])), "comm_share")
    layouts = sorted({k[0] for k in tps}, key=layout_sort)
    batches = sorted({k[1] for k in tps})
    fig, (ax, cx) = plt.subplots(1, 2, figsize=(9.5, 4), gridspec_kw={"width_ratios": [3, 2]})
    w = 0.8 / len(batches)
    for j, b in enumerate(batches):
        xs = [i + (j - (len(batches) - 1) / 2) * w for i in range(len(layouts))]
        ys = [tps.get((lay, b), float("nan")) for lay in layouts]
        bars = ax.bar(xs, ys, w, color=f"C{j}", label=f"batch {b} per DP rank")
        ax.bar_label(bars, [f"{y:,.0f}" if y == y else "" for y in ys], fontsize=7, rotation=90,
                     padding=2)
        cs = [100 * share.get((lay, b), float("nan")) for lay in layouts]
        cx.bar(xs, cs, w, color=f"C{j}")
    names = [f"{layout_name(k)}\n({ranks_label(k)})" for k in layouts]
    for a in (ax, cx):
        a.set_xticks(range(len(layouts)))
        a.set_xticklabels(names, fontsize=8)
        a.set_xlabel("layout DP x TP")
        a.grid(axis="y", alpha=0.3)
    ax.set_ylabel("tokens/s (all ranks)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)
    ax.legend(fontsize=8, loc="upper left", ncol=len(batches))
    ax.set_title(f"training step throughput, seq {rows[0]['seq']}", fontsize=9)
    cx.set_ylabel("exposed communication, % of step")
    cx.set_title("time blocked in communication", fontsize=9)
    return save(fig, rows, "Training throughput against layout and batch", path)


def plot_comm(rows, path):
    rows_n = [r for r in rows if int(r["ranks"]) > 1]  # a group of one moves nothing
    if not rows_n:
        return None
    bw = median_by(rows_n, lambda r: (int(r["ranks"]), r["method"], int(r["bytes"])), "busbw_gbps")
    ranks = sorted({k[0] for k in bw})
    methods = [m for m in METHOD_STYLE if any(k[1] == m for k in bw)] + \
        sorted({k[1] for k in bw} - set(METHOD_STYLE))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, n in enumerate(ranks):
        for m in methods:
            pts = sorted((b, v) for (n2, m2, b), v in bw.items() if n2 == n and m2 == m and v > 0)
            if pts:
                ax.plot([b for b, _ in pts], [v for _, v in pts], color=f"C{i}",
                        ls=METHOD_STYLE.get(m, "-."), marker=".", lw=1.3, label=f"{n} ranks, {m}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(size_label))
    ax.set_xlabel("message size per rank (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title("float32 allreduce; mpi: MPI_Allreduce, comm: + average, "
                 "bucketed: DP training path", fontsize=8)
    plain_log(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=len(ranks))
    return save(fig, rows_n, "Allreduce bus bandwidth against message size", path)


def plot_generate(rows, path):
    pre = median_by(rows, lambda r: int(r["prompt_tokens"]), "prefill_tokens_per_s")
    dec = median_by(rows, lambda r: int(r["prompt_tokens"]), "decode_tokens_per_s")
    fig, (ax, dx) = plt.subplots(1, 2, figsize=(8.5, 3.8))
    for a, d, what in ((ax, pre, "prefill"), (dx, dec, "decode")):
        xs = sorted(d)
        a.plot(xs, [d[x] for x in xs], "o-", color="C0" if what == "prefill" else "C1")
        a.set_xlabel("prompt tokens")
        a.set_ylabel(f"{what} tokens/s")
        a.set_ylim(0, max(d.values()) * 1.15)
        a.grid(alpha=0.3)
    ax.set_title("prefill (the whole prompt at once)", fontsize=9)
    dx.set_title(f"decode, batch 1, {rows[0]['tokens']} steps over the KV cache", fontsize=9)
    return save(fig, rows, "Generation throughput against prompt length", path)


def rate_sort(r):
    return math.inf if r == "inf" else float(r)


def plot_serve(rows, path):
    keyf = lambda r: (r["policy"], r["rate"])  # noqa: E731
    stats = {m: median_by(rows, keyf, m) for m in
             ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "tokens_per_s")}
    rates = sorted({r["rate"] for r in rows}, key=rate_sort)
    policies = [p for p in POLICY_ORDER if any(r["policy"] == p for r in rows)] + \
        sorted({r["policy"] for r in rows} - set(POLICY_ORDER))
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    xs = range(len(rates))
    for i, pol in enumerate(policies):
        c = "0.45" if pol == "naive" else f"C{i}"
        for a, what in ((axes[0], "ttft"), (axes[1], "tpot")):
            for q, ls in (("p50", "-"), ("p99", "--")):
                d = stats[f"{what}_{q}_ms"]
                a.plot(xs, [positive(d.get((pol, r))) for r in rates], ls=ls, marker="o",
                       ms=3, color=c, label=pol if q == "p50" else None)
        d = stats["tokens_per_s"]
        axes[2].plot(xs, [positive(d.get((pol, r))) for r in rates], marker="o", ms=3,
                     color=c, label=pol)
    r0 = rows[0]
    for a, t in zip(axes, ("time to first token (ms)", "time per output token (ms)",
                           "generated tokens/s")):
        a.set_xticks(list(xs))
        a.set_xticklabels(["all at once" if r == "inf" else r for r in rates], fontsize=8)
        a.set_xlabel("offered load (requests/s, Poisson)")
        a.set_ylabel(t)
        a.grid(alpha=0.3)
    for a in axes[:2]:
        a.set_yscale("log")
        plain_log(a)
    axes[2].set_ylim(0, axes[2].get_ylim()[1] * 1.05)
    axes[2].yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    axes[0].set_title("solid p50, dashed p99", fontsize=9)
    axes[1].set_title(f"{r0['replicas']} replicas, {r0['requests']} requests per run", fontsize=9)
    axes[2].set_title(f"prompts {r0['prompt_tokens'].replace(' ', ':')}, "
                      f"outputs {r0['gen_tokens'].replace(' ', ':')} tokens", fontsize=9)
    axes[2].legend(fontsize=7)
    return save(fig, rows, "Serving latency against load per balancing policy", path)


PLOTTERS = (("loss", "loss_curves.png", plot_loss),
            ("train", "train_tokens_per_s.png", plot_train),
            ("comm", "allreduce_busbw.png", plot_comm),
            ("generate", "generate_tokens_per_s.png", plot_generate),
            ("serve", "serve_latency.png", plot_serve))


def plot_dir(d, only=None, sweep=None, out=None):
    """Draws every plot whose CSV has rows; returns the PNG paths written."""
    drawn = []
    for bench, png, fn in PLOTTERS:
        if only is not None and bench not in only:
            continue
        rows = read(os.path.join(d, f"{bench}.csv"), sweep)
        if rows:
            p = fn(rows, os.path.join(out or d, png))
            if p:
                drawn.append(p)
    return drawn


def main(argv=None):
    p = argparse.ArgumentParser(prog="plot.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", help="the --out directory of bench/sweep.py")
    p.add_argument("--sweep", help="a sweep_id, or all (default: each file's newest sweep)")
    p.add_argument("--out", help="write the PNGs here instead of DIR")
    a = p.parse_args(argv)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
    drawn = plot_dir(a.dir, sweep=a.sweep, out=a.out)
    for path in drawn:
        print(path)
    if not drawn:
        print(f"plot.py: no rows to plot in {a.dir}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
