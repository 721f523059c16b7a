"""Build the documentation site from the notebooks in nbs/ into _docs/, offline.

nbdev 2 renders its sites with Quarto, whose installers download from GitHub, which these machines can't reach. This
builds the same pages from what installs from PyPI (the `docs` extra):
1. nbdev's own notebook processors, the ones `nbdev_docs` runs before Quarto, turn each notebook into the cells of a
   page: the title cell becomes the frontmatter, `#| hide` cells go, every `show_doc` runs against the installed
   package;
2. this script writes each page as Markdown: `#| export` code as folded source, `show_doc` output as the API entry
   (signature, docstring, table of arguments), the saved outputs of the other cells (text, tables, plots) under
   their code;
3. MkDocs with the Material theme renders the site, with the navigation of nbs/sidebar.yml (the file `nbdev_docs`
   reads too), offline search, and links checked at build time (--strict).

Why not a notebook renderer (mkdocs-jupyter, myst-nb): neither knows nbdev's `#|` directives or `show_doc`, so the pages
would show hidden cells and `show_doc(...)` calls; nbdev's processors do that part, and their output is Markdown.
Usage: python docs/build.py"""
from __future__ import annotations
import argparse, base64, inspect, json, os, re, shutil, subprocess, sys, time
from pathlib import Path

import nbdev.showdoc, yaml
from fastcore.docments import docments
from nbdev.showdoc import BasicMarkdownRenderer

ROOT = Path(__file__).resolve().parent.parent
NBS, SITE, SRC = ROOT/'nbs', ROOT/'_docs', ROOT/'_proc'/'docs'
EXPORTS = {'export', 'exports', 'exporti'}

def directives(source:str) -> tuple[dict, str]:
    "The `#|` directives at the top of a cell's source (nbdev's `export`, Quarto's `echo: false`), and the code after them"
    lines, found = source.splitlines(), {}
    while lines and lines[0].startswith('#|'):
        key, _, value = lines.pop(0)[2:].strip().partition(':')
        found[key.strip().split()[0] if key.strip() else ''] = value.strip() or True
    return found, '\n'.join(lines).strip('\n')

def local_links(md:str, doc_url:str) -> str:
    "Links to this site's own pages (show_doc writes them against the published site) as links between the Markdown pages"
    return re.sub(re.escape(doc_url.rstrip('/') + '/') + r'([\w.-]+)\.html', r'\1.md', md)

def showdoc_md(md:str) -> str:
    "A show_doc entry, its heading anchored as nbdev's links expect it (`Class.method` -> `#class.method`)"
    md = re.sub(r'^(#{2,4}) (\S+)\s*$', lambda m: f'{m[1]} {m[2]} {{ #{m[2].lower()} }}', md, flags=re.M)
    return f'<div class="showdoc" markdown>\n\n{md.strip()}\n\n</div>'

def docments_table(sym) -> str:
    "The documented arguments of `sym` (and what it returns) as a Markdown table; empty if none is documented"
    def cell(v) -> str:
        if v is inspect.Parameter.empty or v is None: return ''
        text = v if isinstance(v, str) else inspect.formatannotation(v) if isinstance(v, type) else repr(v)
        return text.replace('|', '\\|').replace('\n', ' ')
    args = {n: d for n, d in docments(sym, full=True).items() if n != 'self'}
    if not any(d.docment for d in args.values()): return ''
    ret = args.pop('return', None)
    rows = [f'| `{n}` | {cell(d.anno)} | {"" if d.default is inspect.Parameter.empty else cell(repr(d.default))} '
            f'| {cell(d.docment)} |' for n, d in args.items()]
    if ret and (ret.docment or ret.anno is not inspect.Parameter.empty):
        rows.append(f'| **Returns** | {cell(ret.anno)} | | {cell(ret.docment)} |')
    return '\n'.join(['| | Type | Default | Details |', '|---|---|---|---|', *rows])

class ApiRenderer(BasicMarkdownRenderer):
    "nbdev's show_doc Markdown, with the documented arguments in a table rather than as comments in the signature"
    def _repr_markdown_(self):
        md = super()._repr_markdown_().replace('#LNone', '')  # nbdev's index has no line numbers for our symbols
        md = re.sub(r'```python\n.*?```', lambda m: re.sub(r' # [^\n]*', '', m[0]), md, count=1, flags=re.S)
        if inspect.isclass(self.sym): md = md.replace(f'def {self.nm}(', f'class {self.nm}(', 1)
        return md + '\n\n' + docments_table(self.sym)

