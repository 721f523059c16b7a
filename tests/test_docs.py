"The docs site's builder (docs/build.py) and the rules of its browser check (docs/check.py), without a browser."
import json
from helpers import ROOT, docs_script

build, check = docs_script('build'), docs_script('check')
DOC_URL = 'https://fasterai-lite.github.io/fasterai_lite'

def test_directives():
    assert build.directives('#| export\n#| echo: false\nx = 1') == ({'export': True, 'echo': 'false'}, 'x = 1')
    assert build.directives('x = 1  #| not a directive') == ({}, 'x = 1  #| not a directive')

def test_fence_outlasts_backticks():
    assert build.fence('print(1)', 'python') == '```{.python}\nprint(1)\n```'
    assert build.fence('s = """```"""', 'text', 'nb-output').startswith('````{.text .nb-output}\n')

def test_local_links():
    md = f'[`Pruner`]({DOC_URL}/prune.html#pruner) and [torch](https://pytorch.org/x.html)'
    assert build.local_links(md, DOC_URL) == '[`Pruner`](prune.md#pruner) and [torch](https://pytorch.org/x.html)'

def test_docments_table():
    def f(x:int|None=None,  # The x, or None
          y='a|b',          # A default with a pipe
    ) -> float:             # The result
        "Doc"
    table = build.docments_table(f).splitlines()
    assert table[:2] == ['| | Type | Default | Details |', '|---|---|---|---|']
    assert table[2] == "| `x` | int \\| None | None | The x, or None |"           # pipes escaped, the table holds
    assert table[3] == "| `y` | str | 'a\\|b' | A default with a pipe |"   # the type, from the default
    assert table[4] == '| **Returns** | float | | The result |'
    def g(x): "Nothing documented"
    assert build.docments_table(g) == ''

def _nb(cells) -> dict:
    def cell(i, kind, src, outputs=()):
        c = dict(cell_type=kind, id=f'cell{i}', metadata={}, source=src)
        if kind == 'code': c.update(execution_count=None, outputs=list(outputs))
        return c
    return dict(cells=[cell(i, *c) for i, c in enumerate(cells)], metadata={}, nbformat=4, nbformat_minor=5)

def test_page_honours_directives(tmp_path):
    "A notebook through nbdev's processors and the page writer: what shows, what doesn't, and what is counted"
    (tmp_path/'settings.ini').write_text((ROOT/'settings.ini').read_text())
    nbs = tmp_path/'nbs'; nbs.mkdir()
    stream = dict(output_type='stream', name='stdout', text=['hello\n'])
    nb = _nb([('code', '#| default_exp things'), ('markdown', '# Things\n\n> What they are.'),
              ('code', '#| hide\nsecret = 42'),
              ('code', '#| export\ndef twice(x:int, # A number\n) -> int:\n    "Twice `x`"\n    return 2 * x'),
              ('code', 'show_doc(twice)'),
              ('markdown', f'See [macs]({DOC_URL}/stats.html#macs).'),
              ('code', "print('hello')", [stream])])
    (nbs/'01_things.ipynb').write_text(json.dumps(nb))
    page = build.render(nbs/'01_things.ipynb', DOC_URL, 'mylib')
    md = page.markdown()
    assert (page.name, page.title, page.module) == ('things', 'Things', 'mylib.things')
    assert md.startswith('# Things\n\nWhat they are.\n{ .lead }')
    assert 'secret' not in md                                             # hidden
    assert '??? source "Source"\n\n    ```{.python}\n    def twice(' in md  # exported: folded source
    assert '<div class="showdoc" markdown>' in md and '### twice { #twice }' in md
    assert '| `x` | int |  | A number |' in md                            # show_doc's table
    assert 'show_doc(twice)' not in md                                     # its call is not shown
    assert '(stats.md#macs)' in md                                         # a link within the site
    assert '```{.text .nb-output}\nhello\n```' in md
    assert page.outputs == 2 and page.code_cells == 2                     # show_doc's output, print's; export, print

def _checker(facts:dict) -> object:
    c = check.Check('http://127.0.0.1:1/')
    c.facts = {p: {**dict(ids=[], links=[], code_text=[]), **f} for p, f in facts.items()}
    return c

def test_check_finds_broken_links_and_anchors():
    c = _checker({'a.html': dict(links=['http://127.0.0.1:1/b.html#there', 'http://127.0.0.1:1/b.html#gone',
                                        'http://127.0.0.1:1/nowhere.html', 'https://pytorch.org/docs']),
                  'b.html': dict(ids=['there'])})
    assert c.links() == 3   # the external link is not followed
    assert c.problems == ['a.html: missing anchor: http://127.0.0.1:1/b.html#gone',
                          'a.html: broken link: http://127.0.0.1:1/nowhere.html']

def test_check_wants_every_public_name():
    c = _checker({})
    facts = dict(ids=['macs'], showdocs=1, showdoc_tables=1, code_text=[])
    c.api('stats.html', 'fasterai_lite.stats', facts)
    assert 'stats.html: no show_doc entry for fasterai_lite.stats.layer_macs' in c.problems
    assert not any('.macs' in p for p in c.problems)
    c = _checker({})
    c.api('core.schedule.html', 'fasterai_lite.core.schedule', dict(ids=[], showdocs=0, showdoc_tables=0, code_text=['agp']))
    assert c.problems[0] == 'core.schedule.html: API page with 0 show_doc entries and 0 tables'
    assert 'core.schedule.html: fasterai_lite.core.schedule.one_cycle is never named on its page' in c.problems
    assert not any(p.endswith('.agp is never named on its page') for p in c.problems)

def test_sidebar_nav():
    entries = ['index.ipynb', {'section': 'Tutorials', 'contents': ['02_b.ipynb', {'text': 'Part of a', 'href': '01_a.ipynb#part'}]},
               {'section': 'API', 'contents': ['01_a.ipynb']}]
    titles = {'index.ipynb': ('Home', 'index.md'), '01_a.ipynb': ('A', 'a.md'), '02_b.ipynb': ('B', 'b.md')}
    assert build.notebooks(entries) == ['index.ipynb', '02_b.ipynb', '01_a.ipynb']   # each notebook once
    assert build.sidebar_nav(entries, titles) == [{'Home': 'index.md'}, {'Tutorials': [{'B': 'b.md'}, {'Part of a': 'a.html#part'}]},
                                                  {'API': [{'A': 'a.md'}]}]

def test_terminal_text():
    bar = '█\repoch  train_loss\n█\r\rEpoch 1/2 : |---| 0% [0/3]\rEpoch 1/2 :        \r\n0      0.5\n\nDone'
    assert build.terminal_text(bar) == 'epoch  train_loss\n0      0.5\n\nDone'   # the redrawn bar goes, the blank line stays
