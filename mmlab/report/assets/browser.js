/* mmlab report: draws the figures and runs the call browser. No framework, no network.
 *
 * Safety: every string from the study reaches the page through textContent, a text node or
 * an input's value — never innerHTML. The page's Content-Security-Policy runs this script
 * and plotly.js only (by hash).
 *
 * Data: #mm-figures (plotly JSON); #mm-calls, the table, and #mm-texts, the messages,
 * reasoning and answers (gzip + base64 JSON each, inflated with the browser's own
 * DecompressionStream); #mm-plotly, plotly.js kept as data until the table is up.
 * Deep links: #call=<id>. window.mmlabReport: timings and a small API for tests.
 */
(function () {
  "use strict";
  var ROW = 26;          // row height (px): the table draws only the rows in view
  var OVERSCAN = 8;
  var started = performance.now();

  function $(sel, root) { return (root || document).querySelector(sel); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function readJSON(id) { var n = document.getElementById(id); return n ? JSON.parse(n.textContent) : null; }

  var api = { marks: {}, total: 0, startedMs: started, browserMs: null, textsMs: null, readyMs: null, figuresMs: null, errors: [] };
  window.mmlabReport = api;

  // --- figures ---------------------------------------------------------------------------
  function loadPlotly() {
    // plotly.js is in the page as data; run it now (the page's policy allows it by hash)
    var src = document.querySelector('script[type="text/plain"]#mm-plotly');
    if (!window.Plotly && src) {
      var s = document.createElement("script");
      s.textContent = src.textContent;
      src.remove();
      document.head.appendChild(s);
    }
  }
  function drawFigures() {
    loadPlotly();
    var figs = readJSON("mm-figures") || [];
    var nodes = document.querySelectorAll(".mm-fig");
    var jobs = [];
    if (!window.Plotly) return Promise.resolve();
    nodes.forEach(function (div) {
      var spec = figs[Number(div.getAttribute("data-fig"))];
      if (!spec) return;
      var layout = Object.assign({}, spec.layout || {});
      layout.autosize = true;
      delete layout.width;
      if (!layout.height) layout.height = 420;
      var config = { responsive: true, displaylogo: false };
      jobs.push(Promise.resolve(Plotly.newPlot(div, spec.data || [], layout, config)).then(function () {
        div.on("plotly_click", function (ev) { linkFromFigure(ev, div); });
      }));
    });
    return Promise.all(jobs);
  }

  // --- calls: inflate ------------------------------------------------------------------------
  function base64Bytes(text) {
    if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
    var bin = atob(text);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  // #mm-calls holds the table (small: the browser is usable at once), #mm-texts the
  // messages, reasoning and answers (most of the bytes: inflated while the table is in use)
  function inflate(id) {
    var node = document.getElementById(id);
    if (!node) return Promise.resolve(null);
    var bytes = base64Bytes(node.textContent.trim());
    node.textContent = "";  // the page keeps one copy of the data, not two
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Response(stream).text().then(function (text) {
      api.marks[id + "-inflated"] = performance.now();
      var data = JSON.parse(text);
      api.marks[id + "-parsed"] = performance.now();
      return data;
    });
  }

  // --- state ---------------------------------------------------------------------------------
  var S = {
    data: null, n: 0, cols: [], byName: {}, view: [], index: new Map(),
    sort: { col: null, dir: 1 }, filters: {}, query: "",
    hay: null, hayDone: 0, lastQ: "", lastHits: null, selected: -1, fromFigure: null,
    texts: false,
  };

  function cellText(col, v) {
    if (v === null || v === undefined) return "—";
    if (col.kind === "num" && typeof v === "number") {
      if (col.param) return String(v);  // a parameter as it was sent
      if (col.name === "cost_usd") return v === 0 ? "0" : v.toPrecision(3);
      if (Number.isInteger(v)) return v.toLocaleString("en-US");
      return Math.abs(v) >= 100 ? v.toFixed(0) : String(Number(v.toPrecision(3)));
    }
    return String(v);
  }

  // --- filters -------------------------------------------------------------------------------
  // numbers: 5  =5  !=5  >5  >=5  <5  <=5  10..200 (inclusive), several terms all hold;
  // text: a substring (any case), =exact, !=exact; "—" (or =—) is "no value".
  function compile(col, text) {
    text = (text || "").trim();
    if (!text) return null;
    if (col.kind === "num") {
      var tests = text.split(/\s+/).map(function (term) {
        if (term === "—" || term === "=—") return function (v) { return v === null || v === undefined; };
        var m = term.match(/^(-?[\d.eE+-]+)\.\.(-?[\d.eE+-]+)$/);
        if (m) { var a = Number(m[1]), b = Number(m[2]); return function (v) { return v !== null && v >= a && v <= b; }; }
        m = term.match(/^(>=|<=|!=|=|>|<)?(.+)$/);
        var x = Number(m[2]), op = m[1] || "=";
        if (Number.isNaN(x)) return function () { return false; };
        return {
          "=": function (v) { return v === x; }, "!=": function (v) { return v !== x; },
          ">": function (v) { return v !== null && v > x; }, ">=": function (v) { return v !== null && v >= x; },
          "<": function (v) { return v !== null && v < x; }, "<=": function (v) { return v !== null && v <= x; },
        }[op];
      });
      return function (v) { if (v === undefined) v = null; for (var i = 0; i < tests.length; i++) if (!tests[i](v)) return false; return true; };
    }
    var not = text.indexOf("!=") === 0;
    var exact = not || text.charAt(0) === "=";
    var want = (not ? text.slice(2) : exact ? text.slice(1) : text).toLowerCase();
    if (want === "—") return function (v) { return (v === null || v === undefined) !== not; };
    return function (v) {
      var s = v === null || v === undefined ? "" : String(v).toLowerCase();
      var hit = exact ? s === want : s.indexOf(want) !== -1;
      return hit !== not;
    };
  }

  function haystack(i) {
    var d = S.data, parts = [];
    if (!S.texts) {
      box.append(el("p", "mm-hint", "Loading the messages, reasoning and answer…"));
      renderRows(true);
      return;
    }
    var msgs = d.messages[i] || [];
    for (var j = 0; j < msgs.length; j++) parts.push(msgs[j][1]);
    parts.push(d.reasoning[i] || "", d.answer[i] || "");
    return parts.join("\n").toLowerCase();
  }
  function buildHay(limit) {
    if (!S.hay) S.hay = new Array(S.n);
    var end = Math.min(S.n, limit);
    for (; S.hayDone < end; S.hayDone++) S.hay[S.hayDone] = haystack(S.hayDone);
  }
  function buildHayIdle() {
    if (S.hayDone >= S.n) return;
    buildHay(S.hayDone + 500);
    setTimeout(buildHayIdle, 0);
  }

  function searchHits(q) {
    buildHay(S.n);
    var hits = new Uint8Array(S.n), prev = null;
    if (S.lastHits && S.lastQ && q.indexOf(S.lastQ) === 0) prev = S.lastHits;  // narrowing
    for (var i = 0; i < S.n; i++) {
      if (prev && !prev[i]) continue;
      if (S.hay[i].indexOf(q) !== -1) hits[i] = 1;
    }
    S.lastQ = q; S.lastHits = hits;
    return hits;
  }

  function apply() {
    var t0 = performance.now();
    var preds = [];
    S.cols.forEach(function (c) {
      var p = compile(c, S.filters[c.name]);
      if (p) preds.push([S.data.values[c.name], p]);
    });
    var q = S.query.trim().toLowerCase();
    var waiting = q && !S.texts;  // searched before the texts are in: answered when they are
    var hits = q && !waiting ? searchHits(q) : null;
    var view = [];
    outer: for (var i = 0; i < S.n && !waiting; i++) {
      if (hits && !hits[i]) continue;
      for (var k = 0; k < preds.length; k++) if (!preds[k][1](preds[k][0][i])) continue outer;
      view.push(i);
    }
    if (S.sort.col) {
      var vals = S.data.values[S.sort.col], dir = S.sort.dir;
      view.sort(function (a, b) {
        var x = vals[a], y = vals[b];
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * dir;
      });
    }
    S.view = view;
    render();
    return performance.now() - t0;
  }

  // --- the table -----------------------------------------------------------------------------
  var ui = {};
  function widthOf(c) {
    if (c.name === "model" || c.name === "served_model") return 190;
    if (c.name === "error" || c.name === "tag" || c.name === "origin") return 160;
    if (c.name === "prompt_id") return 96;
    return c.kind === "num" ? 96 : 120;
  }

  function buildBrowser(root) {
    root.textContent = "";
    var bar = el("div", "mm-toolbar");
    ui.search = el("input", "mm-search");
    ui.search.type = "search";
    ui.search.placeholder = "Search prompts, reasoning and answers";
    ui.search.setAttribute("aria-label", "search the calls");
    ui.count = el("span", "mm-count");
    ui.clear = el("button", "mm-clear", "Clear filters");
    ui.clear.type = "button";
    ui.link = el("span", "mm-linknote");
    bar.append(ui.search, ui.count, ui.clear, ui.link);
    var split = el("div", "mm-split");
    ui.wrap = el("div", "mm-table");
    ui.wrap.tabIndex = 0;
    var template = "44px " + S.cols.map(function (c) { return widthOf(c) + "px"; }).join(" ");
    ui.wrap.style.setProperty("--mm-cols", template);
    var head = el("div", "mm-head");
    var names = el("div", "mm-hrow");
    var filters = el("div", "mm-hrow mm-filters");
    names.append(el("div", "mm-hcell", "#"));
    filters.append(el("div", "mm-hcell"));
    ui.heads = {};
    ui.inputs = {};
    S.cols.forEach(function (c) {
      var h = el("button", "mm-hcell mm-sort" + (c.kind === "num" ? " mm-num" : ""), c.label);
      h.type = "button";
      h.title = c.name + (c.param ? " (a swept parameter)" : "") + " — click to sort";
      h.addEventListener("click", function () { sortBy(c.name); });
      ui.heads[c.name] = h;
      names.append(h);
      var box = el("div", "mm-hcell");
      var input = el("input", "mm-filter");
      input.placeholder = c.kind === "num" ? ">=, <, a..b" : "filter";
      input.setAttribute("aria-label", "filter " + c.label);
      input.setAttribute("data-col", c.name);
      var distinct = new Set(S.data.values[c.name]);
      if (distinct.size > 1 && distinct.size <= 40) {
        var list = el("datalist");
        list.id = "mm-dl-" + c.name.replace(/[^\w-]/g, "_");
        distinct.forEach(function (v) { var o = el("option"); o.value = "=" + (v === null ? "—" : String(v)); list.append(o); });
        box.append(list);
        input.setAttribute("list", list.id);
      }
      input.addEventListener("input", function () { S.filters[c.name] = input.value; S.fromFigure = null; schedule(); });
      ui.inputs[c.name] = input;
      box.append(input);
      filters.append(box);
    });
    head.append(names, filters);
    ui.body = el("div", "mm-body");
    ui.wrap.append(head, ui.body);
    ui.detail = el("aside", "mm-detail");
    ui.detail.append(el("p", "mm-hint", "Select a call to see its messages, reasoning and answer."));
    split.append(ui.wrap, ui.detail);
    // a small study gets a small table (the detail pane keeps room for a call)
    var fit = Math.max(360, Math.min(window.innerHeight * 0.7, 90 + S.n * ROW));
    ui.wrap.style.height = ui.detail.style.height = fit + "px";
    root.append(bar, split);
    ui.wrap.addEventListener("scroll", renderRows);
    ui.body.addEventListener("click", function (ev) {
      var row = ev.target.closest(".mm-row");
      if (row) select(Number(row.getAttribute("data-i")), false);
    });
    ui.wrap.addEventListener("keydown", onKey);
    ui.search.addEventListener("input", function () { S.query = ui.search.value; schedule(); });
    ui.clear.addEventListener("click", function () { clearFilters(); apply(); });
  }

  var pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    setTimeout(function () { pending = false; apply(); }, 0);
  }

  function clearFilters() {
    S.filters = {}; S.query = ""; S.fromFigure = null;
    ui.search.value = "";
    Object.keys(ui.inputs).forEach(function (k) { ui.inputs[k].value = ""; });
  }

  function sortBy(name) {
    if (S.sort.col !== name) S.sort = { col: name, dir: 1 };
    else if (S.sort.dir === 1) S.sort.dir = -1;
    else S.sort = { col: null, dir: 1 };
    Object.keys(ui.heads).forEach(function (k) {
      ui.heads[k].classList.toggle("mm-asc", S.sort.col === k && S.sort.dir === 1);
      ui.heads[k].classList.toggle("mm-desc", S.sort.col === k && S.sort.dir === -1);
    });
    apply();
  }

  function render() {
    ui.count.textContent = S.view.length.toLocaleString("en-US") + " of " + S.n.toLocaleString("en-US") + " calls";
    ui.body.style.height = Math.max(S.view.length * ROW, ROW) + "px";
    ui.link.textContent = "";
    if (S.fromFigure) {
      ui.link.append(document.createTextNode("from the figure “" + S.fromFigure.title + "”: " + S.fromFigure.text));
    }
    if (!S.view.length) {
      ui.body.textContent = "";
      var waiting = S.query.trim() && !S.texts;
      ui.body.append(el("div", "mm-none", waiting ? "Searching as soon as the texts are loaded…" : "No call matches."));
      return;
    }
    renderRows(true);
  }

  var drawn = [-1, -1];
  function renderRows(force) {
    var top = ui.wrap.scrollTop, height = ui.wrap.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    var last = Math.min(S.view.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    if (force !== true && first === drawn[0] && last === drawn[1]) return;
    drawn = [first, last];
    var frag = document.createDocumentFragment();
    for (var r = first; r < last; r++) {
      var i = S.view[r];
      var row = el("div", "mm-row" + (i === S.selected ? " mm-selected" : ""));
      row.style.top = (r * ROW) + "px";
      row.setAttribute("data-id", S.data.ids[i]);
      row.setAttribute("data-i", String(i));
      row.append(el("div", "mm-td mm-num mm-rownum", i + 1));
      for (var k = 0; k < S.cols.length; k++) {
        var c = S.cols[k], v = S.data.values[c.name][i];
        var cell = el("div", "mm-td" + (c.kind === "num" ? " mm-num" : ""), cellText(c, v));
        if (c.kind !== "num") cell.title = v === null || v === undefined ? "" : String(v);
        row.append(cell);
      }
      frag.append(row);
    }
    ui.body.textContent = "";
    ui.body.append(frag);
  }

  function onKey(ev) {
    if (ev.key !== "ArrowDown" && ev.key !== "ArrowUp") return;
    var at = S.view.indexOf(S.selected);
    var next = S.view[Math.max(0, Math.min(S.view.length - 1, at + (ev.key === "ArrowDown" ? 1 : -1)))];
    if (next !== undefined) { ev.preventDefault(); select(next, true); }
  }

  // --- the detail pane -----------------------------------------------------------------------
  function fact(dl, label, value) {
    if (value === null || value === undefined || value === "") return;
    dl.append(el("dt", null, label), el("dd", null, value));
  }
  function marked(text, q) {
    var pre = el("pre", "mm-text");
    if (!q) { pre.textContent = text; return pre; }
    var low = text.toLowerCase(), at = 0, count = 0;
    while (count < 500) {
      var j = low.indexOf(q, at);
      if (j === -1) break;
      pre.append(document.createTextNode(text.slice(at, j)), el("mark", null, text.slice(j, j + q.length)));
      at = j + q.length; count++;
    }
    pre.append(document.createTextNode(text.slice(at)));
    return pre;
  }

  function select(i, scroll) {
    S.selected = i;
    var d = S.data, id = d.ids[i], det = d.details[i] || {}, q = S.query.trim().toLowerCase();
    var v = function (name) { return d.values[name] ? d.values[name][i] : null; };
    var box = ui.detail;
    box.textContent = "";
    var head = el("div", "mm-detail-head");
    head.append(el("h3", null, "Call " + (i + 1)));
    var link = el("a", "mm-permalink", "link to this call");
    link.href = "#call=" + encodeURIComponent(id);
    head.append(link);
    box.append(head);
    var line = [v("prompt_id"), v("model"), v("provider"), v("finish_reason") && "finish " + v("finish_reason"),
      v("cost_usd") !== null && v("cost_usd") !== undefined && "$" + v("cost_usd")];
    box.append(el("p", "mm-callsum", line.filter(function (x) { return x; }).join(" · ")));
    if (!S.texts) {
      box.append(el("p", "mm-hint", "Loading the messages, reasoning and answer…"));
    } else {
      var msgs = d.messages[i] || [];
      if (msgs.length) box.append(el("h4", null, "Messages"));
      msgs.forEach(function (m) {
        var div = el("div", "mm-msg mm-role-" + (m[0] === "system" ? "system" : m[0] === "assistant" ? "assistant" : "user"));
        div.append(el("div", "mm-role", m[0]), marked(m[1], q));
        box.append(div);
      });
      var reasoning = d.reasoning[i] || "";
      var rt = v("reasoning_tokens");
      var fold = el("details", "mm-reasoning");
      fold.open = reasoning.length < 4000;
      fold.append(el("summary", null, "Reasoning — " + (rt === null || rt === undefined ? "?" : rt.toLocaleString("en-US")) +
        " tokens" + (reasoning ? "" : " (no text returned)")));
      if (reasoning) fold.append(marked(reasoning, q));
      box.append(fold);
      box.append(el("h4", null, "Answer"));
      box.append(marked(d.answer[i] || "", q));
    }
    box.append(el("h4", null, "Details"));
    var dl = el("dl", "mm-facts");
    S.cols.forEach(function (c) { fact(dl, c.label, v(c.name) === null ? null : cellText(c, v(c.name))); });
    ["endpoint", "sample", "cost_source", "price_ref", "spent_usd", "saved_usd", "native_finish_reason",
     "reasoning_mode", "generation_id", "notice", "retries", "error_type", "logged", "cache_key", "note"].forEach(function (k) {
      fact(dl, k.replace(/_/g, " "), det[k]);
    });
    if (det.created) fact(dl, "created", new Date(det.created * 1000).toISOString().replace(".000", ""));
    fact(dl, "parameters", det.params);
    fact(dl, "id", id);
    box.append(dl);
    box.scrollTop = 0;
    if (scroll) {
      var r = S.view.indexOf(i);
      if (r >= 0) {
        var top = r * ROW, h = ui.wrap.clientHeight - 60;
        if (top < ui.wrap.scrollTop || top > ui.wrap.scrollTop + h) ui.wrap.scrollTop = Math.max(0, top - h / 2);
      }
    }
    renderRows(true);
    if (location.hash !== "#call=" + encodeURIComponent(id)) history.replaceState(null, "", "#call=" + encodeURIComponent(id));
  }

  function openFromHash() {
    var m = location.hash.match(/^#call=(.+)$/);
    if (!m || !S.data) return false;
    var key;
    try { key = decodeURIComponent(m[1]); } catch (e) { return false; }  // a mangled link
    var i = S.index.get(key);
    if (i === undefined) return false;
    if (S.view.indexOf(i) === -1) { clearFilters(); apply(); }
    $("#calls").scrollIntoView();
    select(i, true);
    return true;
  }

  // --- figures → calls -----------------------------------------------------------------------
  function axisTitle(layout, axis) {
    var a = layout && layout[axis];
    var t = a && a.title;
    return (t && typeof t === "object" ? t.text : t) || "";
  }
  function inferClauses(pt, div) {
    var out = [], tr = pt.data || {}, seen = {};
    function add(col, value) {
      if (seen[col] || !S.byName[col] || value === undefined || value === null) return;
      var s = String(value);
      if (s === "nan" || s === "None" || s === "<NA>" || s === "") return;
      seen[col] = true;
      out.push([col, "=" + s]);
    }
    var tpl = Array.isArray(tr.hovertemplate) ? tr.hovertemplate[pt.pointNumber] : tr.hovertemplate;
    if (typeof tpl === "string") {
      var re = /([A-Za-z_][\w.]*)\s*[:=]?\s*%\{(customdata\[(\d+)\]|x|y)\}/g, m;
      while ((m = re.exec(tpl))) {
        var v = m[2] === "x" ? pt.x : m[2] === "y" ? pt.y : (Array.isArray(pt.customdata) ? pt.customdata[Number(m[3])] : undefined);
        add(m[1], v);
      }
    }
    var nm = typeof tr.name === "string" ? tr.name.match(/^([A-Za-z_][\w.]*)=(.+)$/) : null;
    if (nm) add(nm[1], nm[2]);
    var layout = div.layout || {};
    var xa = pt.xaxis ? pt.xaxis._name : "xaxis", ya = pt.yaxis ? pt.yaxis._name : "yaxis";
    add(axisTitle(layout, xa || "xaxis"), pt.x);
    add(axisTitle(layout, ya || "yaxis"), pt.y);
    return out;
  }
  function count(clauses) {
    var preds = clauses.map(function (c) { return [S.data.values[c[0]], compile(S.byName[c[0]], c[1])]; });
    var n = 0;
    for (var i = 0; i < S.n; i++) {
      var ok = true;
      for (var k = 0; k < preds.length && ok; k++) ok = preds[k][1](preds[k][0][i]);
      if (ok) n++;
    }
    return n;
  }
  function linkFromFigure(ev, div) {
    if (!S.data || !ev.points || !ev.points.length) return;
    var pt = ev.points[0], tr = pt.data || {}, clauses = [];
    var link = tr.meta && Array.isArray(tr.meta.link) ? tr.meta.link : null;
    if (link && Array.isArray(pt.customdata)) {
      link.forEach(function (col, j) { if (S.byName[col]) clauses.push([col, String(pt.customdata[j])]); });
    } else {
      clauses = inferClauses(pt, div);
      // a point of a figure drawn from another frame may name columns the calls lack a
      // value for (a prompt id of the study's own): drop the most specific until calls match
      while (clauses.length > 1 && count(clauses) === 0) {
        var drop = ["sample", "prompt_id"].map(function (n) { return clauses.findIndex(function (c) { return c[0] === n; }); })
          .filter(function (j) { return j >= 0; });
        clauses.splice(drop.length ? drop[0] : clauses.length - 1, 1);
      }
    }
    if (!clauses.length) return;
    clearFilters();
    clauses.forEach(function (c) { S.filters[c[0]] = c[1]; ui.inputs[c[0]].value = c[1]; });
    var t = div.layout && div.layout.title;
    var title = (t && typeof t === "object" ? t.text : t) || "figure";
    S.fromFigure = { title: String(title), text: clauses.map(function (c) {
      return c[0] + (c[1].charAt(0) === "=" ? " = " + c[1].slice(1) : " " + c[1]);
    }).join(", ") };
    apply();
    $("#calls").scrollIntoView({ block: "start" });
  }

  // --- start ---------------------------------------------------------------------------------
  function start() {
    var root = document.getElementById("mm-browser");
    function failed(err) {
      api.errors.push(String(err));
      if (root) { root.textContent = ""; root.append(el("p", "mm-none", "The calls could not be read: " + err)); }
    }
    var calls = inflate("mm-calls").then(function (data) {
      if (!data || !root) return;
      S.data = data; S.n = data.ids.length; S.cols = data.columns;
      S.cols.forEach(function (c) { S.byName[c.name] = c; });
      data.ids.forEach(function (id, i) { S.index.set(id, i); });
      api.total = S.n;
      if (!S.n) {
        root.textContent = "";
        root.append(el("p", "mm-none", root.getAttribute("data-empty") || "No calls."));
        return;
      }
      buildBrowser(root);
      apply();
      openFromHash();
    }).then(function () { api.browserMs = performance.now(); }, failed);
    function nextTask() { return new Promise(function (resolve) { setTimeout(resolve, 0); }); }
    // the texts and plotly.js come after this script in the file: wait until it is all read
    function parsed() {
      if (document.readyState !== "loading") return Promise.resolve();
      return new Promise(function (resolve) { document.addEventListener("DOMContentLoaded", resolve, { once: true }); });
    }
    var texts = calls.then(nextTask).then(parsed).then(function () {
      return S.n ? inflate("mm-texts") : null;
    }).then(function (t) {
      if (!t) return;
      S.data.messages = t.messages; S.data.reasoning = t.reasoning; S.data.answer = t.answer;
      S.texts = true;
      api.textsMs = performance.now();
      if (S.query.trim()) apply();
      if (S.selected >= 0) select(S.selected, false);
    }, failed);
    // then the figures: plotly.js runs for a while, and the texts (search) matter more
    var figures = texts.then(nextTask).then(drawFigures).then(function () { api.figuresMs = performance.now(); });
    api.ready = Promise.all([figures, texts]).then(function () {
      api.readyMs = performance.now();
      document.documentElement.setAttribute("data-ready", "1");
      if (S.n) setTimeout(buildHayIdle, 50);
      return api.readyMs;
    }, function (err) { api.errors.push(String(err)); throw err; });
  }
  window.addEventListener("hashchange", openFromHash);

  // for tests and the benchmark: set filters and a search in one go; returns the ms taken
  api.apply = function (filters, query) {
    Object.keys(ui.inputs || {}).forEach(function (k) { ui.inputs[k].value = ""; });
    S.filters = Object.assign({}, filters || {});
    Object.keys(S.filters).forEach(function (k) { if (ui.inputs[k]) ui.inputs[k].value = S.filters[k]; });
    S.query = query || ""; if (ui.search) ui.search.value = S.query;
    S.fromFigure = null;
    return apply();
  };
  api.visibleIds = function () { return S.view.map(function (i) { return S.data.ids[i]; }); };
  api.count = function () { return S.view.length; };
  api.hayReady = function () { return S.hayDone >= S.n; };

  start();
})();
