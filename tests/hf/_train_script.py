"""Training jobs from a JSON spec, run one after the other in one launch; the tests start it under
``torchrun --nproc_per_node 2`` (DDP or DeepSpeed over gloo), so one process-group start serves several runs.

    torchrun --nproc_per_node 2 tests/hf/_train_script.py spec.json

spec: ``{"jobs": [job, ...]}``; a job has ``kind`` (``text``: ``CotbalTrainer`` on a tiny Llama and tokenized rows;
``codebase``: ``make_cotbal_trainer(LLaVATrainer)`` on the LLaVA-codebase-style model of ``_llava_mimic``),
``model`` (folder), ``args`` (``TrainingArguments`` keyword arguments), ``cotbal`` (``cotbal_*`` keyword arguments),
``out`` (folder: the final model and ``log_history.json``), and ``rows`` (JSON file of ``{"input_ids", "labels",
"task"}`` rows) or ``llava_json`` + ``image_folder``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's cotbal_plugin and tests


def build(job: dict[str, Any]) -> Any:
    """The trainer of one job."""
    from transformers import AutoTokenizer, TrainingArguments

    from cotbal_plugin.hf import CotbalTrainer, make_cotbal_trainer

    if job["kind"] == "text":
        import datasets
        from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq

        tokenizer = AutoTokenizer.from_pretrained(job["model"])
        rows = json.loads(Path(job["rows"]).read_text(encoding="utf-8"))
        return CotbalTrainer(
            model=AutoModelForCausalLM.from_pretrained(job["model"]),
            args=TrainingArguments(**job["args"]),
            train_dataset=datasets.Dataset.from_list(rows),
            data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
            **job["cotbal"],
        )
    from transformers import AutoProcessor

    from tests.hf import _llava_mimic as mimic

    processor = AutoProcessor.from_pretrained(job["model"])
    return make_cotbal_trainer(mimic.LLaVATrainer)(
        model=mimic.tiny_llava_llama(job["model"]),
        processing_class=processor.tokenizer,
        args=mimic.LlavaTrainingArguments(**job["args"]),
        train_dataset=mimic.LazySupervisedDataset(job["llava_json"], job["image_folder"], processor, expand=False),
        data_collator=mimic.DataCollatorForSupervisedDataset(processor.tokenizer, "images"),
        **job["cotbal"],
    )


def main(spec_path: str) -> None:
    """Run every job; save each final model (rank 0 writes) and its log history."""
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    for job in spec["jobs"]:
        trainer = build(job)
        trainer.train()
        trainer.save_model(job["out"])
        if trainer.is_world_process_zero():
            history = json.dumps(trainer.state.log_history)
            (Path(job["out"]) / "log_history.json").write_text(history, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
