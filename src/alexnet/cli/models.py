"""`alexnet models`: the registered networks, their sizes and costs."""

from __future__ import annotations

from alexnet.files import print_json

# Modules that load torch, numpy or PIL are imported inside the functions that use them:
# `alexnet --help` imports every command module (cli/__init__.py) and stays fast.


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="list the available networks",
                                   description="List the registered networks with their "
                                   "parameter counts, forward GFLOPs and input sizes.")
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    parser.set_defaults(run=run)


def describe_models() -> list[dict]:
    from alexnet.models import list_models, model_costs, model_spec

    rows = []
    for name in list_models():
        spec = model_spec(name)
        parameters, flops = model_costs(name)
        rows.append({
            "name": name,
            "parameters": parameters,
            "gflops": round(flops / 1e9, 4),
            "input_size": spec.input_size,
            "summary": spec.summary,
        })
    return rows


def run(args) -> int:
    rows = describe_models()
    if args.json:
        print_json(rows, indent=2)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table()
    # Names are what users type: never cut (the description column wraps instead).
    table.add_column("model", no_wrap=True, min_width=max(len(r["name"]) for r in rows))
    for column in ("parameters", "GFLOPs", "input"):
        table.add_column(column, no_wrap=True, justify="right")
    table.add_column("what it is")
    for row in rows:
        table.add_row(row["name"], f"{row['parameters']:,}", f"{row['gflops']:.3f}",
                      f"{row['input_size']}x{row['input_size']}", row["summary"])
    Console().print(table)
    return 0
