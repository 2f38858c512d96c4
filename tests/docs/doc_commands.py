#!/usr/bin/env python3
"""tests/docs/doc_commands.py LLMPI SOURCE_DIR — the commands in the docs still work.

Every fenced ```sh block of README.md and docs/*.md is read, its commands
joined across backslash continuations, and each command checked:

  * `llmpi SUB ...` (also build*/llmpi, after `mpirun`/`srun` and VAR=value
    prefixes): SUB exists, and every --flag it uses is one that
    `llmpi SUB --help` documents (bench, convert... with their own
    subcommands likewise);
  * `python3 bench/X.py` / `python3 tests/...py`: the script exists and its
    --help documents every --flag used (not checked, with a note, when the
    script needs a Python module this machine lacks, e.g. torch);
  * `bash FILE`, `sbatch ... FILE`, `source FILE`: the file exists; sbatch's
    --export=ALL,NAME=... knobs are documented at the top of the script;
  * anything else (cmake, curl, h5dump, module...) is left to its own tool.

Blocks opened with ```sh run are also executed for real, in order, each in
a fresh scratch directory that looks like a checkout (jobs/, bench/, tests/,
docs/ point at SOURCE_DIR, build/llmpi at LLMPI, `llmpi` on PATH) holding a
small training text `text.txt`; they must exit 0 within their time limit.
Those are the cheap ones: a few seconds each on two cores.

Prints one line per problem (file:line: what) and exits 1 if any.
"""
import os
import re
import shlex
import subprocess
import sys
import tempfile

LLMPI, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
RUN_TIMEOUT = 300

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def blocks():
    """(file, line, info, [lines]) of every ```sh block."""
    files = [os.path.join(SRC, "README.md")] + sorted(
        os.path.join(SRC, "docs", f) for f in os.listdir(os.path.join(SRC, "docs"))
        if f.endswith(".md"))
    for path in files:
        rel = os.path.relpath(path, SRC)
        lines = open(path, encoding="utf-8").read().split("\n")
        i = 0
        while i < len(lines):
            m = re.match(r"^```(\S*)\s*(.*)$", lines[i])
            if not m:
                i += 1
                continue
            lang, rest = m.group(1), m.group(2).split()
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            i += 1
            if lang == "sh":
                yield rel, start + 1, rest, body


def commands(body):
    """(offset, words) of each command: continuations joined, comments and
    prompts dropped; a line that shlex cannot split is skipped."""
    out, cur, first = [], "", 0
    for k, line in enumerate(body):
        if not cur:
            first = k
        s = line.rstrip()
        if not cur and (s.lstrip().startswith("#") or not s.strip()):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        try:
            words = shlex.split(cur, comments=True)
        except ValueError:
            words = []
        cur = ""
        # a line of several commands: check each
        part = []
        for w in words + [";"]:
            if w in (";", "&&", "||", "&", "|"):
                if part:
                    out.append((first, part))
                part = []
            else:
                part.append(w)
    return out


help_cache = {}


def help_text(argv):
    key = tuple(argv)
    if key not in help_cache:
        r = subprocess.run(argv + ["--help"], capture_output=True, encoding="utf-8",
                           errors="replace", timeout=60)
        help_cache[key] = (r.returncode, r.stdout + r.stderr)
    return help_cache[key]


def flags(words):
    return [w.split("=")[0] for w in words if re.match(r"^--[a-z][a-z0-9-]*", w)]


# llmpi subcommands that have subcommands of their own (llmpi bench train ...)
NESTED = {"bench"}


def check_llmpi(where, words):
    if len(words) < 2 or words[1].startswith("-"):
        return  # `llmpi --help`
    argv = [LLMPI, words[1]]
    rest = words[2:]
    if words[1] in NESTED and rest and not rest[0].startswith("-"):
        argv.append(rest[0])
        rest = rest[1:]
    rc, text = help_text(argv)
    if rc != 0:
        problem(where, f"`llmpi {' '.join(argv[1:])} --help` fails: {text.strip()[:120]}")
        return
    for f in flags(rest):
        if f == "--help":
            continue
        if not re.search(re.escape(f) + r"(?![a-z0-9-])", text):
            problem(where, f"`llmpi {' '.join(argv[1:])}`: {f} is not in its --help")


