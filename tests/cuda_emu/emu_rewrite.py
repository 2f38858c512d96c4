#!/usr/bin/env python3
"""tests/cuda_emu/emu_rewrite.py SRC DST — a kernels/cuda/*.cu file as host C++
for the CUDA emulation (tests/cuda_emu/README.md).

Two CUDA-only constructs that no header can express are rewritten; every
other byte is copied unchanged, and the line count is kept, so that
`#line 1 "SRC"` at the top makes __FILE__/__LINE__, compiler diagnostics and
the emulator's barrier sites point at the real source:

  kernel<<<grid, block[, smem[, stream]]>>>(args...)
      -> emu_launch(kernel, emu::cfg("kernel", __FILE__, __LINE__, grid,
                    block[, smem[, stream]]), args...)
  extern __shared__ T name[];
      -> T *const name = static_cast<T *>(emu::dynamic_shared());

Comments and string literals are left alone. A `<<<` that cannot be parsed
is an error (exit status 1), never silently passed through.
"""
import re
import sys


def code_mask(s):
    """mask[i] is True where s[i] is code (not a comment or a literal)."""
    mask = [True] * len(s)
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if s.startswith("//", i):
            j = s.find("\n", i)
            j = n if j < 0 else j
        elif s.startswith("/*", i):
            j = s.find("*/", i + 2)
            if j < 0:
                raise ValueError("unterminated comment")
            j += 2
        elif c in "\"'":
            j = i + 1
            while j < n and s[j] != c:
                j += 2 if s[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            mask[k] = False
        i = j
    return mask


def line_of(s, i):
    return s.count("\n", 0, i) + 1


def match_forward(s, mask, i, where):
    """index of the bracket closing the one at s[i] (code positions only)"""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = []
    for j in range(i, len(s)):
        if not mask[j]:
            continue
        if s[j] in pairs:
            stack.append(pairs[s[j]])
        elif s[j] in ")]}":
            if not stack or stack.pop() != s[j]:
                raise ValueError("%s: unbalanced brackets (line %d)" % (where, line_of(s, j)))
            if not stack:
                return j
    raise ValueError(where + ": no closing bracket")


def rewrite_launches(s, path):
    mask = code_mask(s)
    out, pos, count = [], 0, 0
    for m in re.finditer(r"<<<", s):
        i = m.start()
        if not mask[i] or i < pos:
            continue
        where = "%s:%d" % (path, line_of(s, i))
        # the kernel expression before <<<: name, optionally with template args
        j = i
        while j > 0 and s[j - 1].isspace():
            j -= 1
        if j > 0 and s[j - 1] == ">":
            depth = 0
            while j > 0:
                j -= 1
                if s[j] == ">":
                    depth += 1
                elif s[j] == "<":
                    depth -= 1
                    if depth == 0:
                        break
            else:
                raise ValueError(where + ": unbalanced template arguments before <<<")
        while j > 0 and s[j - 1].isspace():
            j -= 1
        k = j
        while k > 0 and (s[k - 1].isalnum() or s[k - 1] in "_:"):
            k -= 1
        name = s[k:i]
        if not re.match(r"[A-Za-z_:]", name):
            raise ValueError(where + ": no kernel name before <<<")
        # the configuration, up to >>> outside any brackets
        depth, j = 0, i + 3
        while True:
            if j >= len(s):
                raise ValueError(where + ": no >>>")
            if mask[j]:
                if s[j] in "([{":
                    depth += 1
                elif s[j] in ")]}":
                    depth -= 1
                elif depth == 0 and s.startswith(">>>", j):
                    break
            j += 1
        cfg = s[i + 3 : j]
        a = j + 3
        while a < len(s) and s[a].isspace():
            a += 1
        if a >= len(s) or s[a] != "(":
            raise ValueError(where + ": no argument list after >>>")
        b = match_forward(s, mask, a, where)
        args = s[a + 1 : b]
        label = " ".join(name.split())
        head = 'emu_launch(%s, emu::cfg("%s", __FILE__, __LINE__, %s)' % (name, label, cfg)
        gap = s[j + 3 : a]  # whitespace (newlines) between >>> and (
        body = (", " + gap + args) if args.strip() else (gap + args)
        out.append(s[pos:k])
        out.append(head + body + ")")
        pos = b + 1
        count += 1
    out.append(s[pos:])
    return "".join(out), count


SHARED = re.compile(
    r"extern\s+__shared__\s+(?P<type>[^;\[\]]*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


def rewrite_shared(s):
    mask = code_mask(s)

    def repl(m):
        if not mask[m.start()]:
            return m.group(0)
        t = m.group("type").strip()
        bare = re.sub(r"(__align__|alignas)\s*\([^)]*\)", "", t).strip()
        text = "%s *const %s = static_cast<%s *>(emu::dynamic_shared());" % (
            t,
            m.group("name"),
            bare,
        )
        return text + "\n" * m.group(0).count("\n")

    return SHARED.subn(repl, s)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: emu_rewrite.py SRC DST")
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        s = f.read()
    try:
        t, _ = rewrite_shared(s)
        t, _ = rewrite_launches(t, src)
    except ValueError as e:
        sys.exit("emu_rewrite.py: %s" % e)
    if t.count("\n") != s.count("\n"):
        sys.exit("emu_rewrite.py: %s: the rewrite changed the line count" % src)
    mask = code_mask(t)
    left = [line_of(t, m.start()) for m in re.finditer(r"<<<|>>>", t) if mask[m.start()]]
    if left:
        sys.exit("emu_rewrite.py: %s:%d: a launch was not rewritten" % (src, left[0]))
    with open(dst, "w", encoding="utf-8") as f:
        f.write('#line 1 "%s"\n%s' % (src, t))


if __name__ == "__main__":
    main()
