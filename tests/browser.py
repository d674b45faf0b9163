"""Open an HTML page in headless Chromium and report what rendered.

``render_page`` copies the page, adds two small scripts to the copy (one at the top of
``<head>`` that records JavaScript errors, one at the end of ``<body>`` that writes a JSON
summary into the DOM once the page has settled), runs ``chromium --dump-dom`` with a
virtual time budget and parses the summary back out. No extra dependency and no
network: the browser is started with every background service off.

Tests that need it import it by path (``tests`` is not a package)::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from browser import render_page
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
INSTALL_HINT = "Chromium is required for browser tests; install it with: apt-get install chromium"

_SUMMARY_ID = "__render_summary__"

_RECORDER = """<script>
window.__renderErrors = [];
window.addEventListener('error', function (e) {
  window.__renderErrors.push('error: ' + (e.message || (e.target && e.target.outerHTML) || String(e)));
}, true);
window.addEventListener('unhandledrejection', function (e) {
  var r = e.reason;
  window.__renderErrors.push('unhandled rejection: ' + (r && (r.stack || r.message) || String(r)));
});
(function () {
  var orig = console.error;
  console.error = function () {
    window.__renderErrors.push('console.error: ' + Array.prototype.map.call(arguments, String).join(' '));
    return orig.apply(console, arguments);
  };
})();
</script>"""

_SUMMARY = """<script>
window.addEventListener('load', function () {
  setTimeout(function () {
    var plots = Array.prototype.slice.call(document.querySelectorAll('.js-plotly-plot'));
    var summary = {
      errors: window.__renderErrors,
      title: document.title,
      plots: plots.length,
      plots_rendered: plots.filter(function (p) { return p.querySelector('.main-svg') !== null; }).length,
      main_svg: document.querySelectorAll('.main-svg').length,
      traces: plots.map(function (p) { return (p.data || []).length; }),
      plot_ids: plots.map(function (p) { return p.id; }),
      tables: Array.prototype.map.call(document.querySelectorAll('table'), function (t) { return t.innerText; }),
      has_plotly: typeof window.Plotly !== 'undefined'
    };
    var out = document.createElement('script');
    out.type = 'application/json';
    out.id = '__SUMMARY_ID__';
    out.textContent = JSON.stringify(summary);
    document.body.appendChild(out);
  }, __SETTLE_MS__);
});
</script>""".replace("__SUMMARY_ID__", _SUMMARY_ID)


class ChromiumMissing(RuntimeError):
    """No Chromium binary was found."""


def find_chromium() -> str:
    """Path of the Chromium binary.

    Raises:
        ChromiumMissing: With the install command in the message.
    """
    for candidate in CHROMIUM_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    raise ChromiumMissing(f"{INSTALL_HINT} (looked in {', '.join(CHROMIUM_PATHS)} and PATH)")


def _instrument(page: str, settle_ms: int) -> str:
    recorder, summary = _RECORDER, _SUMMARY.replace("__SETTLE_MS__", str(int(settle_ms)))
    head = re.search(r"<head[^>]*>", page, flags=re.IGNORECASE)
    page = page[: head.end()] + recorder + page[head.end():] if head else recorder + page
    end = page.lower().rfind("</body>")
    return page[:end] + summary + page[end:] if end >= 0 else page + summary


def render_page(html_path: str | os.PathLike, *, settle_ms: int = 1500, budget_ms: int = 10_000,
                timeout: float = 60.0) -> dict:
    """Load a page in headless Chromium and summarise the rendered DOM.

    Args:
        html_path: The page to open (it is not modified; an instrumented copy is used).
        settle_ms: Virtual milliseconds to wait after ``load`` before taking the summary.
        budget_ms: Chromium's ``--virtual-time-budget``.
        timeout: Wall-clock seconds before the browser is killed.

    Returns:
        ``errors`` (JavaScript errors, unhandled rejections, ``console.error`` calls),
        ``plots`` (number of ``.js-plotly-plot`` divs), ``plots_rendered`` (those holding
        a ``.main-svg``), ``main_svg``, ``traces`` (per plot), ``plot_ids``, ``tables``
        (text of each table), ``title``, ``has_plotly`` and ``stderr`` (browser log).

    Raises:
        ChromiumMissing: If no Chromium is installed.
        RuntimeError: If the browser fails or the summary never appears.
    """
    chromium = find_chromium()
    source = Path(html_path).resolve()
    with tempfile.TemporaryDirectory(prefix="render-") as tmp:
        copy = Path(tmp) / source.name
        copy.write_text(_instrument(source.read_text(encoding="utf-8"), settle_ms), encoding="utf-8")
        cmd = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio",
            f"--user-data-dir={Path(tmp) / 'profile'}", f"--virtual-time-budget={int(budget_ms)}",
            "--dump-dom", copy.as_uri(),
        ]
        env = dict(os.environ, HOME=tmp)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    match = re.search(rf'<script type="application/json" id="{_SUMMARY_ID}">(.*?)</script>', proc.stdout, re.DOTALL)
    if match is None:
        raise RuntimeError(
            f"no render summary in Chromium's DOM (exit {proc.returncode}); stderr tail:\n{proc.stderr[-2000:]}"
        )
    summary = json.loads(match.group(1))
    summary["stderr"] = proc.stderr
    return summary