def check_python(where, words):
    script = next((w for w in words[1:] if w.endswith(".py")), None)
    if not script:
        return
    path = os.path.join(SRC, script)
    if not os.path.isfile(path):
        problem(where, f"{script} does not exist")
        return
    rest = words[words.index(script) + 1:]
    if not flags(rest):
        return
    rc, text = help_text([sys.executable, path])
    if rc != 0 and "ModuleNotFoundError" in text:
        print(f"{where}: {script}'s flags not checked: {text.strip().splitlines()[-1]}")
        return
    if rc != 0:
        problem(where, f"`{script} --help` fails: {text.strip()[:120]}")
        return
    for f in flags(rest):
        if not re.search(re.escape(f) + r"(?![a-z0-9-])", text):
            problem(where, f"{script}: {f} is not in its --help")


def check_file(where, path):
    if "<" in path or "$" in path or path.startswith("."):
        return  # a placeholder, or made on the way (.devdeps/)
    if not os.path.exists(os.path.join(SRC, path)):
        problem(where, f"{path} does not exist")


def check_sbatch(where, words):
    script = next((w for w in words[1:] if w.endswith(".sbatch")), None)
    if not script:
        return
    check_file(where, script)
    path = os.path.join(SRC, script)
    if not os.path.isfile(path):
        return
    header = "".join(l for l in open(path) if l.startswith("#"))
    for w in words:
        if w.startswith("--export="):
            for kv in w[len("--export="):].split(","):
                name = kv.split("=")[0]
                if name not in ("ALL", "NONE") and not re.search(r"\b" + name + r"\b", header):
                    problem(where, f"{script}: knob {name} is not documented at its top")


def strip_prefixes(words):
    """Drop VAR=value, env, timeout N, mpirun/srun and their options."""
    i = 0
    while i < len(words):
        w = words[i]
        if re.match(r"^[A-Z_][A-Z0-9_]*=", w) or w in ("env", "time", "exec"):
            i += 1
        elif w in ("mpirun", "mpiexec", "srun"):
            i += 1
            while i < len(words) and words[i].startswith("-"):
                opt = words[i]
                i += 1
                # options with a separate value
                if "=" not in opt and opt in ("-np", "-n", "-N", "-x", "--mca", "-c",
                                               "--mpi", "--ntasks", "--map-by", "--bind-to"):
                    i += 2 if opt == "--mca" else 1
        else:
            break
    return words[i:]


def check(where, words):
    words = strip_prefixes(words)
    if not words:
        return
    prog = words[0]
    if re.match(r"^(\S*/)?llmpi$", prog):
        check_llmpi(where, words)
    elif prog in ("python3", "python"):
        check_python(where, words)
    elif prog == "sbatch":
        check_sbatch(where, words)
    elif prog in ("bash", "source", "."):
        if len(words) > 1 and not words[1].startswith("-"):
            check_file(where, words[1])


def run_block(where, body):
    with tempfile.TemporaryDirectory() as d:
        for name in ("jobs", "bench", "tests", "docs", "src", "kernels"):
            os.symlink(os.path.join(SRC, name), os.path.join(d, name))
        os.mkdir(os.path.join(d, "build"))
        os.symlink(LLMPI, os.path.join(d, "build", "llmpi"))
        with open(os.path.join(d, "text.txt"), "w") as t:
            for sub in ("src/common", "kernels/cpu"):
                for f in sorted(os.listdir(os.path.join(SRC, sub))):
                    if f.endswith(".c"):
                        t.write(open(os.path.join(SRC, sub, f)).read())
        env = dict(os.environ, PATH=os.path.join(d, "build") + os.pathsep + os.environ["PATH"])
        script = "set -eo pipefail\n" + "\n".join(body) + "\n"
        try:
            r = subprocess.run(["bash", "-c", script], cwd=d, env=env, capture_output=True,
                               encoding="utf-8", errors="replace", timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            problem(where, f"the block did not finish within {RUN_TIMEOUT} s")
            return
        if r.returncode != 0:
            tail = (r.stdout + r.stderr).strip().split("\n")[-15:]
            problem(where, f"the block exits {r.returncode}:\n    " + "\n    ".join(tail))


def main():
    n_cmds = n_runs = 0
    for rel, line, rest, body in blocks():
        for off, words in commands(body):
            n_cmds += 1
            check(f"{rel}:{line + off}", words)
        if "run" in rest:
            n_runs += 1
            print(f"running {rel}:{line}", flush=True)
            run_block(f"{rel}:{line}", body)
    for p in problems:
        print(p)
    print(f"doc commands: {n_cmds} checked, {n_runs} blocks run, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
