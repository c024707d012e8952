"""``cotbal plan``: write the probe subsets, YAMLs, manifest and run script; print the jobs and their cost."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import examples, output_dir, positive_float, progress_of, say

NAME = "plan"
HELP = "write mini / large-enough subsets, probe and predict YAMLs, a manifest and run_all.sh; estimate the cost"
EPILOG = examples(
    "cotbal plan --base-yaml train.yaml --out probe/ --val vqa=vqa_val --val cap=cap_val \\",
    "            --metric vqa=em --metric cap=cider --fixed sharegpt --mini-fraction 1/32",
    "cotbal plan --base-yaml train.yaml --out probe/ --tasks vqa,cap --val vqa=vqa_val --val cap=cap_val \\",
    "            --metric vqa=em --metric cap=cider --difficulty precise --stl",
    "cotbal plan --base-yaml train.yaml --out probe/ --fixed sharegpt=1.0 --throughput 3000 \\",
    "            --predict-throughput 1500 --check         # cost in GPU-hours; LLaMA-Factory checks every YAML",
    "cotbal plan --base-yaml train.yaml --out probe/ --infer-backend vllm \\",
    "            --vllm-script LLaMA-Factory/scripts/vllm_infer.py",
)


def _save_steps(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return int(value) if value >= 1 and value.is_integer() else value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cotbal plan``."""
    parser.epilog = EPILOG
    from cotbal_plugin.probe.cliargs import fraction_arg

    parser.add_argument("--base-yaml", required=True, type=Path, help="LLaMA-Factory SFT training YAML to copy")
    parser.add_argument("--out", required=True, type=output_dir, help="plan directory (created)")
    parser.add_argument(
        "--dataset-info", type=Path, help="LLaMA-Factory dataset_info.json (default: <dataset_dir of base YAML>/...)"
    )
    parser.add_argument(
        "--tasks", action="append", metavar="NAME[,NAME]",
        help="training datasets or task-group names (default: `dataset:` of the base YAML); datasets sharing a "
        '"cotbal_task" in dataset_info.json form one task',
    )  # fmt: skip
    parser.add_argument(
        "--val", action="append", metavar="TASK=DATASET[,DATASET]",
        help="validation set(s) of a task (default: the <task>_val entry of dataset_info.json, when there is one)",
    )  # fmt: skip
    parser.add_argument("--metric", action="append", metavar="TASK=METRIC[,METRIC]", help="metric(s); first = primary")
    parser.add_argument(
        "--fixed", action="append", metavar="TASK[=WEIGHT]",
        help="task with a fixed weight (e.g. sharegpt, or sharegpt=1.0; WEIGHT defaults to 1.0 and goes to the "
        "`cotbal weights` line of run_all.sh): its mini subset joins every probe, no probe of its own",
    )  # fmt: skip
    parser.add_argument("--large-fraction", type=fraction_arg, default=1.0, help="large-enough subset rate (1)")
    parser.add_argument("--mini-fraction", type=fraction_arg, default=1 / 32, help="mini subset rate (1/32)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument(
        "--difficulty", choices=["real", "precise", "chat"], default="real",
        help="real: runs mini and TASK+mini (eqs. 3, 9); precise: also TASK and mini_TASK (eq. 17); "
        "chat: base model, TASK and mini_TASK (appendix F)",
    )  # fmt: skip
    parser.add_argument("--stl", action="store_true", help="also write single-task (STL) baseline training YAMLs")
    parser.add_argument("--saves-dir", type=output_dir, help="where models and predictions go (default: <out>/saves)")
    group = parser.add_argument_group("probe trainings")
    group.add_argument(
        "--save-steps", type=_save_steps, default=0.25, metavar="N|FRACTION",
        help="checkpoint every FRACTION (< 1) of a probe's steps or every N steps, so that an interrupted probe "
        "resumes; 0: no checkpoints (default 0.25)",
    )  # fmt: skip
    group.add_argument("--keep-checkpoints", type=int, default=1, help="checkpoints kept per probe (default 1)")
    group = parser.add_argument_group("predictions")
    group.add_argument(
        "--infer-backend", choices=["hf", "vllm"], default="hf",
        help="hf: llamafactory-cli predict YAMLs (default); vllm: LLaMA-Factory's scripts/vllm_infer.py",
    )  # fmt: skip
    group.add_argument("--vllm-script", type=Path, help="path to LLaMA-Factory's scripts/vllm_infer.py (vllm backend)")
    group.add_argument(
        "--vllm-config", metavar="JSON", help="extra vLLM engine arguments, e.g. '{\"gpu_memory_utilization\": 0.9}'"
    )
    group.add_argument("--predict-batch-size", type=int, help="per-device batch size of the predictions")
    group = parser.add_argument_group("cost estimate")
    group.add_argument(
        "--throughput", type=positive_float, metavar="TOKENS_PER_S",
        help="training throughput per GPU (tokens/s) for the GPU-hour estimate",
    )  # fmt: skip
    group.add_argument(
        "--predict-throughput", type=positive_float, metavar="TOKENS_PER_S", help="prediction throughput per GPU"
    )
    group.add_argument(
        "--count-tokens", choices=["chars", "tokenizer"], default="chars",
        help="chars: characters / 4 (default, fast); tokenizer: the base model's tokenizer (local model only)",
    )  # fmt: skip
    group.add_argument("--image-tokens", type=int, help="tokens per image (default: 576 for llava templates, else 0)")
    parser.add_argument(
        "--check", action="store_true",
        help="run LLaMA-Factory's own argument checks on every YAML (as launched by `cotbal run`) before writing",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Write the plan and print the jobs, their cost and where everything is."""
    import json

    from cotbal_plugin.files import check_output_dir
    from cotbal_plugin.probe.cliargs import fixed_tasks, key_values, names
    from cotbal_plugin.probe.errors import ProbeError
    from cotbal_plugin.probe.jobs import SaveSettings
    from cotbal_plugin.probe.plan import PlanConfig, format_cost, make_plan

    check_output_dir(args.out, "--out")
    fixed = fixed_tasks(args.fixed, "--fixed")
    vllm_config = None
    if args.vllm_config:
        try:
            vllm_config = json.loads(args.vllm_config)
        except json.JSONDecodeError as err:
            raise ProbeError(f"--vllm-config is not valid JSON ({err}); e.g. '{{\"max_model_len\": 4096}}'.") from None
        if not isinstance(vllm_config, dict):
            raise ProbeError("--vllm-config must be a JSON object of vLLM engine arguments.")
    cfg = PlanConfig(
        base_yaml=args.base_yaml,
        out_dir=args.out,
        validation=key_values(args.val, "--val"),
        metrics=key_values(args.metric, "--metric"),
        dataset_info=args.dataset_info,
        tasks=names(args.tasks) or None,
        fixed=list(fixed),
        fixed_weights=fixed,
        large_fraction=args.large_fraction,
        mini_fraction=args.mini_fraction,
        seed=args.seed,
        difficulty=args.difficulty,
        stl=args.stl,
        saves_dir=args.saves_dir,
        progress=progress_of(args),
        save=SaveSettings(args.save_steps, args.keep_checkpoints),
        predict_batch_size=args.predict_batch_size,
        infer_backend=args.infer_backend,
        vllm_script=args.vllm_script,
        vllm_config=vllm_config,
        count_tokens=args.count_tokens,
        image_tokens=args.image_tokens,
        throughput=args.throughput,
        predict_throughput=args.predict_throughput,
        check=args.check,
    )
    manifest = make_plan(cfg)
    out = args.out.resolve()
    n_train = sum(j["kind"] == "train" for j in manifest["jobs"])
    n_pred = sum(j["kind"] == "predict" for j in manifest["jobs"])
    say(
        args,
        f"tasks: {', '.join(manifest['tasks'])}"
        + (f"; fixed: {', '.join(manifest['fixed'])}" if manifest["fixed"] else ""),
    )
    for task, spec in manifest["tasks"].items():
        say(args, f"  {task}: validation {', '.join(spec['validation'])}; metric(s) {', '.join(spec['metrics'])}")
    for name, sub in manifest["subsets"].items():
        say(args, f"  {name}: {sub['size']} of {sub['source_size']} samples")
    say(args, f"runs: {', '.join(manifest['runs'])}")
    say(args, f"jobs: {len(manifest['jobs'])} ({n_train} trainings, {n_pred} predictions)")
    say(args, format_cost(manifest))
    if cfg.check:
        say(args, "check: LLaMA-Factory accepts every YAML (get_train_args, launched as `cotbal run` launches it)")
    say(args, f"manifest: {out / 'manifest.json'}")
    say(
        args,
        f"next: cotbal run --manifest {out / 'manifest.json'} [--gpus 0,1,...]   (or bash {out / 'run_all.sh'}, "
        "or --dry-run --format slurm for a cluster)",
    )
    return 0
