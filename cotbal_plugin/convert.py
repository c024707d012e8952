"""Convert the CoTBal authors' LLaVA-style annotation files to LLaMA-Factory ``sharegpt`` datasets.

Input: a JSON list of ``{"id", "image", "conversations": [{"from": "human"|"gpt", "value"}, ...], "task"}``
records (LLaVA format; ``image`` is a path relative to the image folder, a list of such paths, or absent for
text-only tasks such as ShareGPT). Output: one file per task (and per input variant / split) named
``{task}{variant}_{split}.json`` — the authors' ``{task}(-mini|-plus-mini)_{split}-{size}.json`` scheme without
the ``-{size}`` suffix, so the dataset names in a training YAML do not depend on how many samples a subset
happened to get — plus the matching ``dataset_info.json`` entries and a ``cotbal_convert.json`` manifest.

Preprocessing (paper, Appendix A):

1. the task's response-format instruction (Table 8) is appended to every question (skipped when the question
   already ends with it, so converting already-prepared data is idempotent);
2. in training splits, the turns of a VQA / RefCOCO task about the same image are merged into one conversation;
3. merged training conversations are split into segments of at most ``max_turns`` (default 10) question/answer
   turns. The paper states this for RefCOCO; it is applied to every merged task here because the merged turns
   are independent questions, and a GQA image can collect dozens of them (beyond ``cutoff_len``).

Nothing is dropped silently: a malformed record, a missing image, a record without a task or with an unknown
task raises :class:`ConvertError` naming the file, the record id and the culprit (``skip_invalid`` leaves such
records out instead, and lists every one of them in ``cotbal_convert_skipped.jsonl``).

**Generic mode** (``benchmark="generic"``): data that is not one of the paper's tasks. Any task name is accepted;
a record's task is its ``task_field`` value, else the first matching ``TaskRule`` (a regular expression searched in
its image path, its id or its first question — how LLaVA's ``llava_v1_5_mix665k.json``, which has no task field,
is split), else the ``task`` default. No instruction is appended and nothing is merged (those are the paper
tasks' preprocessing); metrics come from ``metrics`` (``--metric TASK=METRIC``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGE_TOKEN = "<image>"
MANIFEST_NAME = "cotbal_convert.json"
SKIPPED_NAME = "cotbal_convert_skipped.jsonl"
DATASET_INFO_NAME = "dataset_info.json"
VARIANTS = ("", "-mini", "-plus-mini")
TRAIN_SPLITS = ("train",)
MAX_LISTED_ERRORS = 10

SHAREGPT_COLUMNS = {"messages": "conversations", "images": "images"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}

# Response-format instructions of Table 8 (Academic Benchmark).
INSTRUCTION_SHORT_ANSWER = "Answer the question using a single word or phrase."
INSTRUCTION_REGION_CAPTION = "Provide a short description for this region."
INSTRUCTION_BBOX = "Provide the bounding box coordinate of the region this sentence describes."


class ConvertError(ValueError):
    """Bad converter input; the message names the file, the record and what is wrong."""


@dataclass(frozen=True)
class TaskSpec:
    """One training task of a paper benchmark.

    Attributes:
        name: the task name used in the annotation ``task`` field (canonical spelling).
        benchmark: ``academic``, ``chat`` or ``large``.
        metric: the ``cotbal eval`` metric of its validation/test sets; ``None`` for tasks that are trained but
            not scored (ShareGPT, which the paper keeps at weight 1.0).
        instruction: response-format instruction appended to every question, or ``None``.
        merge_same_image: merge same-image turns in training splits (Appendix A, items 2–3).
        group: task group for group-level balancing (Large Benchmark); the ``cotbal_task`` of its entries.
        aliases: other spellings accepted in the annotation ``task`` field.
        stem: file / dataset-name stem (defaults to ``name``).
        has_images: ``False`` for text-only tasks.
        eval_splits: the validation / test splits for which ``dataset_info`` entries are listed.
    """

    name: str
    benchmark: str
    metric: str | None
    instruction: str | None = None
    merge_same_image: bool = False
    group: str | None = None
    aliases: tuple[str, ...] = ()
    stem: str | None = None
    has_images: bool = True
    eval_splits: tuple[str, ...] = ("val", "test")

    @property
    def file_stem(self) -> str:
        """Stem of this task's file and dataset names."""
        return self.stem or self.name

    @property
    def cotbal_task(self) -> str:
        """The task name the plugin balances over (the group for group-level balancing)."""
        return self.group or self.name


