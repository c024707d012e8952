"""One ``CotbalTrainer`` run from a JSON spec; launched by the tests under ``torchrun --nproc_per_node 2``.

    torchrun --nproc_per_node 2 tests/hf/_train_script.py spec.json

spec: ``model`` (folder), ``rows`` (JSON file of ``{"input_ids", "labels", "task"}`` rows), ``args`` (keyword
arguments of ``TrainingArguments``), ``cotbal`` (``cotbal_*`` keyword arguments), ``out`` (folder: the final model
and ``log_history.json``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's cotbal_plugin and tests


def main(spec_path: str) -> None:
    """Train as the spec says and save the final model (rank 0) and the log history."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, TrainingArguments

    from cotbal_plugin.hf import CotbalTrainer

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"])
    rows = json.loads(Path(spec["rows"]).read_text(encoding="utf-8"))
    trainer = CotbalTrainer(
        model=model,
        args=TrainingArguments(**spec["args"]),
        train_dataset=datasets.Dataset.from_list(rows),
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100),
        **spec["cotbal"],
    )
    trainer.train()
    trainer.save_model(spec["out"])
    if trainer.is_world_process_zero():
        history = json.dumps(trainer.state.log_history)
        (Path(spec["out"]) / "log_history.json").write_text(history, encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
