"""Render docs/benchmarks.md from the JSON and JSON Lines files in benchmarks/results/.

The page is generated so that it cannot drift from the measurements: tests/test_docs.py
fails when the committed page differs from what this script prints. After adding or
re-running a benchmark, regenerate it with:

    python benchmarks/make_results_page.py

Nothing here knows a particular file. Files are grouped into families (the `benchmark` field a
script writes, else the longest benchmarks/*.py name the file name starts with, else its first
word), and each family becomes one section with one table per kind of row:

- a JSON document gives one row per entry of its first list of records (`summary`,
  `configurations`, `results`) or of its first mapping of records (`envs`, `datasets`), else one
  row for the whole document; its top-level scalars are repeated on each of its rows;
- a JSON Lines file gives one row per group of lines that share their first text value (a
  variant or a dataset), with the seeds and the median of every numeric field.

Nested mappings become dotted columns; lists of records, long lists and bookkeeping fields
(configs, load averages, paths of run folders) are left out; the full data stays in the file.

One section knows more: "Gymnasium beside published results" takes each env's newest
gym_suite file and sets the published figures of benchmarks/anchors.json beside it, one row
per source.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"

# Fields that record how a run was bookkept, not what it measured.
SKIP = {
    "benchmark", "command", "config", "cpu_count", "started", "finished", "storage", "runs",
    "memory_measure", "loadavg_before", "loadavg_after", "sft", "bar", "error",
    "load_before", "load_after", "median_load",
}  # fmt: skip
ROW_LISTS = ("summary", "configurations", "results")
ROW_MAPS = ("envs", "datasets")
MAX_LIST = 12  # longer lists of numbers are per-step curves: left in the file


def family_of(path: Path, doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("benchmark"), str):
        return doc["benchmark"]
    scripts = sorted((p.stem for p in (ROOT / "benchmarks").glob("*.py")), key=len, reverse=True)
    for stem in scripts:
        if path.stem.startswith(stem + "_") or path.stem == stem:
            return stem
    return path.stem.split("_")[0]


def cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    text = str(value)
    if "/examples/" in text:  # a dataset path from the machine it was measured on
        text = "examples/" + text.split("/examples/", 1)[1]
    return text.replace("|", "\\|").replace("\n", " ")


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Scalars, short lists of scalars and nested mappings (as dotted keys) of one record."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if key in SKIP:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif isinstance(value, list):
            if len(value) <= MAX_LIST and all(not isinstance(v, (dict, list)) for v in value):
                flat[name] = value
        else:
            flat[name] = value
    return flat


def json_rows(doc: Any) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        return [{"value": doc}]
    top = {k: v for k, v in doc.items() if not isinstance(v, (dict, list)) and k not in SKIP}
    for key in ROW_LISTS:
        items = doc.get(key)
        if isinstance(items, list) and items and all(isinstance(i, dict) for i in items):
            return [{**top, **flatten(item)} for item in items]
    for key in ROW_MAPS:
        entries = doc.get(key)
        if isinstance(entries, dict) and entries:
            label = key[:-1]  # envs -> env
            rows = []
            for name, entry in entries.items():
                entry = entry.get("summary", entry) if isinstance(entry, dict) else entry
                body = flatten(entry) if isinstance(entry, dict) else {"value": entry}
                rows.append({**top, label: name, **body})
            return rows
    return [flatten(doc)]


def spans(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    parts: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


def jsonl_rows(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not lines:
        return []
    key = next((k for k, v in lines[0].items() if isinstance(v, str)), None)
    groups: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        # an older line may name its group under another key: take its first text value
        name = (
            line.get(key)
            if key in line
            else next((v for v in line.values() if isinstance(v, str)), "")
        )
        groups.setdefault(str(name), []).append(line)
    rows = []
    for name, members in groups.items():
        row: dict[str, Any] = {key: name} if key else {}
        row["lines"] = len(members)
        seeds = sorted({m["seed"] for m in members if isinstance(m.get("seed"), int)})
        if seeds:
            row["seeds"] = spans(seeds)
        for field in members[0]:
            if field in (key, "seed") or field in SKIP:
                continue
            values = [m.get(field) for m in members]
            if all(isinstance(v, bool) for v in values):
                row[f"{field} (count)"] = sum(values)
            elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                row[f"median {field}"] = statistics.median(values)
        rows.append(row)
    return rows


def load(path: Path) -> tuple[Any, list[dict[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        return (lines[0] if lines else {}), jsonl_rows([ln for ln in lines if isinstance(ln, dict)])
    doc = json.loads(text)
    return doc, json_rows(doc)


def table(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        out.append("| " + " | ".join(cell(row.get(c)) for c in columns) + " |")
    return out


def script_summary(name: str) -> str | None:
    import ast

    script = ROOT / "benchmarks" / f"{name}.py"
    if not script.is_file():
        return None
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.split("\n\n")[0].split()) or None


ANCHORS = ROOT / "benchmarks" / "anchors.json"


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and abs(value) < 1000:
        return f"{value:.{digits}g}"
    return f"{value:,.0f}" if isinstance(value, (int, float)) else str(value)


def gym_beside_anchors(
    families: dict[str, list[tuple[Path, Any, list[dict[str, Any]]]]], anchors: Path = ANCHORS
) -> list[str]:
    """One table: per env, ppoqa's newest gym_suite result, SB3 + rl-zoo3 from the same run
    when it was measured, and each published anchor, each row naming its source."""
    newest: dict[str, tuple[str, Path, dict[str, Any]]] = {}
    for path, doc, _rows in families.get("gym_suite", []):
        if not isinstance(doc, dict):
            continue
        for env, res in (doc.get("envs") or {}).items():
            started = str(doc.get("started", ""))
            if env not in newest or started >= newest[env][0]:
                newest[env] = (started, path, res)
    published: list[dict[str, Any]] = []
    if anchors.is_file():
        published = json.loads(anchors.read_text(encoding="utf-8")).get("anchors", [])
    envs = sorted(set(newest) | {a["env"] for a in published})
    if not envs:
        return []
    lines = [
        "## Gymnasium beside published results",
        "",
        "Each env's newest `gym_suite` file (greedy return over 20 evaluation episodes, 200 for "
        "FrozenLake; whole `train` then `eval` commands on this 2-core machine), SB3 with "
        "rl-zoo3's settings where the same run measured it, and the published PPO figures of "
        "`benchmarks/anchors.json`. Steps: the median run's (early-stopped runs differ); "
        "seconds: medians. Published figures are the sources' own (MuJoCo v3/v4 where they "
        "say so; ppoqa runs v5).",
        "",
        "| env | source | steps | return: mean (worst seed); IQM [95 % CI] | seeds | train s | "
        "train + eval s |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for env in envs:
        if env in newest:
            _, path, res = newest[env]
            ours = res.get("ppoqa") or {}
            runs = [r for r in ours.get("runs", []) if "mean_return" in r]
            entry = "" if res.get("tuned_entry", True) else ", defaults from its spaces"
            train_s = ours.get("median_train_wall_seconds")
            if train_s is None and runs and all("train_wall_seconds" in r for r in runs):
                train_s = statistics.median(r["train_wall_seconds"] for r in runs)
            ci = ours.get("ci95_return")
            iqm = f"; IQM {_num(ours['iqm_return'])} [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
            lines.append(
                f"| {env} | ppoqa (`{path.name}`{entry}) | {_num(ours.get('steps'))} | "
                f"{_num(ours.get('mean_return'))} ({_num(ours.get('min_return'))}){iqm} | "
                f"{len(runs)} | {_num(train_s, 3)} | "
                f"{_num(ours.get('median_wall_seconds'), 3)} |"
            )
            sb3 = res.get("sb3") or {}
            sb3_runs = [r for r in sb3.get("runs", []) if "mean_return" in r]
            if sb3_runs:
                ratio = res.get("train_to_sb3")
                said = f"; ppoqa train / SB3 = {ratio:g}" if ratio is not None else ""
                lines.append(
                    f"| {env} | SB3 + rl-zoo3 settings, same run (`{path.name}`{said}) | "
                    f"{_num(sb3.get('steps'))} | {_num(sb3.get('mean_return'))} "
                    f"({_num(sb3.get('min_return'))}) | {len(sb3_runs)} | — | "
                    f"{_num(sb3.get('median_wall_seconds'), 3)} |"
                )
        for a in published:
            if a["env"] != env:
                continue
            lines.append(
                f"| {env} | [{a['source']}]({a['url']}) | {_num(a.get('steps'))} | "
                f"{_num(a.get('return'))} | — | {a.get('wall', '—')} | — |"
            )
    return [*lines, ""]


def render(results: Path = RESULTS) -> str:
    families: dict[str, list[tuple[Path, Any, list[dict[str, Any]]]]] = {}
    for path in sorted(results.glob("*.json*")):
        if path.suffix not in (".json", ".jsonl"):
            continue
        try:
            doc, rows = load(path)
        except (OSError, ValueError) as exc:  # one unreadable file must not hide the others
            doc, rows = {}, [{"unreadable": f"{type(exc).__name__}: {exc}"}]
        families.setdefault(family_of(path, doc), []).append((path, doc, rows))

    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/make_results_page.py from benchmarks/results/; "
        "do not edit by hand. -->",
        "",
        "Every figure ppoqa's documentation quotes comes from a JSON file in "
        "`benchmarks/results/` of the repository, written by a script in `benchmarks/`. "
        "This page shows the summary of each file: one "
        "section per benchmark, one row per configuration measured. The files keep what the "
        "tables leave out (per-seed runs, curves, the full resolved config, the machine's load "
        "while measuring).",
        "",
        "Times were measured on a shared 2-core CPU machine with torch on one thread, so they "
        "are upper bounds for an idle machine; compare them within a table, not across tables. "
        "To reproduce a row, run the command shown (or the script named) and compare its JSON "
        "with the file.",
        "",
    ]
    lines += gym_beside_anchors(families)
    for name in sorted(families):
        lines += [f"## {name}", ""]
        summary = script_summary(name)
        if summary:
            lines += [f"`benchmarks/{name}.py`: {summary}", ""]
        shapes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for path, _doc, rows in families[name]:
            for row in rows:
                # rows of one kind share a table; a missing field is shown as a dash
                shape = (path.suffix, next(iter(row), ""))
                shapes.setdefault(shape, []).append({"file": f"`{path.name}`", **row})
        for rows in shapes.values():
            lines += [*table(rows), ""]
        commands = [
            (path.name, doc["command"])
            for path, doc, _ in families[name]
            if isinstance(doc, dict) and isinstance(doc.get("command"), str)
        ]
        if commands:
            lines += ["Commands recorded in the files:", ""]
            lines += [f"- `{file}`: `{command}`" for file, command in commands]
            lines.append("")
        unrecorded = len(families[name]) - len(commands)
        if unrecorded:
            lines += [
                f"Files that do not record their command line: {unrecorded} of "
                f"{len(families[name])} (the script's `--help` lists its options).",
                "",
            ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
        if current != text:
            print(f"{PAGE.relative_to(ROOT)} is stale: run python benchmarks/make_results_page.py")
            return 1
        return 0
    PAGE.write_text(text, encoding="utf-8")
    print(PAGE.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