def _academic() -> tuple[TaskSpec, ...]:
    vqa = {"metric": "em", "instruction": INSTRUCTION_SHORT_ANSWER, "merge_same_image": True}
    # RefCOCO test sets: Ref-test (RefCOCO testA), Ref-testB, Refg-test (RefCOCOg test) — Table 1.
    ref_splits = ("val", "test", "testB", "testg")
    return (
        TaskSpec("ShareGPT4V", "academic", "cider", aliases=("ShareGPT-4V",)),
        TaskSpec("RefCOCO-caption", "academic", "cider", INSTRUCTION_REGION_CAPTION, True, eval_splits=ref_splits),
        TaskSpec("VQAv2", "academic", **vqa),
        TaskSpec("GQA", "academic", **vqa),
        TaskSpec("ChartQA", "academic", **vqa),
        TaskSpec("OCRVQA", "academic", **vqa, aliases=("OCR-VQA",)),
        TaskSpec("RefCOCO-bbox", "academic", "iou_acc", INSTRUCTION_BBOX, True, eval_splits=ref_splits),
        TaskSpec("ShareGPT", "academic", None, has_images=False, eval_splits=()),
    )


def _chat() -> tuple[TaskSpec, ...]:
    # The paper scores these with GPT-4 review (LLaVA-Bench); rouge_l is the offline proxy for `cotbal eval`.
    return (
        TaskSpec("conversation", "chat", "rouge_l", aliases=("conv", "Conv.")),
        TaskSpec("detail", "chat", "rouge_l", aliases=("detail_description", "Detail.")),
        TaskSpec("complex_reasoning", "chat", "rouge_l", aliases=("complex", "Complex.")),
    )


def _large() -> tuple[TaskSpec, ...]:
    # Appendix B + M3IT's task clustering; names as in Table 4, M3IT dataset ids as aliases.
    rows = (
        ("COCO", "captioning", "cider", ("coco",)),
        ("TextCap", "captioning", "cider", ("textcap",)),
        ("ParaCap", "captioning", "cider", ("image-paragraph-captioning",)),
        ("C-GOI", "classification", "em", ("coco-goi",)),
        ("C-Text", "classification", "em", ("coco-text",)),
        ("ImageNet", "classification", "em", ("imagenet",)),
        ("C-ITM", "classification", "em", ("coco-itm",)),
        ("SNLI-VE", "classification", "em", ("snli-ve",)),
        ("Mocheg", "classification", "em", ("mocheg",)),
        ("Shapes", "vqa", "em", ("shapes",)),
        ("OCRVQA", "vqa", "em", ("ocr-vqa",)),
        ("GQA", "vqa", "em", ("gqa",)),
        ("SQA", "vqa", "em", ("science-qa", "ScienceQA")),
        ("CLEVR", "reasoning", "em", ("clevr",)),
        ("NLVR", "reasoning", "em", ("nlvr",)),
        ("VisDial", "generation", "em", ("visual-dialog",)),
        ("Multi30k", "generation", "gleu", ("multi30k",)),
    )
    return tuple(
        TaskSpec(name, "large", metric, group=group, aliases=aliases, stem=f"M3IT-{name}")
        for name, group, metric, aliases in rows
    )