def terminal_text(text:str) -> str:
    "A stream as a terminal shows it: each line from its last carriage return (how progress bars redraw), redrawn-away lines dropped"
    shown = [(line.rsplit('\r', 1)[-1].rstrip(), '\r' in line) for line in text.split('\n')]
    return '\n'.join(s for s, redrawn in shown if s or not redrawn).strip('\n')

def fence(code:str, lang:str, cls:str='') -> str:
    "A fenced code block that holds `code` whatever backticks it contains"
    ticks = '`' * max(3, 1 + max((len(t) for t in re.findall(r'`+', code)), default=0))
    return f'{ticks}{{.{lang}{" ." + cls if cls else ""}}}\n{code.rstrip()}\n{ticks}'

class Page:
    "One notebook written as one Markdown page, with its figures, counting the code and outputs it shows"
    def __init__(self, nb, doc_url:str, module:str|None):
        self.nb, self.doc_url, self.module, self.figures, self.outputs, self.code_cells = nb, doc_url, module, {}, 0, 0
        fm = nb.frontmatter_
        self.name, self.title = Path(fm['output-file']).stem, fm.get('title', '')
        self.description = fm.get('description', '')

    def figure(self, png_b64:str) -> str:
        path = f'{self.name}_files/figure-{len(self.figures) + 1}.png'
        self.figures[path] = base64.b64decode(png_b64)
        return f'![]({path}){{ .nb-figure .nb-output }}'

    def output(self, out, asis:bool) -> str:
        if out.output_type == 'stream':
            text = terminal_text(''.join(out.text))
            if not text: return ''  # all of it redrawn, or taken out by nbdev's `#| filter_stream`
            self.outputs += 1
            return fence(text, 'text', 'nb-output')
        self.outputs += 1
        if out.output_type == 'error': raise ValueError(f'{self.name}: a saved error output: {out.ename}: {out.evalue}')
        data = out.data
        if 'text/markdown' in data:
            md = ''.join(data['text/markdown']).strip()
            return showdoc_md(md) if asis else f'<div class="nb-output" markdown>\n\n{md}\n\n</div>'
        if 'image/png' in data: return self.figure(data['image/png'])
        if 'text/html' in data: return f'<div class="nb-output nb-html">\n{"".join(data["text/html"]).strip()}\n</div>'
        return fence(''.join(data.get('text/plain', '')), 'text', 'nb-output')

    def cell(self, cell) -> str:
        if cell.cell_type == 'markdown': return cell.source
        if cell.cell_type != 'code': return ''
        found, code = directives(cell.source)
        found.update({k.rstrip(':'): ' '.join(v) or True for k, v in cell.directives_.items()})  # those nbdev took out
        if found.get('include') == 'false': return ''
        parts = []
        if code and found.get('echo') != 'false':
            self.code_cells += 1
            if found.keys() & EXPORTS:
                parts.append('??? source "Source"\n\n' + '\n'.join('    ' + l for l in fence(code, 'python').splitlines()))
            else: parts.append(fence(code, 'python'))
        if found.get('output') != 'false':
            parts += [md for o in cell.get('outputs', []) if (md := self.output(o, found.get('output') == 'asis'))]
        return '\n\n'.join(parts)

    def markdown(self) -> str:
        head = f'# {self.title}\n\n' + (f'{self.description}\n{{ .lead }}\n\n' if self.description else '')
        body = '\n\n'.join(s for s in map(self.cell, self.nb.cells) if s.strip())
        return local_links(head + body + '\n', self.doc_url)

    def write(self, folder:Path) -> dict:
        "Write the page and its figures into `folder`; what the browser check expects to find on it"
        (folder/f'{self.name}.md').write_text(self.markdown())
        for path, png in self.figures.items(): (folder/path).parent.mkdir(exist_ok=True); (folder/path).write_bytes(png)
        return dict(page=f'{self.name}.html', title=self.title, module=self.module, outputs=self.outputs,
                    code_cells=self.code_cells)

