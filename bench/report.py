#!/usr/bin/env python3
"""Builds the benchmark report from the loadgen JSON files of bench/run.sh.

Inputs: <tmp>/<server>-<session>-<pass>.json (session = ws | storm | poll).
Outputs: <out>/latest.json, <out>/latest.md, <out>/latency.png,
<out>/memory.png, <out>/throughput.png and docs/performance.md.

When several passes ran, each phase (e.g. ws/latency_1k) is taken from the
pass in which other processes on the machine used the least CPU, and all of
that phase's numbers come from that one pass. Standard library only.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABEL = {"realtimed": "realtimed", "node": "Node baseline", "python": "Python baseline"}
TMPDIR = "bench/results/tmp"


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def machine():
    lscpu = sh("lscpu")
    model = re.search(r"Model name:\s*(.+)", lscpu)
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    head = sh("git rev-parse --short HEAD")
    dirty = sh("git status --porcelain --untracked-files=no -- src Makefile")
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory_gib": round(mem_kb / 1048576, 1),
        "node": sh("node --version"),
        "python": sh("/usr/bin/python3 -c 'import platform, socketio.asyncio_server, uvicorn, importlib.metadata as m; "
                     "print(platform.python_version(), m.version(\"python-socketio\"), uvicorn.__version__)'"),
        "redis": sh("redis-server --version").split(" ")[2].replace("v=", "") if sh("redis-server --version") else "",
        "commit": head + ("-dirty" if dirty else ""),
        "realtimed_sha256": sh(f"sha256sum {TMPDIR}/realtimed 2>/dev/null").split(" ")[0][:12],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def load_passes(tmp, server, session, only=None):
    """{pass number: loadgen JSON} for one server and session."""
    runs = {}
    pattern = f"{server}-{session}-{only if only else '*'}.json"
    for path in sorted(glob.glob(os.path.join(tmp, pattern))):
        m = re.search(r"-(\d+)\.json$", path)
        try:
            with open(path) as f:
                runs[int(m.group(1))] = json.load(f)
        except (OSError, ValueError, AttributeError):
            pass
    return runs


# Phases whose numbers only make sense together (the memory readings of one
# server process); the top-level start readings go with this group.
GROUPS = [("connect_1k", "connect_10k")]


def disturbance(phase):
    if not isinstance(phase, dict):
        return float("inf")
    bad = 0 if phase.get("complete", 1) and not phase.get("incomplete_rounds") else 1000
    return bad + (phase.get("other_cpu_s") or 0) + (phase.get("steal_s") or 0)


def pick_joint(by_server):
    """by_server: {server: {pass: run}} for one session. For every phase (or
    group of phases) choose the same passes for all servers: those where the
    servers together were (nearly) least disturbed by other processes, and
    average them. Using the same passes keeps each ratio between measurements
    a minute apart, so slow drift of the host cancels; dropping disturbed
    passes removes interference; averaging clean passes damps the run-to-run
    spread (Node's fan-out cost varies by up to 40 % between processes)."""
    out = {s: {} for s in by_server}
    passes = sorted(set.intersection(*[set(r) for r in by_server.values()])) if by_server else []
    if not passes:
        for s, runs in by_server.items():
            if runs:
                out[s] = runs[min(runs)]
        return out
    phases = set()
    for runs in by_server.values():
        for r in runs.values():
            phases |= {k for k, v in r.items() if isinstance(v, dict)}
    units = [g_ for g_ in GROUPS if g_[0] in phases]
    grouped = {p for g_ in units for p in g_}
    units += [(p,) for p in sorted(phases - grouped)]
    first = passes[0]
    for s in by_server:
        out[s] = {k: v for k, v in by_server[s][first].items() if not isinstance(v, dict)}
    for unit in units:
        dist = {i: sum(disturbance(by_server[s][i].get(p)) for s in by_server for p in unit) for i in passes}
        low = min(dist.values())
        clean = [i for i in passes if dist[i] <= low + CLEAN_SLACK_S]
        for s in by_server:
            runs = [by_server[s][i] for i in clean]
            for p in unit:
                vals = [r[p] for r in runs if isinstance(r.get(p), dict)]
                if vals:
                    out[s][p] = dict(average(vals), passes_used=clean)
            if unit in GROUPS:
                top = average([{k: v for k, v in r.items() if not isinstance(v, dict)} for r in runs])
                out[s].update(top)
    return out


# Passes whose phase saw at most this much more other-process CPU + steal
# than the quietest pass count as clean; their numbers are averaged.
CLEAN_SLACK_S = 0.25


def average(dicts):
    """Field-wise mean of numeric values (recursively); other values from the first."""
    if len(dicts) == 1:
        return dict(dicts[0])
    out = {}
    for k, v in dicts[0].items():
        vs = [d.get(k) for d in dicts]
        if isinstance(v, dict) and all(isinstance(x, dict) for x in vs):
            out[k] = average(vs)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and all(
                isinstance(x, (int, float)) for x in vs):
            out[k] = sum(vs) / len(vs)
        else:
            out[k] = v
    return out


def g(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def metrics(ws, storm, poll, clients):
    m = {}
    kb0 = ws.get("server_rss_kb_start")
    kb1 = g(ws, "connect_1k", "server_rss_kb")
    kb10 = g(ws, "connect_10k", "server_rss_kb")
    n1 = g(ws, "connect_1k", "ready") or 0
    n10 = g(ws, "connect_10k", "ready") or 0
    m["rss_0_mb"] = kb0 / 1024 if kb0 else None
    m["rss_1k_mb"] = kb1 / 1024 if kb1 else None
    m["rss_10k_mb"] = kb10 / 1024 if kb10 else None
    m["bytes_per_conn"] = (kb10 - kb0) * 1024 / n10 if kb0 and kb10 and n10 else None
    m["bytes_per_conn_marginal"] = (kb10 - kb1) * 1024 / (n10 - n1) if kb1 and kb10 and n10 > n1 else None
    a1, a10 = g(ws, "connect_1k", "server_rss_anon_kb"), g(ws, "connect_10k", "server_rss_anon_kb")
    m["anon_bytes_per_conn_marginal"] = (a10 - a1) * 1024 / (n10 - n1) if a1 and a10 and n10 > n1 else None
    for key, ph in (("connect", "storm_distinct_sid"), ("connect_shared", "storm_shared_sid")):
        m[f"{key}_per_s"] = g(storm, ph, "connects_per_s")
        m[f"{key}_p99_ms"] = g(storm, ph, "connect_latency", "p99_ms")
        m[f"{key}_cpu_us"] = g(storm, ph, "server_cpu_us_per_connect")
    for ph in ("fanout_1k", "fanout_10k", "burst_1k", "burst_10k"):
        m[f"{ph}_per_s"] = g(ws, ph, "deliveries_per_s")
        m[f"{ph}_per_cpu_s"] = g(ws, ph, "deliveries_per_server_cpu_s")
        m[f"{ph}_p99_ms"] = g(ws, ph, "p99_ms")
    for ph in ("latency_1", "latency_1k", "latency_10k"):
        for q in ("p50_ms", "p99_ms", "p999_ms"):
            m[f"{ph}_{q}"] = g(ws, ph, q)
        m[f"{ph}_bcast_p50_ms"] = g(ws, ph, "broadcast_completion", "p50_ms")
        m[f"{ph}_cpu_us"] = g(ws, ph, "server_cpu_us_per_delivery")
    m["poll_connect_per_s"] = g(poll, "connect", "connects_per_s")
    m["poll_per_s"] = g(poll, "fanout_1k", "deliveries_per_s")
    m["poll_per_cpu_s"] = g(poll, "fanout_1k", "deliveries_per_server_cpu_s")
    m["poll_p50_ms"] = g(poll, "latency_1k", "p50_ms")
    m["poll_p99_ms"] = g(poll, "latency_1k", "p99_ms")
    m["poll_p999_ms"] = g(poll, "latency_1k", "p999_ms")
    return m


# (key, label, unit/format, higher_is_better)
ROWS = [
    ("rss_0_mb", "RSS, no clients", "MB", False),
    ("rss_1k_mb", "RSS, 1k idle WebSocket clients", "MB", False),
    ("rss_10k_mb", "RSS, 10k idle WebSocket clients", "MB", False),
    ("bytes_per_conn_marginal", "RSS per idle connection (slope 1k -> 10k)", "B", False),
    ("bytes_per_conn", "RSS per idle connection (0 -> 10k, incl. one-time costs)", "B", False),
    ("anon_bytes_per_conn_marginal", "Private anonymous memory per connection (RssAnon slope)", "B", False),
    ("connect_per_s", "Connect rate to 10k, distinct sid per client", "conn/s", True),
    ("connect_p99_ms", "  connect time p99 (256 in flight)", "ms", False),
    ("connect_cpu_us", "  server CPU per connect", "µs", False),
    ("connect_shared_per_s", "Connect rate to 10k, one shared sid", "conn/s", True),
    ("fanout_1k_per_s", "Fan-out, room 1k: deliveries/s (closed loop)", "/s", True),
    ("fanout_1k_per_cpu_s", "Fan-out, room 1k: deliveries per server CPU-s", "/CPU-s", True),
    ("fanout_10k_per_s", "Fan-out, room 10k: deliveries/s", "/s", True),
    ("fanout_10k_per_cpu_s", "Fan-out, room 10k: deliveries per server CPU-s", "/CPU-s", True),
    ("burst_1k_per_s", "Burst x10, room 1k: deliveries/s", "/s", True),
    ("burst_1k_per_cpu_s", "Burst x10, room 1k: deliveries per server CPU-s", "/CPU-s", True),
    ("burst_10k_per_s", "Burst x10, room 10k: deliveries/s", "/s", True),
    ("burst_10k_per_cpu_s", "Burst x10, room 10k: deliveries per server CPU-s", "/CPU-s", True),
    ("latency_1_p50_ms", "Latency, room 1 @1000/s: p50", "ms", False),
    ("latency_1_p99_ms", "Latency, room 1: p99", "ms", False),
    ("latency_1_p999_ms", "Latency, room 1: p99.9", "ms", False),
    ("latency_1k_p50_ms", "Latency, room 1k @50/s: p50", "ms", False),
    ("latency_1k_p99_ms", "Latency, room 1k: p99", "ms", False),
    ("latency_1k_p999_ms", "Latency, room 1k: p99.9", "ms", False),
    ("latency_1k_bcast_p50_ms", "  room 1k: whole broadcast delivered, p50", "ms", False),
    ("latency_1k_cpu_us", "  room 1k: server CPU per delivery", "µs", False),
    ("latency_10k_p50_ms", "Latency, room 10k @5/s: p50", "ms", False),
    ("latency_10k_p99_ms", "Latency, room 10k: p99", "ms", False),
    ("latency_10k_p999_ms", "Latency, room 10k: p99.9", "ms", False),
    ("latency_10k_bcast_p50_ms", "  room 10k: whole broadcast delivered, p50", "ms", False),
    ("poll_connect_per_s", "Polling: connect rate (1k clients)", "conn/s", True),
    ("poll_per_s", "Polling, room 1k: deliveries/s (closed loop)", "/s", True),
    ("poll_per_cpu_s", "Polling, room 1k: deliveries per server CPU-s", "/CPU-s", True),
    ("poll_p50_ms", "Polling, room 1k @10/s: latency p50", "ms", False),
    ("poll_p99_ms", "Polling, room 1k: latency p99", "ms", False),
    ("poll_p999_ms", "Polling, room 1k: latency p99.9", "ms", False),
]


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit in ("MB", "ms"):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"
    if unit == "B":
        return f"{v:,.0f}"
    if unit == "µs":
        return f"{v:.1f}"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(r, n):
    """(description, measured text, met) for every target of the issue."""
    out = []

    def add(desc, val, ok):
        out.append({"target": desc, "measured": val, "met": ok})

    v = r.get("rss_0_mb")
    add("Baseline RSS ≤ 5 MB", f"{v:.2f} MB" if v else "n/a", v is not None and v <= 5)
    v = r.get("bytes_per_conn_marginal")
    add("User-space memory ≤ 1 KiB per idle connection (RSS slope 1k -> 10k; Node ≈ 15 KB)",
        f"{v:,.0f} B (Node {n.get('bytes_per_conn_marginal') or 0:,.0f} B)" if v else "n/a",
        v is not None and v <= 1024)
    for ph, need, what in (("fanout_1k", 2, "room 1k"), ("fanout_10k", 2, "room 10k"),
                           ("burst_1k", 10, "bursts, room 1k"), ("burst_10k", 10, "bursts, room 10k")):
        x = ratio(r.get(f"{ph}_per_cpu_s"), n.get(f"{ph}_per_cpu_s"))
        add(f"Deliveries per CPU-second ≥ {need}× Node ({what})", f"{x:.2f}×" if x else "n/a",
            x is not None and x >= need)
    v, nv = r.get("latency_1k_p99_ms"), n.get("latency_1k_p99_ms")
    add("p99, room 1k ≤ 10 ms", f"{v:.2f} ms" if v is not None else "n/a", v is not None and v <= 10)
    add("p99, room 1k ≤ ½ Node's", f"{v:.2f} vs {nv:.2f} ms" if v is not None and nv else "n/a",
        v is not None and nv is not None and v <= nv / 2)
    x = ratio(r.get("connect_per_s"), n.get("connect_per_s"))
    add("Connect rate ≥ 7× Node (distinct sids)", f"{x:.2f}×" if x else "n/a", x is not None and x >= 7)
    return out


def cpu_rows(sel):
    """Server vs load generator CPU per phase."""
    rows = []
    for server, sessions in sel.items():
        for session, d in sessions.items():
            for ph, v in d.items():
                if not isinstance(v, dict) or "server_cpu_s" not in v:
                    continue
                s, lg = v.get("server_cpu_s") or 0, v.get("loadgen_cpu_s") or 0
                rows.append({
                    "server": server, "phase": f"{session}/{ph}", "wall_s": v.get("wall_s"),
                    "server_cpu_s": s, "loadgen_cpu_s": lg, "loadgen_user_cpu_s": v.get("loadgen_user_cpu_s"),
                    "loadgen_over_server": lg / s if s else None,
                    "loadgen_core_util": v.get("loadgen_cpu_util"),
                    "server_core_util": v.get("server_cpu_util"),
                    "other_cpu_s": v.get("other_cpu_s"),
                })
    return rows


def gnuplot(out, tmp, res, servers):
    colors = {"realtimed": "#1f77b4", "node": "#d62728", "python": "#2ca02c"}
    # latency vs room size
    lat_lines = []
    for s in servers:
        m = res[s]["metrics"]
        path = os.path.join(tmp, f"lat-{s}.dat")
        with open(path, "w") as f:
            for size, ph in ((1, "latency_1"), (1000, "latency_1k"), (10000, "latency_10k")):
                vals = [m.get(f"{ph}_{q}") for q in ("p50_ms", "p99_ms", "p999_ms")]
                if None not in vals:
                    f.write(f"{size} {vals[0]} {vals[1]} {vals[2]}\n")
        c = colors.get(s, "black")
        lat_lines += [
            f"'{path}' using 1:2 with linespoints lw 2 pt 7 dt 1 lc rgb '{c}' title '{LABEL.get(s, s)} p50'",
            f"'{path}' using 1:3 with linespoints lw 2 pt 5 dt 2 lc rgb '{c}' title '{LABEL.get(s, s)} p99'",
            f"'{path}' using 1:4 with linespoints lw 1 pt 3 dt 3 lc rgb '{c}' title '{LABEL.get(s, s)} p99.9'",
        ]
    mem_lines = []
    for s in servers:
        m = res[s]["metrics"]
        path = os.path.join(tmp, f"mem-{s}.dat")
        with open(path, "w") as f:
            for n, k in ((0, "rss_0_mb"), (1000, "rss_1k_mb"), (10000, "rss_10k_mb")):
                if m.get(k) is not None:
                    f.write(f"{n} {m[k]}\n")
        c = colors.get(s, "black")
        mem_lines.append(f"'{path}' using 1:2 with linespoints lw 2 pt 7 lc rgb '{c}' title '{LABEL.get(s, s)}', "
                         f"'{path}' using 1:2:(sprintf('%.1f MB', $2)) with labels offset char 0,1 textcolor rgb '{c}' notitle")
    tp_path = os.path.join(tmp, "tp.dat")
    with open(tp_path, "w") as f:
        for ph, name in (("fanout_1k", "fan-out 1k"), ("fanout_10k", "fan-out 10k"), ("burst_1k", "burst x10, 1k"),
                         ("burst_10k", "burst x10, 10k"), ("poll", "polling 1k")):
            vals = [res[s]["metrics"].get(f"{ph}_per_cpu_s") or 0 for s in servers]
            f.write(f"\"{name}\" " + " ".join(f"{v / 1000:.1f}" for v in vals) + "\n")
    tp_plots = ", ".join(
        f"'{tp_path}' using {i + 2}:xtic(1) title '{LABEL.get(s, s)}' lc rgb '{colors.get(s, 'black')}'"
        for i, s in enumerate(servers))
    script = f"""
set terminal pngcairo noenhanced size 900,560 font 'DejaVu Sans,10'
set grid
set key top left
set output '{out}/latency.png'
set title 'Publish -> receive latency vs room size (paced: room 1 @1000/s, 1k @50/s, 10k @5/s)'
set logscale xy
set xrange [0.5:20000]
set xtics ('1' 1, '10' 10, '100' 100, '1k' 1000, '10k' 10000)
set xlabel 'room size (members)'
set ylabel 'latency (ms, log)'
plot {', '.join(lat_lines)}
unset logscale
set output '{out}/memory.png'
set title 'Server RSS vs idle WebSocket connections'
set xrange [-500:10500]
set xtics ('0' 0, '1k' 1000, '2k' 2000, '4k' 4000, '6k' 6000, '8k' 8000, '10k' 10000)
set logscale y
set yrange [1:1000]
set xlabel 'connections'
set ylabel 'RSS (MB, log)'
plot {', '.join(mem_lines)}
unset logscale
set output '{out}/throughput.png'
set title 'Deliveries per server CPU-second (thousands, higher is better; bursts = 10 events per room per loop turn)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set autoscale
set logscale y
set yrange [1:*]
set xtics auto
set xlabel ''
set ylabel 'k deliveries / CPU-s (log)'
plot {tp_plots}
"""
    spath = os.path.join(tmp, "plots.gp")
    with open(spath, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", spath], capture_output=True, text=True)
    if r.returncode:
        print("gnuplot failed:", r.stderr)


def md_table(res, servers):
    a, b = (servers + [None])[:2] if len(servers) > 1 else (servers[0], None)
    hdr = f"| Metric | {LABEL.get(a, a)} |"
    sep = "|---|---:|"
    if b:
        hdr += f" {LABEL.get(b, b)} | {LABEL.get(a, a)}/{LABEL.get(b, b)} | better when |"
        sep += "---:|---:|---|"
    more = servers[2:]  # further baselines: value and realtimed/that
    for c in more:
        hdr += f" {LABEL.get(c, c)} | {LABEL.get(a, a)}/{LABEL.get(c, c)} |"
        sep += "---:|---:|"
    lines = [hdr, sep]
    for key, label, unit, higher in ROWS:
        va = res[a]["metrics"].get(key)
        row = f"| {label} ({unit}) | {fmt(va, unit)} |"
        if b:
            vb = res[b]["metrics"].get(key)
            x = ratio(va, vb)
            row += f" {fmt(vb, unit)} | {'n/a' if x is None else f'{x:.3g}'} | {'higher' if higher else 'lower'} |"
        for c in more:
            vc = res[c]["metrics"].get(key)
            x = ratio(va, vc)
            row += f" {fmt(vc, unit)} | {'n/a' if x is None else f'{x:.3g}'} |"
        lines.append(row)
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--servers", default="realtimed node")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--poll-clients", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--scale", default="1")
    ap.add_argument("--no-docs", action="store_true")
    ap.add_argument("--commit", help="git commit of the measured build (default: HEAD now)")
    args = ap.parse_args()
    global TMPDIR
    TMPDIR = os.path.abspath(args.tmp)
    servers = args.servers.split()
    res, sel = {}, {}
    for s in servers:
        sel[s] = {}
    for sess in ("ws", "storm", "poll"):
        chosen = pick_joint({s: load_passes(args.tmp, s, sess) for s in servers})
        for s in servers:
            sel[s][sess] = chosen[s]
    for s in servers:
        res[s] = {"metrics": metrics(sel[s]["ws"], sel[s]["storm"], sel[s]["poll"], args.clients)}
    tg = targets(res[servers[0]]["metrics"], res[servers[1]]["metrics"]) if len(servers) > 1 else []
    # The same targets evaluated on each pass alone (realtimed pass i vs Node
    # pass i, measured minutes apart): shows how stable each verdict is.
    if len(servers) > 1:
        per_pass = []
        for i in range(1, args.repeat + 1):
            mp = {}
            for s in servers[:2]:
                runs = {sess: load_passes(args.tmp, s, sess, only=i).get(i, {}) for sess in ("ws", "storm", "poll")}
                mp[s] = metrics(runs["ws"], runs["storm"], runs["poll"], args.clients)
            per_pass.append(targets(mp[servers[0]], mp[servers[1]]))
        for j, t in enumerate(tg):
            t["per_pass"] = [pp[j]["measured"] for pp in per_pass]
    cpu = cpu_rows(sel)
    mach = machine()
    if args.commit:
        mach["commit"] = args.commit
    doc = {
        "machine": mach,
        "config": {"clients": args.clients, "poll_clients": args.poll_clients, "loadgen_procs": args.procs,
                   "passes": args.repeat, "scale": args.scale, "runtime_s": args.elapsed,
                   "pinning": "server on CPU 0; loadgen, Redis and auth stub on CPU 1"},
        "metrics": {s: res[s]["metrics"] for s in servers},
        "ratios": {k: ratio(res[servers[0]]["metrics"].get(k), res[servers[1]]["metrics"].get(k))
                   for k, *_ in ROWS} if len(servers) > 1 else {},
        "ratios_more": {c: {k: ratio(res[servers[0]]["metrics"].get(k), res[c]["metrics"].get(k)) for k, *_ in ROWS}
                        for c in servers[2:]},
        "targets": tg,
        "cpu": cpu,
        "raw": sel,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    gnuplot(os.path.abspath(args.out), args.tmp, res, servers)

    table = md_table(res, servers)
    tgt = "\n".join(["| Target | Measured | Met | Each pass alone |", "|---|---|---|---|"] +
                    [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} | "
                     f"{'; '.join(t.get('per_pass', []))} |" for t in tg])
    cpu_md = ["| Server | Phase | wall s | server CPU s | loadgen CPU s | loadgen/server | loadgen core busy | other processes CPU s |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in cpu:
        lo = r["loadgen_over_server"]
        cpu_md.append(f"| {LABEL.get(r['server'], r['server'])} | {r['phase']} | {r['wall_s']:.2f} | {r['server_cpu_s']:.3f} | "
                      f"{r['loadgen_cpu_s']:.3f} | {'n/a' if lo is None else f'{lo:.2f}'} | "
                      f"{(r['loadgen_core_util'] or 0) * 100:.0f} % | {r['other_cpu_s'] or 0:.2f} |")
    cpu_md = "\n".join(cpu_md)
    tot_s = sum(r["server_cpu_s"] for r in cpu if r["server"] == servers[0])
    tot_l = sum(r["loadgen_cpu_s"] for r in cpu if r["server"] == servers[0])
    tot_lu = sum(r["loadgen_user_cpu_s"] or 0 for r in cpu if r["server"] == servers[0])
    mach_line = (f"{mach['cpu_model']}, {mach['cores']} cores, {mach['memory_gib']} GiB, Linux {mach['kernel']}; "
                 f"Node {mach['node']}, Python/python-socketio/uvicorn {mach.get('python', '')}, Redis {mach['redis']}; commit `{mach['commit']}` "
                 f"(realtimed binary sha256 {mach['realtimed_sha256']}), {mach['date']}")
    md = f"""# Benchmark results: realtimed vs Node socket.io baseline

Machine: {mach_line}.
Run: `make bench`, {args.elapsed} s, {args.repeat} pass(es), {args.clients} WebSocket clients in {args.procs} loadgen
processes, {args.poll_clients} polling clients; server pinned to CPU 0, load generator, Redis and the auth stub to CPU 1.
Ratios are realtimed / Node; "better when" says which direction wins.

{table}

## Targets

{tgt}

## Server vs load generator CPU

Over all realtimed phases the load generator used {tot_l:.2f} CPU-s (of which {tot_lu:.2f} s in user space)
against the server's {tot_s:.2f} CPU-s.

{cpu_md}
"""
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(md)
    if not args.no_docs:
        write_docs(mach_line, args, table, tgt, cpu_md, tot_s, tot_l, tot_lu)
    print(md)


def write_docs(mach_line, args, table, tgt, cpu_md, tot_s, tot_l, tot_lu):
    text = f"""# Performance

Generated by `make bench` (`bench/run.sh`); method in [bench/README.md](../bench/README.md), raw
numbers in [bench/results/latest.json](../bench/results/latest.json).

**Machine:** {mach_line}.

**Run:** {args.elapsed} s wall, {args.repeat} pass(es) (per phase, the mean of the passes not disturbed by
other processes; the target table also lists each pass alone), {args.clients} WebSocket clients over
{args.procs} load-generator processes,
{args.poll_clients} long-polling clients. Both servers run in Frappe mode on the same bench config, Redis
and auth backend; the server is pinned to CPU 0, everything else to CPU 1. Every client authenticates
through `get_user_info` with its own sid (except the "shared sid" row) and joins its rooms through
`task_subscribe` events. Messages are ~100-byte `bench` events published on Redis `events`.

## Results (realtimed / Node socket.io 4.8 baseline)

{table}

## Targets

{tgt}

## Plots

![Latency vs room size](../bench/results/latency.png)

![Memory vs connections](../bench/results/memory.png)

![Deliveries per CPU-second](../bench/results/throughput.png)

## Load generator cost

The C load generator (`bench/loadgen.c`) runs on its own core. Over all realtimed phases it used
{tot_l:.2f} CPU-s against the server's {tot_s:.2f} CPU-s; only {tot_lu:.2f} s of it in user space, the rest
is the kernel's receive path for its sockets (on loopback a client pays for reading and acknowledging
every delivery). Per phase:

{cpu_md}

"other processes" is the machine's busy time (`/proc/stat`) minus the server, the load generator, Redis
and the auth stub: work of other tenants of the machine, plus softirq time the kernel accounts
separately. A phase with several seconds there was disturbed.
"""
    # sections written by other benchmarks (bench/standalone.sh, ...) stay
    perf = os.path.join(ROOT, "docs", "performance.md")
    marker = "\n## The standalone mode"
    try:
        old = open(perf).read()
        if marker in old:
            text = text.rstrip("\n") + "\n" + old[old.index(marker):]
    except OSError:
        pass
    with open(perf, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
