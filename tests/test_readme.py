"""The README runs as written, section by section: the Python blocks of each `## ` section in order, in a fresh
interpreter of its own (so that each section runs on its own, as a reader copies it), each printed output compared
with the output block that the README shows under it (the loss, accuracy and time columns of fastai's log masked)."""
import json, re, subprocess, sys, pytest
from helpers import ROOT, docs_script

README = ROOT/'README.md'

RUNNER = r'''
import ast, contextlib, io, json, sys
env, outs = {}, []
for src in json.load(sys.stdin):
    tree = ast.parse(src)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tree, '<README.md>', 'exec'), env)
        if last is not None:  # shown as a notebook shows a cell's last expression
            value = eval(compile(ast.Expression(last.value), '<README.md>', 'eval'), env)
            if value is not None: print(repr(value))
    outs.append(out.getvalue())
print(json.dumps(outs))
'''

def blocks(text:str) -> list[tuple[str, str|None]]:
    "Each ```python block of `text`, with the plain ``` output block right after it, if any"
    found = re.findall(r"```(\w*)\n(.*?)```", text, flags=re.S)
    return [(src, found[i + 1][1] if i + 1 < len(found) and found[i + 1][0] == '' else None)
            for i, (lang, src) in enumerate(found) if lang == 'python']

terminal_text = docs_script('build').terminal_text  # the docs show streams the same way
NOISY = {'train_loss', 'valid_loss', 'accuracy', 'time'}  # fastai's log columns that move with float rounding and the clock

def normalized(text:str) -> list[str]:
    "Lines as a terminal ends up showing them, blank lines dropped, the noisy columns of fastai's training log masked"
    out, header = [], None
    for line in terminal_text(text).split('\n'):
        cells = line.split()
        if not cells: continue
        if cells[0] == 'epoch': header = cells
        elif header and len(cells) == len(header) and cells[0].isdigit():
            line = ' '.join('~' if h in NOISY else c for h, c in zip(header, cells))
        else: header = None
        out.append(line)
    return out

def sections(text:str) -> dict[str, str]:
    "The README's `## ` sections by heading"
    parts = re.split(r'^## ', text, flags=re.M)[1:]
    return {part.split('\n', 1)[0]: part for part in parts}

README_SECTIONS = {h: pairs for h, part in sections(README.read_text(encoding='utf-8')).items() if (pairs := blocks(part))}

def test_the_readme_has_its_examples():
    assert list(README_SECTIONS) == ['A first look', 'Smaller and faster, on your own images']
    assert sum(len(p) for p in README_SECTIONS.values()) >= 8, "the README's Python examples were not found"

@pytest.mark.parametrize('heading', list(README_SECTIONS))
def test_each_readme_section_runs_on_its_own_and_prints_what_it_shows(heading):
    pairs = README_SECTIONS[heading]
    r = subprocess.run([sys.executable, '-c', RUNNER], input=json.dumps([s for s, _ in pairs]), capture_output=True,
                       text=True, timeout=900, cwd=README.parent)
    assert r.returncode == 0, r.stderr[-3000:]
    printed = json.loads(r.stdout.strip().splitlines()[-1])
    for (src, shown), got in zip(pairs, printed):
        if shown is not None: assert normalized(got) == normalized(shown), f"README block\n{src}\nprinted\n{got}\nnot\n{shown}"