BENCHMARKS: dict[str, tuple[TaskSpec, ...]] = {"academic": _academic(), "chat": _chat(), "large": _large()}
GENERIC = "generic"
RULE_KINDS = ("image", "id", "question")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class TaskRule:
    """``TASK=KIND:REGEX``: records whose ``KIND`` (image path, id or first question) matches go to ``TASK``.

    ``image`` is searched in every image path of the record (``""`` for a record without image, so ``image:^$``
    selects text-only records); ``question`` in the first human turn without ``<image>`` tokens.
    """

    task: str
    kind: str
    pattern: re.Pattern[str]

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` matches this rule."""
        if self.kind == "id":
            return bool(self.pattern.search(str(record.get("id", ""))))
        if self.kind == "image":
            images = record.get("image", record.get("images"))
            paths = images if isinstance(images, list) else ([images] if isinstance(images, str) else [""])
            return any(self.pattern.search(str(p)) for p in (paths or [""]))
        turns = record.get("conversations")
        first = turns[0].get("value", "") if isinstance(turns, list) and turns and isinstance(turns[0], dict) else ""
        return bool(self.pattern.search(str(first).replace(IMAGE_TOKEN, "").strip()))


def parse_rule(text: str) -> TaskRule:
    """Parse ``TASK=KIND:REGEX`` (``--task-rule``)."""
    task, sep, rest = text.partition("=")
    kind, sep2, pattern = rest.partition(":")
    if not sep or not sep2 or not task.strip() or kind not in RULE_KINDS:
        raise ConvertError(
            f"--task-rule {text!r}: expected TASK=KIND:REGEX with KIND one of {', '.join(RULE_KINDS)}, e.g. "
            "--task-rule 'ocrvqa=image:^ocr_vqa/'."
        )
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ConvertError(f"--task-rule {text!r}: {pattern!r} is not a valid regular expression ({err}).") from None
    return TaskRule(task.strip(), kind, compiled)


def generic_spec(name: str, metric: str | None = None) -> TaskSpec:
    """The spec of a task of the generic mode: no instruction, no merging, images optional."""
    if not _SAFE_NAME.match(name) or name in ("mini", "base") or "+" in name:
        raise ConvertError(
            f"task name {name!r} cannot name a dataset file: use letters, digits, '.', '_' or '-' (not 'mini', "
            "'base' or '+'), e.g. map it with --task-rule or rename the task field values."
        )
    return TaskSpec(name, GENERIC, metric, eval_splits=())


def task_table(benchmark: str) -> dict[str, TaskSpec]:
    """Map every accepted task spelling (name and aliases) of ``benchmark`` to its :class:`TaskSpec`."""
    if benchmark == GENERIC:
        return {}
    if benchmark not in BENCHMARKS:
        raise ConvertError(f"unknown benchmark {benchmark!r}; known: {', '.join([*BENCHMARKS, GENERIC])}.")
    table: dict[str, TaskSpec] = {}
    for spec in BENCHMARKS[benchmark]:
        for key in (spec.name, *spec.aliases):
            table[key] = spec
    return table


def dataset_entry(spec: TaskSpec, variant: str = "", split: str = "train") -> tuple[str, dict[str, Any]]:
    """Return ``(dataset name, dataset_info.json entry)`` for one converted file of ``spec``."""
    if variant not in VARIANTS:
        raise ConvertError(f"unknown subset variant {variant!r}; known: {VARIANTS}.")
    name = f"{spec.file_stem}{variant}_{split}"
    entry: dict[str, Any] = {
        "file_name": f"{name}.json",
        "formatting": "sharegpt",
        "columns": dict(SHAREGPT_COLUMNS),
        "tags": dict(SHAREGPT_TAGS),
    }
    # Every entry names its task: an evaluation entry in a `loss: cotbal` run's eval_dataset is scored as that
    # training task. Evaluation entries also carry their split, so that `cotbal plan` resolving a task name to
    # its datasets takes the training entries only.
    entry["cotbal_task"] = spec.cotbal_task
    if split not in TRAIN_SPLITS:
        entry["cotbal_split"] = split
    if spec.metric is not None:
        entry["cotbal_metric"] = spec.metric
    return name, entry


def benchmark_dataset_info(benchmarks: Iterable[str] = tuple(BENCHMARKS)) -> dict[str, dict[str, Any]]:
    """Build the shipped ``dataset_info/dataset_info.json``: the train and eval entries of every task.

    Mini / plus-mini entries are not listed: ``cotbal plan`` draws the subsets itself, and a converted mini file
    gets its entry in the ``dataset_info.json`` that ``cotbal convert`` writes.
    """
    info: dict[str, dict[str, Any]] = {}
    for benchmark in benchmarks:
        for spec in BENCHMARKS[benchmark]:
            for split in ("train", *spec.eval_splits):
                name, entry = dataset_entry(spec, "", split)
                info[name] = entry
    return info


_NAME_RE = re.compile(r"^(?P<stem>.+?)(?P<variant>-plus-mini|-mini)?_(?P<split>[A-Za-z]+)(?:-[0-9.]+[kKmM]?)?$")


def parse_annotation_name(path: str | Path) -> tuple[str, str, str] | None:
    """Parse ``{stem}(-mini|-plus-mini)_{split}(-{size}).json`` into ``(stem, variant, split)``, else ``None``."""
    match = _NAME_RE.match(Path(path).name.removesuffix(".json"))
    if match is None:
        return None
    return match["stem"], match["variant"] or "", match["split"]


@dataclass
class _Conversation:
    id: str
    source_ids: list[str]
    images: list[str]  # absolute paths
    pairs: list[tuple[str, str]]  # (question without image tokens, answer)


@dataclass
class ConvertResult:
    """What :func:`convert_files` wrote."""

    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # dataset name -> file
    counts: dict[str, int] = field(default_factory=dict)  # dataset name -> conversations written
    records: dict[str, int] = field(default_factory=dict)  # dataset name -> input records used
    dataset_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # problems of the records left out (skip_invalid)


class _Errors:
    """Collects input errors so one run reports all of them (up to a limit) instead of the first only."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:MAX_LISTED_ERRORS]
        more = len(self.messages) - len(shown)
        text = "\n  ".join(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise ConvertError(f"{len(self.messages)} problem(s) in the input:\n  {text}{tail}")


def _append_instruction(question: str, instruction: str | None) -> str:
    if not instruction or question.rstrip().endswith(instruction):
        return question
    return f"{question.rstrip()}\n{instruction}"


class _Tasks:
    """Finds the task of a record: its task field, else the first matching rule, else the default."""

    def __init__(
        self,
        benchmark: str,
        task_field: str,
        default: str | None,
        rules: Sequence[TaskRule],
        metrics: Mapping[str, str],
    ) -> None:
        self.benchmark = benchmark
        self.table = task_table(benchmark)
        self.field = task_field
        self.default = default
        self.rules = list(rules)
        self.metrics = dict(metrics)
        self._generic: dict[str, TaskSpec] = {}
        if benchmark != GENERIC:
            for name, option in [(default, "--task"), *((r.task, "--task-rule") for r in self.rules)]:
                if name is not None and name not in self.table:
                    known = ", ".join(s.name for s in BENCHMARKS[benchmark])
                    raise ConvertError(
                        f"unknown {option} task {name!r}; known {benchmark} tasks: {known} (any name with "
                        "--benchmark generic)."
                    )
            if self.metrics:
                raise ConvertError("--metric is for --benchmark generic; the paper's tasks have their metrics.")
        else:
            for name in [default, *(r.task for r in self.rules), *self.metrics]:
                if name is not None:
                    generic_spec(name)

    def name(self, record: Mapping[str, Any]) -> str | None:
        """The task name of ``record`` (None when nothing names one)."""
        if record.get(self.field) is not None:
            return str(record[self.field])
        for rule in self.rules:
            if rule.matches(record):
                return rule.task
        return self.default

    def spec(self, name: str) -> TaskSpec | None:
        """The spec of task ``name`` (None for a name the benchmark does not know)."""
        if self.benchmark != GENERIC:
            return self.table.get(name)
        if name not in self._generic:
            self._generic[name] = generic_spec(name, self.metrics.get(name))
        return self._generic[name]

    def missing(self) -> str:
        """What to do about a record without a task."""
        if self.rules:
            return f"no {self.field!r} field and no --task-rule matched (add a rule or a --task default)"
        return f"no {self.field!r} field (pass --task NAME to set it for records without one, or --task-rule)"


def _parse_record(
    record: Any,
    index: int,
    source: str,
    tasks: _Tasks,
    image_folder: Path,
    image_cache: dict[Path, bool],
    add_instruction: bool,
    errors: _Errors,
) -> tuple[TaskSpec, _Conversation] | None:
    where = f"{source} record #{index}"
    if not isinstance(record, dict):
        errors.add(f"{where}: expected a JSON object, got {type(record).__name__}.")
        return None
    rid = str(record.get("id", f"#{index}"))
    where = f"{source} id {rid!r}"
    task_name = tasks.name(record)
    if task_name is None:
        errors.add(f"{where}: {tasks.missing()}.")
        return None
    benchmark = tasks.benchmark
    try:
        spec = tasks.spec(str(task_name))
    except ConvertError as err:
        errors.add(f"{where}: {err}")
        return None
    if spec is None:
        hint = ""
        for other, specs in BENCHMARKS.items():
            if other != benchmark and any(str(task_name) in (s.name, *s.aliases) for s in specs):
                hint = f" (it is a task of the {other!r} benchmark: pass --benchmark {other})"
        known = ", ".join(s.name for s in BENCHMARKS[benchmark])
        errors.add(f"{where}: unknown task {task_name!r}{hint}; known {benchmark} tasks: {known}.")
        return None

    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        errors.add(f"{where}: 'conversations' must be a non-empty list.")
        return None
    pairs: list[tuple[str, str]] = []
    n_tokens = 0
    for k in range(0, len(turns), 2):
        human = turns[k]
        gpt = turns[k + 1] if k + 1 < len(turns) else None
        ok = (
            isinstance(human, dict)
            and isinstance(gpt, dict)
            and human.get("from") == "human"
            and gpt.get("from") == "gpt"
            and isinstance(human.get("value"), str)
            and isinstance(gpt.get("value"), str)
        )
        if not ok:
            errors.add(
                f"{where}: turns {k}-{k + 1} are not a human/gpt pair with string values "
                "(conversations must alternate human, gpt, human, gpt, ...)."
            )
            return None
        n_tokens += human["value"].count(IMAGE_TOKEN) + gpt["value"].count(IMAGE_TOKEN)
        question = human["value"].replace(IMAGE_TOKEN, "").strip()
        if add_instruction:
            question = _append_instruction(question, spec.instruction)
        pairs.append((question, gpt["value"]))

    raw_images = record.get("image", record.get("images"))
    if raw_images is None:
        names: list[str] = []
    elif isinstance(raw_images, str):
        names = [raw_images]
    elif isinstance(raw_images, list) and all(isinstance(x, str) for x in raw_images):
        names = list(raw_images)
    else:
        errors.add(f"{where}: 'image' must be a path or a list of paths, got {raw_images!r}.")
        return None
    if not spec.has_images and names:
        errors.add(f"{where}: task {spec.name!r} is text-only but the record has image(s) {names}.")
        return None
    if n_tokens not in (0, len(names)):
        errors.add(f"{where}: {n_tokens} {IMAGE_TOKEN} token(s) for {len(names)} image(s).")
        return None
    images: list[str] = []
    for name in names:
        path = Path(name) if os.path.isabs(name) else image_folder / name
        if path not in image_cache:
            image_cache[path] = path.is_file()
        if not image_cache[path]:
            errors.add(f"{where}: image {name!r} not found (looked for {str(path)!r}; set --image-folder).")
            return None
        images.append(os.path.abspath(path))
    return spec, _Conversation(rid, [rid], images, pairs)


def _merge_same_image(convs: list[_Conversation]) -> list[_Conversation]:
    """Merge single-image conversations about the same image, in order of first appearance."""
    merged: list[_Conversation] = []
    by_image: dict[str, _Conversation] = {}
    for conv in convs:
        if len(conv.images) != 1:
            merged.append(conv)
            continue
        target = by_image.get(conv.images[0])
        if target is None:
            target = _Conversation(conv.id, list(conv.source_ids), list(conv.images), list(conv.pairs))
            by_image[conv.images[0]] = target
            merged.append(target)
        else:
            target.source_ids.extend(conv.source_ids)
            target.pairs.extend(conv.pairs)
    return merged


def _split_long(convs: list[_Conversation], max_turns: int) -> list[_Conversation]:
    out: list[_Conversation] = []
    for conv in convs:
        if max_turns <= 0 or len(conv.pairs) <= max_turns:
            out.append(conv)
            continue
        for seg, start in enumerate(range(0, len(conv.pairs), max_turns)):
            pairs = conv.pairs[start : start + max_turns]
            out.append(_Conversation(f"{conv.id}#{seg}", conv.source_ids, conv.images, pairs))
    return out


def _render(conv: _Conversation, out_dir: Path, absolute_paths: bool) -> dict[str, Any]:
    turns: list[dict[str, str]] = []
    for k, (question, answer) in enumerate(conv.pairs):
        if k == 0 and conv.images:
            question = IMAGE_TOKEN * len(conv.images) + "\n" + question
        turns.append({"from": "human", "value": question})
        turns.append({"from": "gpt", "value": answer})
    if absolute_paths:
        images = list(conv.images)
    else:
        images = [Path(os.path.relpath(p, out_dir)).as_posix() for p in conv.images]
    sample: dict[str, Any] = {"id": conv.id, "conversations": turns, "images": images}
    if len(conv.source_ids) > 1:
        sample["source_ids"] = conv.source_ids
    return sample


def _load_json_list(path: Path) -> list[Any]:
    if not path.is_file():
        raise ConvertError(f"annotation file {str(path)!r} does not exist.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConvertError(f"annotation file {str(path)!r} is not valid JSON ({err}).") from None
    if not isinstance(data, list):
        kind = type(data).__name__
        raise ConvertError(f"annotation file {str(path)!r} must hold a JSON list of records, got {kind}.")
    return data


def _check_out_dir(out_dir: Path, targets: Iterable[str], overwrite: bool) -> None:
    if overwrite or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConvertError(f"output path {str(out_dir)!r} exists and is not a folder.")
    clashes = sorted(name for name in {MANIFEST_NAME, DATASET_INFO_NAME, *targets} if (out_dir / name).exists())
    if clashes:
        raise ConvertError(
            f"output folder {str(out_dir)!r} already holds {', '.join(clashes)} (another run's output); "
            "pass --overwrite to replace those files and merge dataset_info.json, or choose another --out."
        )


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def convert_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    image_folder: str | Path | None = None,
    benchmark: str = "academic",
    split: str | None = None,
    variant: str | None = None,
    task: str | None = None,
    add_instruction: bool = True,
    merge: bool = True,
    max_turns: int = 10,
    absolute_paths: bool = False,
    overwrite: bool = False,
    task_field: str = "task",
    rules: Sequence[TaskRule | str] = (),
    metrics: Mapping[str, str] | None = None,
    skip_invalid: bool = False,
) -> ConvertResult:
    """Convert annotation files to per-task sharegpt files plus ``dataset_info.json`` in ``out_dir``.

    Args:
        inputs: LLaVA-style annotation files (JSON lists). Split and variant are read from names following
            ``{stem}(-mini|-plus-mini)_{split}(-{size}).json`` unless ``split`` / ``variant`` are given.
        out_dir: output folder (created). Use it as ``dataset_dir`` in the training YAML.
        image_folder: root that relative ``image`` paths are resolved against (default: each input's folder).
        benchmark: ``academic``, ``chat`` or ``large`` — which task names are known — or ``generic`` (any name).
        split: split of every input (``train``, ``val``, ``test``, ...); merging and splitting happen in
            ``train`` only.
        variant: ``""``, ``"-mini"`` or ``"-plus-mini"`` for every input.
        task: task of records that have no task field and match no rule.
        add_instruction: append each task's response-format instruction to its questions.
        merge: merge same-image turns of VQA / RefCOCO tasks in training splits.
        max_turns: split merged training conversations longer than this many turns (0: never).
        absolute_paths: write absolute image paths instead of paths relative to ``out_dir``.
        overwrite: write into a folder that holds another run's files (same-named files are replaced,
            ``dataset_info.json`` entries are merged).
        task_field: the record field that names the task.
        rules: ``TaskRule`` s (or ``TASK=KIND:REGEX`` strings) for records without the task field; first match wins.
        metrics: generic mode: ``{task: metric}`` written as ``cotbal_metric`` of its entries.
        skip_invalid: leave bad records out (listed in ``cotbal_convert_skipped.jsonl``) instead of failing.

    Raises:
        ConvertError: on any bad input, listing the culprits; nothing is written then.
    """
    if not inputs:
        raise ConvertError("no annotation files given.")
    if variant is not None and variant not in VARIANTS:
        raise ConvertError(f"unknown --variant {variant!r}; known: {', '.join(repr(v) for v in VARIANTS)}.")
    if max_turns < 0:
        raise ConvertError(f"--max-turns must be >= 0, got {max_turns}.")
    parsed_rules = [r if isinstance(r, TaskRule) else parse_rule(r) for r in rules]
    if metrics:
        from .probe.errors import ProbeError
        from .probe.metrics import get_metric

        for name, metric in metrics.items():
            try:
                get_metric(metric)
            except ProbeError as err:
                raise ConvertError(f"--metric {name}={metric}: {err}") from None
    tasks = _Tasks(benchmark, task_field, task, parsed_rules, metrics or {})
    out_dir = Path(out_dir).resolve()
    errors = _Errors()
    image_cache: dict[Path, bool] = {}
    groups: dict[tuple[TaskSpec, str, str], list[_Conversation]] = {}
    for raw_path in inputs:
        path = Path(raw_path)
        parsed = parse_annotation_name(path)
        file_split = split or (parsed[2] if parsed else None)
        file_variant = variant if variant is not None else (parsed[1] if parsed else "")
        if file_split is None:
            raise ConvertError(
                f"cannot tell the split of {str(path)!r}: name it {{task}}_{{split}}-{{size}}.json "
                "(e.g. VQAv2_train-83k.json) or pass --split."
            )
        records = _load_json_list(path)
        root = Path(image_folder) if image_folder is not None else path.parent
        for index, record in enumerate(records):
            parsed_record = _parse_record(record, index, str(path), tasks, root, image_cache, add_instruction, errors)
            if parsed_record is not None:
                spec, conv = parsed_record
                groups.setdefault((spec, file_variant, file_split), []).append(conv)
    skipped = list(errors.messages) if skip_invalid else []
    if not skip_invalid:
        errors.raise_if_any()
    if not groups:
        raise ConvertError(f"no record could be converted ({len(skipped)} skipped as invalid); check the input.")

    result = ConvertResult(out_dir=out_dir)
    outputs: dict[str, list[dict[str, Any]]] = {}
    for (spec, file_variant, file_split), convs in groups.items():
        name, entry = dataset_entry(spec, file_variant, file_split)
        result.records[name] = len(convs)
        if file_split in TRAIN_SPLITS and spec.merge_same_image and merge:
            convs = _split_long(_merge_same_image(convs), max_turns)
        outputs[name] = [_render(c, out_dir, absolute_paths) for c in convs]
        result.dataset_info[name] = entry
        result.files[name] = out_dir / entry["file_name"]
        result.counts[name] = len(outputs[name])

    _check_out_dir(out_dir, [p.name for p in result.files.values()], overwrite)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, samples in outputs.items():
        _write_json(result.files[name], samples)
    info_path = out_dir / DATASET_INFO_NAME
    info: dict[str, Any] = {}
    if overwrite and info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConvertError(f"existing {str(info_path)!r} is not valid JSON ({err}); remove it.") from None
    info.update(result.dataset_info)
    _write_json(info_path, info)
    datasets: dict[str, Any] = {}
    manifest_path = out_dir / MANIFEST_NAME
    if overwrite and manifest_path.is_file():
        try:
            datasets = dict(json.loads(manifest_path.read_text(encoding="utf-8")).get("datasets", {}))
        except (json.JSONDecodeError, AttributeError):
            datasets = {}
    for name in result.files:
        datasets[name] = {
            "file": result.files[name].name,
            "records": result.records[name],
            "conversations": result.counts[name],
        }
    manifest = {
        "tool": "cotbal convert",
        "benchmark": benchmark,
        "inputs": [str(Path(p).resolve()) for p in inputs],
        "options": {
            "add_instruction": add_instruction,
            "merge": merge,
            "max_turns": max_turns,
            "absolute_paths": absolute_paths,
            "task_field": task_field,
            "task_rules": [f"{r.task}={r.kind}:{r.pattern.pattern}" for r in parsed_rules],
            "default_task": task,
        },
        "datasets": datasets,
        "skipped": len(skipped),
    }
    _write_json(manifest_path, manifest)
    if skipped:
        with (out_dir / SKIPPED_NAME).open("w", encoding="utf-8") as f:
            for message in skipped:
                f.write(json.dumps({"problem": message}, ensure_ascii=False) + "\n")
    result.skipped = skipped
    return result
