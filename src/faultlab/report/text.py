"""Rich terminal rendering of run results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_run(console: Console, doc: dict[str, Any]) -> None:
    # Text lines are never wrapped (soft_wrap), so the output does not depend on path lengths.
    console.print(Text(f"{doc['title']}  [{doc['scenario']}]  design {doc['design']}", style="bold"),
                  soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    for col in ("line", "thread", "op", "outcome", "minflt", "majflt", "expected"):
        table.add_column(col, justify="right" if col in ("line", "minflt", "majflt") else "left")
    for op in doc["ops"]:
        expected = ""
        style = ""
        if "expected" in op:
            expected = op["expected"]["value"]
            if not op["matches"]:
                style = "bold red"
                expected = f"{expected}  MISMATCH"
        # As Text: a thread named [setup] or an op with brackets is not console markup.
        table.add_row(str(op["line"]), Text(op["thread"]), Text(op["op"]), Text(op["outcome"]["value"]),
                      str(op["minflt"]), str(op["majflt"]), Text(expected), style=style)
    console.print(table)
    c = doc["counters"]
    f = c["faults"]
    kinds = ", ".join(f"{k} {v}" for k, v in f.items() if k not in ("total", "major"))
    console.print(f"faults: {f['total']} ({f['major']} major): {kinds}", soft_wrap=True)
    console.print(f"fault-around pages {c['fault_around_pages']}, bytes copied {c['bytes_copied']}, "
                  f"pages zeroed {c['pages_zeroed']}, blocks allocated {c['blocks_allocated']}, "
                  f"blocks freed {c['blocks_freed']}", soft_wrap=True)
    if c["locks"]:
        console.print("lock acquisitions: " + ", ".join(f"{k} {v}" for k, v in c["locks"].items()), soft_wrap=True)
    for name, fs in doc["files"].items():
        contents = fs["contents"]
        if len(contents) > 120:
            contents = contents[:117] + "..."
        console.print(f"file {name}: size {fs['size']}: {contents}", soft_wrap=True)
    for v in doc["violations"]:
        console.print(Text(f"VIOLATION {v['id']}: {v['message']}", style="bold red"), soft_wrap=True)
    if "replay" in doc:
        console.print("replay it with:")
        console.print(doc["replay"], soft_wrap=True)