def default_exp(nb, lib:str) -> str|None:
    "The module a notebook exports to (its `#| default_exp`), None for a tutorial"
    name = next((c.directives_['default_exp'][0] for c in nb.cells if 'default_exp' in c.directives_), None)
    return name and f'{lib}.{name}'

def render(nb_path:Path, doc_url:str, lib:str) -> Page:
    "The page of one notebook, after nbdev's processors, with show_doc rendering through `ApiRenderer`"
    from execnb.nbio import read_nb
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults
    cwd, renderer = os.getcwd(), nbdev.showdoc.BasicMarkdownRenderer
    os.chdir(nb_path.parent)  # show_doc cells run where the notebook runs
    nbdev.showdoc.BasicMarkdownRenderer = ApiRenderer
    try:
        nb = read_nb(nb_path)
        procs = [p for p in FilterDefaults().procs() if p.__name__ != 'rm_export']  # export cells show as source
        NBProcessor(nb=nb, procs=procs).process()
    finally: os.chdir(cwd); nbdev.showdoc.BasicMarkdownRenderer = renderer
    return Page(nb, doc_url, default_exp(nb, lib))

def sidebar_nav(entries, titles:dict) -> list:
    "nbs/sidebar.yml's contents as MkDocs' nav: notebooks by their page titles, sections as sections, links to sections of pages"
    def item(e):
        if isinstance(e, str): return {titles[e][0]: titles[e][1]}
        if 'section' in e: return {e['section']: sidebar_nav(e['contents'], titles)}
        nb, _, anchor = e['href'].partition('#')
        return {e['text']: titles[nb][1].replace('.md', '.html') + f'#{anchor}' * bool(anchor)}
    return [item(e) for e in entries]

def notebooks(entries) -> list[str]:
    "Every notebook nbs/sidebar.yml lists, in order, once"
    found = []
    for e in entries:
        for n in [e] if isinstance(e, str) else notebooks(e['contents']) if 'section' in e else [e['href'].partition('#')[0]]:
            if n not in found: found.append(n)
    return found

def mkdocs_config(nav:list, cfg) -> dict:
    return dict(
        site_name=cfg.title, site_description=cfg.description, docs_dir=str(SRC), site_dir=str(SITE),
        use_directory_urls=False, nav=nav, extra_css=['extra.css'],
        theme=dict(name='material', font=False,  # Material's default font comes from Google: not offline
                   palette=dict(primary='indigo', accent='indigo'),
                   features=['navigation.sections', 'navigation.top', 'toc.follow', 'content.code.copy']),
        plugins=['search'],
        markdown_extensions=['tables', 'attr_list', 'md_in_html', 'admonition', 'pymdownx.details',
                             {'pymdownx.highlight': {'use_pygments': True}}, 'pymdownx.superfences',
                             {'toc': {'permalink': True}}],
        validation=dict(omitted_files='warn', absolute_links='info', unrecognized_links='warn', anchors='warn'))

def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from nbdev.config import get_config
    cfg, start = get_config(), time.perf_counter()
    entries = yaml.safe_load((NBS/'sidebar.yml').read_text())['website']['sidebar']['contents']
    shutil.rmtree(SRC, ignore_errors=True); SRC.mkdir(parents=True)
    manifest, titles = [], {}
    for nb_name in notebooks(entries):
        page = render(NBS/nb_name, cfg.doc_host + cfg.doc_baseurl, cfg.lib_name)
        manifest.append(page.write(SRC))
        titles[nb_name] = ('Home' if page.name == 'index' else page.title.replace('`', ''), f'{page.name}.md')
    shutil.copy(ROOT/'docs'/'extra.css', SRC/'extra.css')
    config = SRC.parent/'mkdocs.yml'
    config.write_text(yaml.safe_dump(mkdocs_config(sidebar_nav(entries, titles), cfg), sort_keys=False))
    shutil.rmtree(SITE, ignore_errors=True)
    subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '--quiet', '-f', str(config)], check=True,
                   env={**os.environ, 'NO_MKDOCS_2_WARNING': '1'})
    (SITE/'pages.json').write_text(json.dumps(manifest, indent=1))
    print(f'{len(manifest)} pages built into {SITE.relative_to(ROOT)}/ in {time.perf_counter() - start:.0f} s')

if __name__ == '__main__': main()
