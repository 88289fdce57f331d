"""Renders a bench run (scripts/bench.sh) into benchmarks.md, benchmarks.json
and benchmarks-getme.png: every figure beside its target and the baseline
measured in the same run, and GetMe's latency percentiles against offered
load through the mesh and without Envoy.

Input: the machine facts and one JSON fragment per phase, as written by
interlock-bench (tests/bench/src/report.rs).
"""

import argparse
import json
import os
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Proxy traversals of one GetMe through the mesh: the edge, users' sidecar
# inbound, users' sidecar outbound (to roles), roles' sidecar inbound.
HOPS = 4
OVERHEAD_RATE = 300.0


def met(measured, target):
    """Whether `measured` meets a target such as '>= 1000' or '< 50'."""
    if not target:
        return None
    m = re.match(r"\s*(>=|<=|<|>|=)\s*([0-9.]+)", target)
    if not m:
        return None
    op, bound = m.group(1), float(m.group(2))
    return {
        ">=": measured >= bound,
        "<=": measured <= bound,
        "<": measured < bound,
        ">": measured > bound,
        "=": measured == bound,
    }[op]


def point_at(series, rate):
    for p in series["points"]:
        if abs(p["offered_rps"] - rate) < 1e-6:
            return p
    return None


def overhead_rows(mesh, direct):
    """Added latency of the mesh over the same code without Envoy."""
    m, d = point_at(mesh, OVERHEAD_RATE), point_at(direct, OVERHEAD_RATE)
    if not m or not d:
        return []
    rows = []
    for q in ("p50", "p99"):
        added = m[f"{q}_ms"] - d[f"{q}_ms"]
        rows.append(
            {
                "scenario": "Mesh overhead (GetMe at 300/s)",
                "metric": f"added {q} per proxy hop ({HOPS} hops)",
                "measured": round(added / HOPS, 3),
                "unit": "ms",
                "target": "<= 0.25" if q == "p50" else None,
                "baseline": 0.12 if q == "p50" else 0.15,
                "baseline_of": "Istio, per hop (0.23 ms p90 / 0.30 ms p99 for 2 sidecars)",
                "note": f"mesh {m[f'{q}_ms']:.2f} ms, without Envoy {d[f'{q}_ms']:.2f} ms",
            }
        )
    return rows


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.2f}"
    return str(v)


def plot(series, path):
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    styles = {"p50_ms": "-", "p99_ms": "--"}
    for label, s in series:
        xs = [p["offered_rps"] for p in s["points"]]
        for key, style in styles.items():
            ax.plot(xs, [p[key] for p in s["points"]], style, marker="o", markersize=3,
                    label=f"{label} {key[:3]}")
    ax.set_xlabel("offered GetMe rate (requests/s, open loop)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.axhline(50, color="grey", linewidth=0.8, linestyle=":")
    ax.set_title("GetMe latency against offered load: mesh vs without Envoy")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machine", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("fragments", nargs="+")
    args = ap.parse_args()
    machine = json.load(open(args.machine))
    fragments = [json.load(open(f)) for f in args.fragments]

    rows, series = [], []
    for f in fragments:
        rows.extend(f["rows"])
        for s in f["series"]:
            label = "without Envoy" if f["phase"] == "direct" else f"mesh, {f['phase']}"
            if f["phase"] == "mesh":
                label = "mesh, sampling 10%"
            series.append((label, s, f["phase"]))
    by_phase = {phase: s for _, s, phase in series}
    if "mesh" in by_phase and "direct" in by_phase:
        rows = overhead_rows(by_phase["mesh"], by_phase["direct"]) + rows
    for r in rows:
        r["met"] = met(r["measured"], r.get("target"))

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "benchmarks.json"), "w") as out:
        json.dump({"machine": machine, "rows": rows,
                   "series": [{"label": l, "points": s["points"]} for l, s, _ in series]},
                  out, indent=2)
    plot([(l, s) for l, s, _ in series], os.path.join(args.out, "benchmarks-getme.png"))

    lines = [
        "# Benchmarks",
        "",
        f"Written by `{machine['command']}` (commit {machine['commit']}); do not edit by hand.",
        "",
        f"Machine: {machine['cores']} cores ({machine['model']}), {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}; {machine['rustc']}, Envoy {machine['envoy']}, "
        f"SPIRE {machine['spire']}, PostgreSQL {machine['postgres']}. The load generator "
        "(tests/bench, open loop: calls offered at a constant rate, latency counted from when "
        "each call was due) runs on the same cores as the whole mesh.",
        "",
        "| scenario | metric | measured | target | met | baseline | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = {True: "yes", False: "**no**", None: ""}[r["met"]]
        base = f"{fmt(r['baseline'])} ({r['baseline_of']})" if r.get("baseline") is not None else ""
        lines.append(
            f"| {r['scenario']} | {r['metric']} | {fmt(r['measured'])} {r['unit']} | "
            f"{r.get('target') or ''} | {ok} | {base} | {r.get('note', '')} |"
        )
    lines += [
        "",
        "## GetMe: latency against offered load",
        "",
        "![GetMe latency percentiles against offered load](benchmarks-getme.png)",
        "",
        "| series | offered/s | achieved/s | p50 ms | p90 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, s, _ in series:
        for p in s["points"]:
            lines.append(
                f"| {label} | {p['offered_rps']:.0f} | {p['achieved_rps']:.0f} | "
                f"{p['p50_ms']:.2f} | {p['p90_ms']:.2f} | {p['p99_ms']:.2f} | "
                f"{sum(p['errors'].values())} |"
            )
    with open(os.path.join(args.out, "benchmarks.md"), "w") as out:
        out.write("\n".join(lines) + "\n")
    for r in rows:
        print(f"{r['scenario']}: {r['metric']} = {fmt(r['measured'])} {r['unit']}"
              f" (target {r.get('target') or '-'}, met {r['met']})")
    print(f"report written to {args.out}/benchmarks.md")


if __name__ == "__main__":
    main()
