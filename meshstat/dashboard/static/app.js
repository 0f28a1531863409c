// natsmesh dashboard: draws the report that comes with the page (#report),
// then polls api/graph (a meshstat.Report), as the service graph in SVG
// with a layered layout, plus tables. No libraries.
// What it shows is also in window.__natsmesh, for tests and scripts.
(function () {
  "use strict";

  var SVGNS = "http://www.w3.org/2000/svg";
  var NODE_W = 214, NODE_H = 88, COL_GAP = 150, ROW_GAP = 30, PAD = 24;
  var OUTSIDE = "(outside)";
  var COLOURS = { ok: "#1f9d55", warn: "#d98e04", bad: "#d64545", idle: "#9aa4b1" };

  var state = { services: [], edges: [], updated: null, at: null, error: null, polls: 0 };
  window.__natsmesh = state;

  function $(id) { return document.getElementById(id); }

  function el(name, attrs, text) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function html(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // Formatting, as natsmesh stat does it.
  function hasTraffic(g) { return g.requests > 0 || g.rps > 0; }
  function fmtRPS(g) { return hasTraffic(g) ? g.rps.toFixed(1) : "–"; }
  function fmtPct(g) {
    if (g.success === null || g.success === undefined) return "–";
    var s = (g.success * 100).toFixed(2) + "%";
    if (s === "100.00%" && g.errors > 0) s = "99.99%";
    return s;
  }
  function fmtMS(v, over) {
    if (v === null || v === undefined) return "–";
    var s;
    if (v >= 1000) s = (v / 1000).toFixed(1) + "s";
    else if (v >= 10) s = v.toFixed(0) + "ms";
    else if (v >= 1) s = v.toFixed(1) + "ms";
    else s = v.toFixed(2) + "ms";
    return (over ? ">" : "") + s;
  }
  function fmtMesh(m) {
    if (!m) return "";
    return Object.keys(m).sort().filter(function (k) { return m[k] > 0; })
      .map(function (k) { return k + "=" + m[k]; }).join(" ");
  }
  function health(g) {
    if (g.success === null || g.success === undefined) return "idle";
    if (g.success >= 0.995) return "ok";
    if (g.success >= 0.95) return "warn";
    return "bad";
  }

  // layout places services in layers (Sugiyama style): a service's layer is
  // one more than the deepest of its callers (cycles broken where the walk
  // finds them); an edge that spans several layers gets a waypoint in each
  // layer between, so it runs between the nodes and not behind them; then
  // each layer is ordered by the mean position of its callers, which keeps
  // edges short and crossings few. It sets x, y (and h) on every node and
  // l.via (waypoints) on every link.
  function layout(nodes, links) {
    var byId = {}, preds = {}, succs = {};
    function addNode(n) { byId[n.id] = n; preds[n.id] = []; succs[n.id] = []; }
    nodes.forEach(addNode);
    links.forEach(function (l) {
      if (l.from === l.to || !byId[l.from] || !byId[l.to]) return;
      preds[l.to].push(l.from); succs[l.from].push(l.to);
    });
    var layer = {}, visiting = {};
    function depth(id) {
      if (layer[id] !== undefined) return layer[id];
      if (visiting[id]) return -1; // a back edge: ignore it
      visiting[id] = true;
      var d = 0;
      preds[id].forEach(function (p) { var pd = depth(p); if (pd >= 0) d = Math.max(d, pd + 1); });
      visiting[id] = false;
      layer[id] = d;
      return d;
    }
    nodes.forEach(function (n) { depth(n.id); });
    // Services that call no one and that no one calls go below the rest
    // of the last column.
    var maxLayer = 0;
    nodes.forEach(function (n) { maxLayer = Math.max(maxLayer, layer[n.id]); });
    nodes.forEach(function (n) {
      n.alone = !preds[n.id].length && !succs[n.id].length;
      if (n.alone) layer[n.id] = maxLayer;
    });
    var all = nodes.slice();
    links.forEach(function (l) {
      l.via = [];
      if (!byId[l.from] || !byId[l.to]) return;
      var a = layer[l.from], b = layer[l.to];
      var prev = l.from;
      for (var k = a + 1; k < b; k++) {
        var d = { id: "~" + l.from + ">" + l.to + ":" + k, dummy: true };
        addNode(d);
        layer[d.id] = k;
        preds[d.id].push(prev);
        all.push(d);
        l.via.push(d);
        prev = d.id;
      }
    });
    var columns = [];
    all.forEach(function (n) {
      n.layer = layer[n.id];
      n.h = n.dummy ? 22 : NODE_H;
      (columns[n.layer] = columns[n.layer] || []).push(n);
    });
    var pos = {};
    function bary(n) {
      var ps = preds[n.id].filter(function (p) { return pos[p] !== undefined; });
      if (!ps.length) return Infinity;
      return ps.reduce(function (sum, p) { return sum + pos[p]; }, 0) / ps.length;
    }
    columns.forEach(function (col, ci) {
      if (!col) return;
      var keys = {};
      col.forEach(function (n) { keys[n.id] = n.alone ? Infinity : ci === 0 ? 0 : bary(n); });
      col.sort(function (a, b) {
        if (a.alone !== b.alone) return a.alone ? 1 : -1;
        if (keys[a.id] !== keys[b.id]) return keys[a.id] < keys[b.id] ? -1 : 1;
        if (a.dummy !== b.dummy) return a.dummy ? 1 : -1;
        return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
      });
      // Positions as fractions of the column, so columns of different
      // sizes compare.
      col.forEach(function (n, i) { pos[n.id] = (i + 0.5) / col.length; });
    });
    function colHeight(col) {
      return col.reduce(function (h, n) { return h + n.h; }, 0) + (col.length - 1) * ROW_GAP;
    }
    var tallest = 0;
    columns.forEach(function (col) { if (col) tallest = Math.max(tallest, colHeight(col)); });
    var height = PAD * 2 + tallest;
    columns.forEach(function (col, ci) {
      if (!col) return;
      var y = (height - colHeight(col)) / 2;
      col.forEach(function (n) {
        n.x = PAD + ci * (NODE_W + COL_GAP);
        n.y = y;
        y += n.h + ROW_GAP;
      });
    });
    return {
      width: PAD * 2 + columns.length * NODE_W + (columns.length - 1) * COL_GAP,
      height: Math.max(height, 160),
      byId: byId
    };
  }

  // graphModel turns the report into nodes and links; outside clients of a
  // gateway (caller "") become one "(outside)" node.
  function graphModel(rep) {
    var nodes = rep.services.map(function (s) { return { id: s.name, svc: s }; });
    var links = rep.edges.map(function (e) { return { from: e.caller, to: e.callee, g: e, edge: e }; });
    var called = {};
    rep.edges.forEach(function (e) { called[e.callee] = true; });
    var outside = false;
    rep.services.forEach(function (s) {
      (s.callers || []).forEach(function (c) {
        // Outside clients of a gateway, and NATS clients of a plain micro
        // service while they call it. A micro service cannot tell its
        // callers apart (all are caller ""), so when mesh callers' edges
        // reach it, its "" calls are theirs, not an outside client's.
        if (c.caller === "" && (s.kind === "bridge" || (hasTraffic(c) && !called[s.name]))) {
          outside = true;
          links.push({ from: OUTSIDE, to: s.name, g: c, edge: null });
        }
      });
    });
    if (outside) nodes.unshift({ id: OUTSIDE, svc: null });
    return { nodes: nodes, links: links };
  }

  function drawGraph(rep) {
    var svg = $("svg");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var m = graphModel(rep);
    if (!m.nodes.length) {
      svg.setAttribute("viewBox", "0 0 600 120");
      svg.setAttribute("width", 600);
      svg.appendChild(el("text", { x: 300, y: 64, "text-anchor": "middle", "class": "empty" },
        "No agents or gateways answered on $SRV.STATS yet."));
      return;
    }
    var L = layout(m.nodes, m.links);
    svg.setAttribute("viewBox", "0 0 " + L.width + " " + L.height);
    svg.setAttribute("width", L.width);
    svg.setAttribute("height", L.height);

    var defs = el("defs", {});
    Object.keys(COLOURS).forEach(function (k) {
      var mk = el("marker", { id: "arrow-" + k, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
        orient: "auto-start-reverse", markerUnits: "userSpaceOnUse" });
      mk.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: COLOURS[k] }));
      defs.appendChild(mk);
    });
    svg.appendChild(defs);

    // Spread the ends of the edges along each node's side, in the order of
    // the nodes (or waypoints) at their other ends, so they do not meet in
    // one point.
    var outs = {}, ins = {};
    m.links.forEach(function (l) {
      var a = L.byId[l.from], b = L.byId[l.to];
      if (!a || !b || b.layer <= a.layer) return;
      l.nextY = (l.via.length ? l.via[0] : b).y;
      l.prevY = (l.via.length ? l.via[l.via.length - 1] : a).y;
      (outs[l.from] = outs[l.from] || []).push(l);
      (ins[l.to] = ins[l.to] || []).push(l);
    });
    function spread(list, key, off) {
      list.sort(function (a, b) { return a[key] - b[key]; });
      list.forEach(function (l, i) { l[off] = (i + 1) / (list.length + 1); });
    }
    Object.keys(outs).forEach(function (k) { spread(outs[k], "nextY", "outOff"); });
    Object.keys(ins).forEach(function (k) { spread(ins[k], "prevY", "inOff"); });

    function curve(p, q) {
      var dx = Math.max(30, (q.x - p.x) / 2);
      return " C" + (p.x + dx) + "," + p.y + " " + (q.x - dx) + "," + q.y + " " + q.x + "," + q.y;
    }
    var edgeLayer = el("g", { "class": "edges" });
    var labelLayer = el("g", { "class": "labels" });
    var paths = [], pending = [];
    m.links.forEach(function (l) {
      var a = L.byId[l.from], b = L.byId[l.to];
      if (!a || !b) return;
      var h = health(l.g), colour = COLOURS[h];
      var d, lx, ly;
      if (b.layer > a.layer) {
        // Through the waypoints: into each at its left, out at its right.
        var pts = [{ x: a.x + NODE_W, y: a.y + NODE_H * (0.2 + 0.6 * l.outOff) }];
        l.via.forEach(function (w) {
          pts.push({ x: w.x, y: w.y + w.h / 2 }, { x: w.x + NODE_W, y: w.y + w.h / 2 });
        });
        pts.push({ x: b.x - 2, y: b.y + NODE_H * (0.2 + 0.6 * l.inOff) });
        d = "M" + pts[0].x + "," + pts[0].y;
        for (var i = 1; i < pts.length; i++) {
          d += (i % 2 === 1) ? curve(pts[i - 1], pts[i]) : " L" + pts[i].x + "," + pts[i].y;
        }
        // The label sits on the last curve, in the gap before the callee,
        // at its middle; over a waypoint when there is one.
        if (l.via.length) {
          var w = l.via[l.via.length - 1];
          lx = w.x + NODE_W / 2; ly = w.y + w.h / 2;
        } else {
          lx = (pts[0].x + pts[1].x) / 2; ly = (pts[0].y + pts[1].y) / 2;
        }
      } else {
        // Same column or backwards (a cycle): loop below the nodes.
        var x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2 + 10, y2 = b.y + NODE_H + 2;
        var low = Math.max(y1, y2) + 40;
        d = "M" + x1 + "," + y1 + " C" + x1 + "," + low + " " + x2 + "," + low + " " + x2 + "," + y2;
        lx = (x1 + x2) / 2; ly = low - 8;
      }
      var width = 1.5 + Math.min(6, Math.log2(1 + (l.g.rps || 0)));
      var g = el("g", { "class": "edge " + h, "data-caller": l.from, "data-callee": l.to,
        "data-rps": l.g.rps, "data-success": l.g.success === null ? "" : l.g.success });
      var path = el("path", { d: d, stroke: colour, "stroke-width": width.toFixed(1), "marker-end": "url(#arrow-" + h + ")" });
      g.appendChild(path);
      paths.push({ id: l.from + ">" + l.to, el: path });
      var title = el("title", {}, l.from + " → " + l.to + ": " + fmtRPS(l.g) + " rps, " + fmtPct(l.g) + " success, p50 " +
        fmtMS(l.g.p50_ms, l.g.p50_over) + ", p99 " + fmtMS(l.g.p99_ms, l.g.p99_over) + (fmtMesh(l.g.mesh_errors) ? ", " + fmtMesh(l.g.mesh_errors) : "") +
        (fmtMesh(l.g.breakers) ? ", breakers " + fmtMesh(l.g.breakers) : ""));
      g.appendChild(title);
      edgeLayer.appendChild(g);
      if (hasTraffic(l.g)) {
        pending.push({ id: l.from + ">" + l.to, path: path, x: lx, y: ly, rps: l.g.rps || 0,
          el: el("text", { "text-anchor": "middle", "data-caller": l.from, "data-callee": l.to }, fmtRPS(l.g) + "/s · " + fmtPct(l.g)) });
      }
    });
    svg.appendChild(edgeLayer);

    var nodeLayer = el("g", { "class": "nodes" });
    m.nodes.forEach(function (n) {
      var s = n.svc;
      var cls = "node", h = "idle";
      if (!s) cls += " outside";
      else {
        h = health(s);
        if (s.instances === 0) cls += " ext";
      }
      var g = el("g", { "class": cls + " " + h, transform: "translate(" + n.x + "," + n.y + ")", "data-service": n.id });
      if (s) {
        g.setAttribute("data-kind", s.kind);
        g.setAttribute("data-instances", s.instances);
        g.setAttribute("data-serving", s.serving);
        g.setAttribute("data-rps", s.rps);
        g.setAttribute("data-success", s.success === null ? "" : s.success);
        g.setAttribute("data-p99", s.p99_ms === null ? "" : s.p99_ms);
      }
      g.appendChild(el("rect", { "class": "box", width: NODE_W, height: NODE_H, rx: 10, stroke: s ? COLOURS[h] : null }));
      if (s) g.appendChild(el("rect", { x: 0, y: 0, width: 6, height: NODE_H, rx: 3, fill: COLOURS[h] }));
      g.appendChild(el("text", { x: 16, y: 24, "class": "name" }, destName(n.id)));
      if (!s) {
        g.appendChild(el("text", { x: 16, y: 48, "class": "line" }, "HTTP clients of the"));
        g.appendChild(el("text", { x: 16, y: 66, "class": "line" }, "edge gateway"));
      } else {
        g.appendChild(el("text", { x: NODE_W - 12, y: 22, "class": "kind", "text-anchor": "end" }, s.kind));
        var inst = s.kind === "egress" ? "outside the mesh" : s.instances === 0 ? "no instance of its own"
          : s.serving + "/" + s.instances + " instance" + (s.instances === 1 ? "" : "s") + " serving";
        var subs = (s.subsets || []).filter(function (x) { return x.subset; }).map(function (x) { return x.subset; });
        if (subs.length) inst += " · " + subs.join(", ");
        var instText = el("text", { x: 16, y: 45, "class": "line" }, inst);
        if (s.instances > 0 && s.serving < s.instances) instText.setAttribute("fill", COLOURS.warn);
        g.appendChild(instText);
        var line = el("text", { x: 16, y: 70, "class": "line" });
        if (!hasTraffic(s)) {
          line.setAttribute("class", "line quiet");
          line.textContent = "no calls in the window";
          g.appendChild(line);
          line = null;
        }
        function span(txt, cl, fill) {
          var t = el("tspan", { "class": cl, fill: fill }, txt);
          line.appendChild(t);
        }
        if (line) {
          span(fmtRPS(s), "big");
          span(" rps   ", "");
          span(fmtPct(s), "big", COLOURS[h]);
          span("   p99 ", "");
          span(fmtMS(s.p99_ms, s.p99_over), "big");
          g.appendChild(line);
        }
      }
      var tip = n.id;
      if (s) tip += " (" + s.kind + "): " + fmtRPS(s) + " rps, " + fmtPct(s) + " success, p50 " + fmtMS(s.p50_ms, s.p50_over) +
        ", p99 " + fmtMS(s.p99_ms, s.p99_over) + (fmtMesh(s.mesh_errors) ? ", " + fmtMesh(s.mesh_errors) : "");
      g.appendChild(el("title", {}, tip));
      nodeLayer.appendChild(g);
    });
    svg.appendChild(nodeLayer);
    svg.appendChild(labelLayer);
    var boxes = m.nodes.filter(function (n) { return n.x !== undefined; }).map(function (n) {
      return { x: n.x, y: n.y, width: NODE_W, height: NODE_H };
    });
    placeLabels(labelLayer, pending, paths, boxes, L);
  }

  // placeLabels puts each edge's label where it covers no node, no other
  // label and no other edge (issue 19: labels sat on other edges): of the
  // spots along its own edge, on it or just above or below it, the free
  // one nearest the label's preferred spot (x, y: the middle of its last
  // curve, or its last waypoint); failing that, the one that covers the
  // fewest. Busier edges choose first. It measures with the browser's own
  // geometry (getBBox, getPointAtLength), so the SVG must be in the page.
  function placeLabels(layer, labels, paths, nodes, L) {
    var STEP = 2, PAD = 2;
    paths.forEach(function (p) {
      p.points = [];
      var len = p.el.getTotalLength();
      for (var s = 0; s <= len; s += STEP) p.points.push(p.el.getPointAtLength(s));
    });
    function meets(a, b) { return a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height; }
    function cost(r, id, placed) {
      if (r.x < 0 || r.y < 0 || r.x + r.width > L.width || r.y + r.height > L.height) return 1000;
      var c = 0;
      nodes.forEach(function (n) { if (meets(r, n)) c += 10; });
      placed.forEach(function (q) { if (meets(r, q)) c += 10; });
      paths.forEach(function (p) {
        if (p.id === id) return;
        for (var i = 0; i < p.points.length; i++) {
          var q = p.points[i];
          if (q.x >= r.x && q.x <= r.x + r.width && q.y >= r.y && q.y <= r.y + r.height) { c++; return; }
        }
      });
      return c;
    }
    var placed = [];
    labels.slice().sort(function (a, b) { return b.rps - a.rps || (a.id < b.id ? -1 : 1); }).forEach(function (lb) {
      layer.appendChild(lb.el);
      lb.el.setAttribute("x", 0);
      lb.el.setAttribute("y", 0);
      var bb = lb.el.getBBox(), w = bb.width + 2 * PAD, h = bb.height + 2 * PAD;
      var own = paths.filter(function (p) { return p.id === lb.id; })[0];
      var spots = [];
      own.points.forEach(function (q, i) {
        if (i % 3) return;
        [0, -(h / 2 + 3), h / 2 + 3].forEach(function (dy) { spots.push({ x: q.x, y: q.y + dy }); });
      });
      spots.push({ x: lb.x, y: lb.y });
      spots.sort(function (a, b) {
        return Math.hypot(a.x - lb.x, a.y - lb.y) - Math.hypot(b.x - lb.x, b.y - lb.y);
      });
      var best = null, bestCost = Infinity;
      for (var i = 0; i < spots.length && bestCost > 0; i++) {
        var r = { x: spots[i].x - w / 2, y: spots[i].y - h / 2, width: w, height: h };
        var c = cost(r, lb.id, placed);
        if (c < bestCost) { best = spots[i]; bestCost = c; }
      }
      placed.push({ x: best.x - w / 2, y: best.y - h / 2, width: w, height: h });
      // A backing card, so that its own edge does not run through it.
      layer.insertBefore(el("rect", { x: (best.x - w / 2).toFixed(1), y: (best.y - h / 2).toFixed(1), width: w.toFixed(1), height: h.toFixed(1), rx: 3 }), lb.el);
      lb.el.setAttribute("x", best.x.toFixed(1));
      // Centred on the spot: the box measured at y=0 starts at bb.y.
      lb.el.setAttribute("y", (best.y - bb.y - bb.height / 2).toFixed(1));
    });
  }

  function row(tbody, cells, cls) {
    var tr = html("tr", cls);
    cells.forEach(function (c) {
      var td = html("td", c.cls, c.text);
      if (c.pill) { td.textContent = ""; td.appendChild(html("span", "pill", c.pill)); }
      tr.appendChild(td);
    });
    tbody.appendChild(tr);
    return tr;
  }

  function goldenCells(g) {
    var h = health(g);
    return [
      { text: fmtRPS(g), cls: "n" },
      { text: fmtPct(g), cls: "n " + (h === "idle" ? "" : h + "-t") },
      { text: fmtMS(g.p50_ms, g.p50_over), cls: "n" },
      { text: fmtMS(g.p99_ms, g.p99_over), cls: "n" },
      { text: fmtMesh(g.mesh_errors), cls: "mesh" }
    ];
  }

  // destName is how a destination reads: a host outside the mesh (kind
  // egress, "egress:HOST") by its host, the hosts the mesh file does not
  // list as one destination; a service by its name.
  function destName(name) {
    if (name.indexOf("egress:") !== 0) return name;
    var host = name.slice("egress:".length);
    return host === "_other" ? "other external hosts" : host;
  }

  function drawTables(rep) {
    var tb = $("services").tBodies[0];
    tb.textContent = "";
    rep.services.forEach(function (s) {
      var ext = s.kind === "egress";
      var tr = row(tb, [{ text: destName(s.name) }, { pill: ext ? "external" : s.kind }, { text: ext ? "" : s.serving + "/" + s.instances, cls: "n" }].concat(goldenCells(s)));
      tr.setAttribute("data-service", s.name);
      var subs = s.subsets || [];
      if (subs.length > 1 || (subs.length === 1 && subs[0].subset)) {
        subs.forEach(function (x) {
          row(tb, [{ text: "@" + (x.subset || "(none)") }, { text: "" }, { text: x.serving + "/" + x.instances, cls: "n" }].concat(goldenCells(x)), "sub");
        });
      }
      var callers = s.callers || [];
      if (callers.length > 1) {
        callers.forEach(function (c) {
          row(tb, [{ text: "← " + (c.caller || OUTSIDE) }, { text: "" }, { text: "", cls: "n" }].concat(goldenCells(c)), "sub");
        });
      }
    });
    var te = $("edges").tBodies[0];
    te.textContent = "";
    rep.edges.forEach(function (e) {
      var cells = goldenCells(e);
      if (fmtMesh(e.breakers)) {
        // The caller's breakers to the callee that are not closed.
        var last = cells[cells.length - 1];
        last.text = (last.text ? last.text + " · " : "") + "breakers " + fmtMesh(e.breakers);
      }
      var tr = row(te, [{ text: e.caller + " → " + destName(e.callee) }, { pill: e.source }].concat(cells));
      tr.setAttribute("data-caller", e.caller);
      tr.setAttribute("data-callee", e.callee);
    });
  }

  function setStatus(kind, text) {
    $("status").setAttribute("data-state", kind);
    $("status-text").textContent = text;
  }

  function render(rep) {
    state.services = rep.services || [];
    state.edges = rep.edges || [];
    state.at = rep.at;
    state.updated = new Date().toISOString();
    state.error = rep.error || null;
    var instances = state.services.reduce(function (n, s) { return n + s.instances; }, 0);
    $("summary").textContent = state.services.length + " services · " + instances + " instances · " +
      state.edges.length + " call paths · window " + (rep.window_s || 0).toFixed(1) + "s";
    var err = $("error");
    if (rep.error) { err.hidden = false; err.textContent = "Gathering failed: " + rep.error; } else { err.hidden = true; }
    drawGraph(rep);
    drawTables(rep);
    document.body.setAttribute("data-ready", "true");
    setStatus(rep.error ? "error" : "live", "live · " + new Date().toLocaleTimeString());
  }

  var refresh = 2000;
  function poll() {
    fetch("api/graph", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (rep) {
        state.polls++;
        if (rep.refresh_ms > 0) refresh = rep.refresh_ms;
        render(rep);
      })
      .catch(function (e) {
        state.error = String(e);
        setStatus("error", "no answer: " + e.message);
      })
      .then(function () { setTimeout(poll, refresh); });
  }
  // The first report comes with the page (the server puts it in
  // #report): drawn at once, so the page never paints empty; then polls.
  var first = null;
  try { first = JSON.parse($("report").textContent); } catch (e) { first = null; }
  if (first && first.services) {
    if (first.refresh_ms > 0) refresh = first.refresh_ms;
    render(first);
    setTimeout(poll, refresh);
  } else {
    poll();
  }
})();
