"""``cotbal convert``: the authors' LLaVA-style annotation files → LLaMA-Factory sharegpt datasets."""

from __future__ import annotations

import argparse
import sys

from ._common import one_line, output_dir, say

NAME = "convert"
HELP = "convert LLaVA-style annotation files (CoTBal release) to LLaMA-Factory sharegpt datasets"

_EPILOG = """\
Examples:
  cotbal convert VQAv2_train-83k.json GQA_train-72k.json --image-folder data/images --out data/cotbal
  cotbal convert academic_val.json --split val --image-folder data/images --out data/cotbal --overwrite

  # any data in LLaVA format (generic mode): tasks from a field, from rules, or one fixed name
  cotbal convert llava_v1_5_mix665k.json --benchmark generic --split train --image-folder data/llava \
      --task-rule 'ocrvqa=image:^ocr_vqa/' --task-rule 'textvqa=image:^textvqa/' --task-rule 'gqa=image:^gqa/' \
      --task-rule 'vg=image:^vg/' --task-rule 'refcoco=question:bounding box|short description for this region' \
      --task-rule 'vqa=question:single word or phrase' --task-rule 'sharegpt=image:^$' --task llava_instruct \
      --out data/mix665k

Writes {task}{variant}_{split}.json per task, dataset_info.json (entries with cotbal_task / cotbal_metric) and
the cotbal_convert.json manifest into --out; use --out as `dataset_dir` in the training YAML.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``convert`` options to ``parser``."""
    from ..convert import BENCHMARKS

    parser.description = HELP
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("inputs", nargs="+", metavar="ANNOTATION.json", help="LLaVA-style annotation file(s)")
    parser.add_argument(
        "--out", required=True, type=output_dir, help="output folder (the dataset_dir of the training YAML)"
    )
    parser.add_argument(
        "--image-folder", default=None, help="root of relative image paths (default: each annotation file's folder)"
    )
    parser.add_argument(
        "--benchmark", choices=[*sorted(BENCHMARKS), "generic"], default="academic",
        help="which task names are known; generic: any name (no instructions appended, nothing merged)",
    )  # fmt: skip
    parser.add_argument(
        "--split", default=None, help="split of every input (default: parsed from {task}_{split}-{size}.json names)"
    )
    parser.add_argument(
        "--variant",
        choices=["full", "mini", "plus-mini"],
        default=None,
        help="subset variant of every input (default: parsed from the file name)",
    )
    parser.add_argument("--task", default=None, help="task of records without task field that match no --task-rule")
    parser.add_argument("--task-field", default="task", help="record field that names the task (default: task)")
    parser.add_argument(
        "--task-rule", action="append", default=[], metavar="TASK=KIND:REGEX",
        help="task of records without the field: KIND image (path), id or question (first human turn); the "
        "regular expression is searched; the first matching rule wins (repeat)",
    )  # fmt: skip
    parser.add_argument(
        "--metric", action="append", default=[], metavar="TASK=METRIC",
        help="generic mode: cotbal_metric of the task's entries (repeat)",
    )  # fmt: skip
    parser.add_argument(
        "--skip-invalid", action="store_true",
        help="leave out bad records instead of failing; each one is listed in cotbal_convert_skipped.jsonl",
    )  # fmt: skip
    parser.add_argument(
        "--no-instruction", action="store_true", help="do not append the response-format instructions (Table 8)"
    )
    parser.add_argument("--no-merge", action="store_true", help="do not merge same-image turns in training splits")
    parser.add_argument(
        "--max-turns", type=int, default=10, help="split merged training conversations longer than this (0: never)"
    )
    parser.add_argument(
        "--absolute-paths", action="store_true", help="write absolute image paths (default: relative to --out)"
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a folder holding another run's output")


def run(args: argparse.Namespace) -> int:
    """Run the conversion; print a summary. Returns 0, or 2 on bad input (message on stderr)."""
    from ..convert import ConvertError, convert_files

    variant = {None: None, "full": "", "mini": "-mini", "plus-mini": "-plus-mini"}[args.variant]
    metrics: dict[str, str] = {}
    for item in args.metric:
        name, sep, metric = item.partition("=")
        if not sep or not name.strip() or not metric.strip():
            print(f"cotbal convert: error: --metric expects TASK=METRIC, got {item!r}.", file=sys.stderr)
            return 2
        metrics[name.strip()] = metric.strip()
    try:
        result = convert_files(
            args.inputs,
            args.out,
            image_folder=args.image_folder,
            benchmark=args.benchmark,
            split=args.split,
            variant=variant,
            task=args.task,
            add_instruction=not args.no_instruction,
            merge=not args.no_merge,
            max_turns=args.max_turns,
            absolute_paths=args.absolute_paths,
            overwrite=args.overwrite,
            task_field=args.task_field,
            rules=args.task_rule,
            metrics=metrics,
            skip_invalid=args.skip_invalid,
        )
    except ConvertError as err:
        print(f"cotbal convert: error: {one_line(err)}", file=sys.stderr)
        return 2
    width = max(len(name) for name in result.files)
    say(args, f"cotbal convert: wrote {len(result.files)} dataset(s) to {result.out_dir}")
    for name in sorted(result.files):
        say(args, f"  {name:<{width}}  {result.records[name]:>8} records -> {result.counts[name]:>8} conversations")
    say(args, f"  dataset_info.json updated; use `dataset_dir: {result.out_dir}` in the training YAML.")
    if result.skipped:  # a warning, not a status line: shown with --quiet too (nothing is dropped silently)
        print(
            f"cotbal convert: warning: {len(result.skipped)} invalid record(s) left out (--skip-invalid), listed in "
            f"{result.out_dir / 'cotbal_convert_skipped.jsonl'}; first: {one_line(result.skipped[0])}",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m cotbal_plugin.commands.convert ...``."""
    from ._common import add_common_options

    parser = argparse.ArgumentParser(prog="cotbal convert")
    add_arguments(parser)
    add_common_options(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
