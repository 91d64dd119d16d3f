"""The commands on files: ``problems`` (a built-in set as JSONL), ``stats``, ``export`` and ``select``.

What reads and writes the files (:mod:`open_strawberry.traces`, :mod:`open_strawberry.problems`,
msgspec, rich) is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from open_strawberry.cli.checks import check_count, check_number, check_output_file, file_to_write, writing
from open_strawberry.cli.figures import PASS_AT_K, PASS_RATE, batch_share, money, no_price, pass_rate
from open_strawberry.cli.options import EXPORT_FORMATS, export_format, parse_prices, sft_format, whole_numbers
from open_strawberry.errors import OpenStrawberryError

if TYPE_CHECKING:
    from open_strawberry.traces.exports import ExportCounts
    from open_strawberry.traces.stats import TraceStats

__all__ = ["BUILTIN_SETS", "add_parsers", "run_export", "run_problems", "run_select", "run_stats"]

# open_strawberry.problems.builtin.BUILTIN_SETS, for --help without loading the problems (a test
# holds the two to the same names)
BUILTIN_SETS = ("letters", "arithmetic", "codes", "mixed")


def add_parsers(commands: Any) -> None:
    _add_problems(commands)
    stats = commands.add_parser("stats", help="pass rates, pass@k, statuses and tokens of a traces file",
                                run=run_stats)
    stats.add_argument("traces", type=Path, help="a traces file (JSONL, as generate writes it)")
    stats.add_argument("--k", type=whole_numbers, action="extend",
                       help="pass@k to report: a comma list (1,8) or repeated (--k 1 --k 8) (default: 1, 5, 10)")
    stats.add_argument("--price", action="append", default=[], metavar="MODEL=IN,OUT",
                       help="price per million input and output tokens of a model, for the cost (repeatable)")
    stats.add_argument("--batch-price", action="append", default=[], metavar="MODEL=IN,OUT",
                       help="batch price per million input and output tokens of a model, for the tokens of calls "
                            "that went through a batch API (generate --batch) (repeatable; default: half its --price)")
    stats.add_argument("--per-problem", action="store_true", help="also list every problem")
    stats.add_argument("--json", action="store_true", help="print JSON instead of a table")

    export = commands.add_parser("export", help="write SFT or DPO training data from a traces file",
                                 run=run_export)
    kinds = export.add_subparsers(dest="kind", metavar="KIND", required=True)
    sft = kinds.add_parser("sft", help="correct traces as {messages: [...]}")
    sft.add_argument("traces", type=Path, help="a traces file (JSONL, as generate writes it)")
    sft.add_argument("--out", type=file_to_write, required=True, help="the SFT file to write (JSONL)")
    sft.add_argument("--format", type=export_format, choices=EXPORT_FORMATS, default="multi-turn",
                     help="the whole conversation, or the steps folded into one assistant message (default: "
                          "multi-turn; 'messages' is an earlier name of multi-turn)")
    dpo = kinds.add_parser("dpo", help="correct/incorrect pairs as {prompt, chosen, rejected}")
    dpo.add_argument("traces", type=Path, help="a traces file (JSONL) with several samples per problem")
    dpo.add_argument("--out", type=file_to_write, required=True, help="the DPO file to write (JSONL)")
    dpo.add_argument("--pairing", choices=["all", "extremes"], default="all",
                     help="all pairs (capped), or the shortest correct against the longest incorrect (default: all)")
    dpo.add_argument("--max-pairs", type=int, default=4, help="pairs per problem at most (default: 4)")
    dpo.add_argument("--format", type=export_format, choices=EXPORT_FORMATS, default="collapsed",
                     help="chosen/rejected as the rest of the conversation, or as one assistant message with the "
                          "steps folded in (default: collapsed: see docs/vocabulary.md)")
    for parser in (sft, dpo):
        parser.add_argument("--thinking", choices=["field", "inline", "drop"], default="field",
                            help="each turn's thinking: the reasoning_content key (TRL's), <think>...</think> before "
                                 "the answer, or left out (default: field)")

    select = commands.add_parser("select", help="problems with a pass rate in a range, for the next round",
                                 run=run_select)
    select.add_argument("traces", type=Path, help="a traces file (JSONL) with several samples per problem")
    select.add_argument("--out", type=file_to_write, required=True,
                        help="the problems file to write (JSONL), for the next generate")
    select.add_argument("--min-pass", type=float, default=0.05, help="lowest pass rate kept (default: 0.05)")
    select.add_argument("--max-pass", type=float, default=0.6, help="highest pass rate kept (default: 0.6)")
    select.add_argument("--exclude", type=Path, action="append", default=[],
                        help="problems or traces file of an earlier round whose problems to leave out (repeatable)")


def _add_problems(commands: Any) -> None:
    problems = commands.add_parser("problems", help="write a built-in problem set as JSONL", run=run_problems)
    problems.add_argument("name", choices=BUILTIN_SETS, help="the set: " + ", ".join(BUILTIN_SETS))
    problems.add_argument("--count", type=int, default=100, help="how many (default: 100)")
    problems.add_argument("--seed", type=int, default=0, help="seed of the draw (default: 0)")
    problems.add_argument("--level", help="a rung of the set's difficulty ladder, from 1 (trivially easy) up, or a "
                                          "range such as 1-4 whose levels take turns (default: the classic set)")
    problems.add_argument("--out", type=file_to_write, help="file to write (default: standard output)")


def run_problems(args: argparse.Namespace) -> int:
    """Generate a built-in problem set with ground truth. With --level, each prompt comes once until the level has
    no other; when the set has fewer distinct prompts than --count, the rest repeat them and a line on standard
    error says so (a file split into training and held-out parts would then share problems).
    """
    import msgspec

    from open_strawberry.problems.builtin import builtin_problems, parse_levels
    from open_strawberry.traces.files import write_lines_atomically

    check_count("--count", args.count)
    if args.out is not None:
        check_output_file("--out", args.out)
    encoder = msgspec.json.Encoder()
    level = None
    if args.level is not None:
        try:
            level = parse_levels(args.level)
            next(builtin_problems(args.name, 1, args.seed, level=level))  # a level above the top is refused here
        except ValueError as exc:
            raise OpenStrawberryError(f"--level: {exc}") from None
    prompts: set[str] = set()

    def lines() -> Iterator[bytes]:
        for problem in builtin_problems(args.name, args.count, args.seed, level=level):
            prompts.add(problem.prompt)
            yield encoder.encode(problem) + b"\n"

    if args.out is None:
        for line in lines():
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
    else:
        with writing(args.out):
            write_lines_atomically(args.out, lines())
        print(f"wrote {args.count:,} {args.name} problems to {args.out}", file=sys.stderr)
    if len(prompts) < args.count:
        print(_repeated(args, len(prompts)), file=sys.stderr)
    return 0


def _repeated(args: argparse.Namespace, distinct: int) -> str:
    """The line that says a problems file repeats prompts, and why."""
    where = (f"{args.name} at --level {args.level.strip()} has only {distinct:,} distinct prompts"
             if args.level is not None else
             f"only {distinct:,} distinct prompts (a set without --level draws with replacement)")
    return (f"--count {args.count:,}: {where}; the other {args.count - distinct:,} problems repeat them, so parts "
            "split from this file can share problems")


def run_stats(args: argparse.Namespace) -> int:
    import msgspec
    from rich.console import Console
    from rich.markup import escape  # names from the file and the command line, shown as they are
    from rich.table import Table

    from open_strawberry.cli.progress import thinking_rows
    from open_strawberry.traces.stats import trace_stats

    for k in args.k or ():
        check_count("--k", k)
    prices = parse_prices("--price", args.price) if args.price else None
    batch_prices = parse_prices("--batch-price", args.batch_price) if args.batch_price else None
    ks = sorted(set(args.k or (1, 5, 10)))
    stats = trace_stats(args.traces, ks=ks, prices=prices, batch_prices=batch_prices)
    if args.json:
        payload = msgspec.to_builtins(stats)
        for row, problem in zip(payload["per_problem"], stats.per_problem, strict=True):
            row["pass_rate"] = problem.pass_rate
        if not args.per_problem:
            del payload["per_problem"]
        print(msgspec.json.encode(payload).decode())
        for k in ks:
            if k not in stats.pass_at:
                print(f"stats: pass@{k} left out: {_left_out(stats, k)}", file=sys.stderr)
        return 0
    console = Console()
    table = Table(title=escape(str(args.traces)), show_header=False, title_justify="left")
    rows = [("traces", f"{stats.traces:,} over {stats.problems:,} problems"),
            ("status", ", ".join(f"{k} {v:,}" for k, v in sorted(stats.statuses.items())) or "—"),
            ("correct", f"{stats.correct:,} of {stats.traces:,} ({stats.graded:,} graded)"),
            (PASS_RATE, pass_rate(stats.correct, stats.graded))]
    rows += [(PASS_AT_K.format(k=k), _pass_at(stats, k)) for k in ks]
    rows += [("mean turns", f"{stats.mean_turns:.2f}"),
             ("tokens", f"{stats.input_tokens:,} in / {stats.output_tokens:,} out"),
             ("cost", _cost(stats, prices, batch_prices)),
             *thinking_rows(stats.thinking, stats.cost)]
    for name, value in rows:
        table.add_row(name, escape(value))
    console.print(table)
    if args.per_problem:
        problems = Table("problem", "samples", "correct", "pass@1", "mean turns", "mean tokens")
        for p in stats.per_problem:
            problems.add_row(escape(p.problem_id), str(p.samples), str(p.correct), f"{p.pass_rate:.0%}",
                             f"{p.turns / p.samples:.1f}", f"{p.tokens / p.samples:,.0f}")
        console.print(problems)
    return 0


def _left_out(stats: TraceStats, k: int) -> str:
    most = max((p.samples for p in stats.per_problem), default=0)
    return f"no problem has {k} samples; the most is {most}"


def _pass_at(stats: TraceStats, k: int) -> str:
    """pass@k, with the problems it is over when some have fewer than k samples, or why it is left out."""
    if k not in stats.pass_at:
        return f"— (left out: {_left_out(stats, k)})"
    over = sum(1 for p in stats.per_problem if p.samples >= k)
    share = "" if over == stats.problems else f" (over the {over:,} of {stats.problems:,} problems with {k}+ samples)"
    return f"{stats.pass_at[k]:.1%}{share}"


def _cost(stats: TraceStats, prices: dict[str, tuple[float, float]] | None,
          batch_prices: dict[str, tuple[float, float]] | None) -> str:
    """The cost (and how many tokens were priced at batch prices), or what is missing for one:
    a --price for each model of the file, by name."""
    if stats.cost is not None:
        return money(stats.cost) + batch_share(stats.batch_tokens or 0, stats.input_tokens + stats.output_tokens)
    if not stats.unpriced:  # no --price asked for a cost
        return "—"
    return no_price(stats.unpriced)


def run_export(args: argparse.Namespace) -> int:
    from open_strawberry.traces.exports import export_dpo, export_sft

    if args.kind == "dpo":
        check_count("--max-pairs", args.max_pairs)
    check_output_file("--out", args.out, inputs=[("the traces file", args.traces)])
    if args.kind == "sft":
        with writing(args.out):
            counts = export_sft(args.traces, args.out, format=sft_format(args.format), thinking=args.thinking)
        print(f"wrote {counts.written:,} SFT examples from {counts.problems:,} problems to {args.out} "
              f"({counts.skipped:,} of {counts.read:,} traces were not correct)", file=sys.stderr)
    else:
        with writing(args.out):
            counts = export_dpo(args.traces, args.out, pairing=args.pairing, max_pairs=args.max_pairs,
                                format=args.format, thinking=args.thinking)
        print(f"wrote {counts.written:,} DPO pairs from {counts.problems:,} problems to {args.out} "
              f"({counts.skipped:,} duplicates dropped; {counts.read:,} traces read)", file=sys.stderr)
        print(_dpo_left_out(counts), file=sys.stderr)
    return 0


def _dpo_left_out(counts: ExportCounts) -> str:
    """Why problems gave no pair: a pair needs a correct and an incorrect trace of one problem."""
    left_out = (f"{counts.all_correct:,} problems had only correct traces, {counts.all_incorrect:,} only incorrect "
                f"ones, and {counts.ungraded:,} traces had no grade")
    if counts.problems:
        return f"left out: {left_out}"
    return (f"no problem had both a correct and an incorrect trace: {left_out}. More samples per problem "
            "(generate --samples), or problems the model gets right only sometimes (select), give pairs.")


def run_select(args: argparse.Namespace) -> int:
    from open_strawberry.traces.select import select_problems

    check_number("--min-pass", args.min_pass, high=1.0)
    check_number("--max-pass", args.max_pass, high=1.0)
    if args.min_pass > args.max_pass:
        raise OpenStrawberryError(f"--min-pass {args.min_pass:g} is above --max-pass {args.max_pass:g}")
    inputs = [("the traces file", args.traces), *(("the --exclude file", path) for path in args.exclude)]
    check_output_file("--out", args.out, inputs=inputs)
    with writing(args.out):
        counts = select_problems(args.traces, args.out, min_pass=args.min_pass, max_pass=args.max_pass,
                                 exclude=args.exclude)
    print(f"selected {counts.written:,} of {counts.problems:,} problems (pass rate {args.min_pass:g}-"
          f"{args.max_pass:g}) into {args.out}", file=sys.stderr)
    return 0
