"""Check the built site (_docs/) in a real browser: headless Chromium, driven by Playwright, on a local server.

Every page must load with no console error, no uncaught exception and no failed request; every internal link must
reach a page, and its anchor an element of that page; every image must load with a non-zero size; every code cell's
output that the build wrote must be on the page; every API page must have its show_doc entries, with an entry for
each public name of its module (functions and classes: a show_doc heading; the named objects, such as the criteria and
schedules: at least a mention in code). Screenshots of the home page, an API page and a tutorial go to
_docs/_screenshots/. Debian's chromium is installed with apt if /usr/bin/chromium is missing (as root).
Usage: python docs/check.py   (after python docs/build.py)"""
from __future__ import annotations
import argparse, functools, http.server, importlib, json, shutil, subprocess, sys, threading, time
from pathlib import Path
from urllib.parse import urldefrag

ROOT = Path(__file__).resolve().parent.parent
SITE, CHROMIUM = ROOT/'_docs', Path('/usr/bin/chromium')
SCREENSHOTS = {'index.html': 'home.png', 'sparsifier.html': 'api.png', 'tutorial.vision.html': 'tutorial.png'}
# Chromium as the machine's probe runs it: no sandbox as root, no background calls to Google's servers (offline)
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']

def ensure_chromium():
    "Debian's chromium, installed with apt if it isn't there"
    if CHROMIUM.exists(): return
    print('installing Debian chromium (apt-get install chromium)')
    subprocess.run(['apt-get', 'install', '-y', '-q', 'chromium'], check=True, stdout=subprocess.DEVNULL)

def serve(root:Path) -> http.server.ThreadingHTTPServer:
    "A quiet static server for `root` on a free local port, in a daemon thread"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

PAGE_FACTS = """() => ({
  ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.name),
  links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  images: [...document.querySelectorAll('article img')].map(i => ({src: i.src, ok: i.complete && i.naturalWidth > 0})),
  outputs: document.querySelectorAll('article .nb-output, article .showdoc').length,
  code: document.querySelectorAll('article pre > code').length,
  showdocs: document.querySelectorAll('article .showdoc').length,
  showdoc_tables: document.querySelectorAll('article .showdoc table').length,
  code_text: [...document.querySelectorAll('article code')].map(c => c.textContent),
})"""

def public_entries(module:str) -> tuple[list[str], list[str]]:
    "The public names of `module`: those show_doc documents (its functions and classes), and its other objects"
    from fasterai_lite._modidx import d
    syms, names = d['syms'].get(module, {}), importlib.import_module(module).__all__
    documented = [n for n in names if f'{module}.{n}' in syms]
    return documented, [n for n in names if n not in documented]

class Check:
    "Opens every page, records what is wrong with it"
    def __init__(self, base:str):
        self.base, self.facts, self.problems = base, {}, []

    def fail(self, page:str, what:str): self.problems.append(f'{page}: {what}')

    def visit(self, browser, entry:dict):
        page, errors = entry['page'], []
        tab = browser.new_page(viewport={'width': 1400, 'height': 1000})
        tab.on('console', lambda m: errors.append(f'console {m.type}: {m.text}') if m.type == 'error' else None)
        tab.on('pageerror', lambda e: errors.append(f'uncaught: {e}'))
        tab.on('requestfailed', lambda r: errors.append(f'request failed: {r.url} ({r.failure})'))
        tab.on('response', lambda r: errors.append(f'HTTP {r.status}: {r.url}') if r.status >= 400 else None)
        tab.goto(self.base + page, wait_until='networkidle')
        facts = self.facts[page] = tab.evaluate(PAGE_FACTS)
        for e in errors: self.fail(page, e)
        for img in facts['images']:
            if not img['ok']: self.fail(page, f"image did not load: {img['src']}")
        if facts['outputs'] != entry['outputs']:
            self.fail(page, f"{facts['outputs']} cell outputs on the page, the build wrote {entry['outputs']}")
        if facts['code'] < entry['code_cells']:
            self.fail(page, f"{facts['code']} code blocks on the page, the notebook shows {entry['code_cells']}")
        if entry['module']: self.api(page, entry['module'], facts)
        if page in SCREENSHOTS: tab.screenshot(path=str(SITE/'_screenshots'/SCREENSHOTS[page]))
        tab.close()

    def api(self, page:str, module:str, facts:dict):
        if not facts['showdocs'] or not facts['showdoc_tables']:
            self.fail(page, f"API page with {facts['showdocs']} show_doc entries and {facts['showdoc_tables']} tables")
        documented, objects = public_entries(module)
        for n in documented:
            if n.lower() not in facts['ids']: self.fail(page, f'no show_doc entry for {module}.{n}')
        for n in objects:
            if not any(n in c for c in facts['code_text']): self.fail(page, f'{module}.{n} is never named on its page')

    def links(self):
        "Every link within the site reaches a page that was checked, and an element of it when it has an anchor"
        n = 0
        for page, facts in self.facts.items():
            for href in facts['links']:
                url, anchor = urldefrag(href)
                if not url.startswith(self.base): continue
                n += 1
                target = url[len(self.base):] or 'index.html'
                if target not in self.facts:
                    if not (SITE/target).is_file(): self.fail(page, f'broken link: {href}')
                elif anchor and anchor not in self.facts[target]['ids']: self.fail(page, f'missing anchor: {href}')
        return n

def main():
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    manifest_path = SITE/'pages.json'
    if not manifest_path.exists(): sys.exit(f'{manifest_path} not found: build the site first (python docs/build.py)')
    ensure_chromium()
    from playwright.sync_api import sync_playwright
    manifest, start = json.loads(manifest_path.read_text()), time.perf_counter()
    shutil.rmtree(SITE/'_screenshots', ignore_errors=True); (SITE/'_screenshots').mkdir()
    server = serve(SITE)
    check = Check(f'http://127.0.0.1:{server.server_port}/')
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        for entry in manifest: check.visit(browser, entry)
        browser.close()
    server.shutdown()
    n_links = check.links()
    missing = [s for s in SCREENSHOTS.values() if not (SITE/'_screenshots'/s).exists()]
    if missing: check.problems.append(f'screenshots not taken (page not in the site): {missing}')
    n_api = sum(e['module'] is not None for e in manifest)
    print(f"{len(manifest)} pages ({n_api} API pages) checked in Chromium in {time.perf_counter() - start:.0f} s: "
          f"{n_links} internal links, {sum(len(f['images']) for f in check.facts.values())} images, "
          f"{sum(f['outputs'] for f in check.facts.values())} cell outputs; screenshots in {SITE.name}/_screenshots/")
    if check.problems:
        print(f'{len(check.problems)} problems:', *check.problems, sep='\n  ')
        sys.exit(1)

if __name__ == '__main__': main()
