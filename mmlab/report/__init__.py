"""Share a study with anyone: one self-contained HTML file that opens offline, anywhere.

    import mmlab
    mmlab.report.write("notebooks/06_test_time_scaling.ipynb", "06.html")  # the notebook
    mmlab.report.write("study.bundle.jsonl.gz", "study.html")             # a bundle alone
    mmlab.report.write(None, "study.html", tag="my-study")                # the log's calls
    lab.report("study.html")                                              # this lab's tag

(CLI: ``mmlab report SOURCE -o OUT.html``, ``mmlab report --tag NAME -o OUT.html``.)

The file holds the notebook as its reader should see it (markdown, code folded, tables,
interactive figures, widgets as static pictures) or, for a bundle or a tag, summary figures;
a header saying what the study is and how to reproduce it; and a call browser over every
call: sortable, filterable, searchable over prompts, reasoning and answers, a detail pane
per call, a link per call (``#call=<id>``), figures whose points list their calls.

It needs no server, no kernel, no network and no second file: plotly.js is inside once, the
calls gzip-compressed. Everything from the study is untrusted and escaped or sanitised, and
the page's Content-Security-Policy runs only its own two scripts: opening a stranger's report
is safe. No API key, local path or user name is written into it.

The package's parts: `build` (what goes in a report; its header; `write`), `calls` (the
call table from a bundle or the log), `notebook` (an .ipynb's cells), `widgetstate` (widgets
from their saved state), `figures` (the summary figures), `page` (the HTML, the embedded
script, styles and plotly.js), `sanitize` (escaping, the HTML allow-list, scrubbing).
"""

from __future__ import annotations

from .build import Written, write

__all__ = ["Written", "write"]
