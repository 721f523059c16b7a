"""Write README.md from nbs/index.ipynb (nbdev's `readme_nb`), or with --check fail if README.md is out of date.

nbdev 2's own `nbdev_readme` renders through quarto, which cannot be installed on machines without GitHub access;
this renders the same notebook to plain markdown: markdown cells as they are, code cells without `#|` directives,
and their text outputs. Cells marked `#| hide` are left out."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file. -->\n\n"

def _text(v): return ''.join(v) if isinstance(v, list) else v

def _terminal(text):
    "`text` as a terminal shows it: each line keeps what follows its last carriage return (progress bars redraw that way)"
    return '\n'.join(line.rsplit('\r', 1)[-1].rstrip() for line in text.split('\n'))

def _output(o):
    "Text of one output, or None for outputs a README cannot show"
    if o.get('output_type') == 'stream': return _terminal(_text(o['text']))
    data = o.get('data', {})
    return _text(data['text/plain']) if 'text/plain' in data and 'image/png' not in data else None

def render(nb_path):
    "Markdown for the notebook at `nb_path`"
    parts = []
    for cell in json.loads(Path(nb_path).read_text(encoding='utf-8'))['cells']:
        lines = _text(cell['source']).splitlines()
        directives = [l.strip() for l in lines if l.startswith('#|')]
        if any(d.split()[1:2] == ['hide'] for d in directives): continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
        if cell['cell_type'] == 'markdown': parts.append(body)
        elif cell['cell_type'] == 'code' and body:
            parts.append(f"```python\n{body}\n```")
            outs = [t for t in map(_output, cell.get('outputs', [])) if t]
            if outs: parts.append("```\n" + ''.join(outs).rstrip('\n') + "\n```")
    return HEADER + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    readme, md = root/'README.md', render(root/'nbs'/'index.ipynb')
    if '--check' in sys.argv[1:]:
        if readme.read_text(encoding='utf-8') != md:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python .ci/readme.py` and commit it.")
    else: readme.write_text(md, encoding='utf-8')
