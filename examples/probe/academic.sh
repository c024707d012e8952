#!/usr/bin/env bash
# CoTBal task weights for LLaVA-1.5-7B on the Academic Benchmark (paper §3, §4.1.4, Table 10), end to end:
#   plan the probes -> train and predict them -> score -> weights.json (+ report)
#
# Prerequisites (docs/probes.md, docs/datasets.md):
#   * the annotations converted into data/cotbal:  cotbal convert ... --out data/cotbal
#   * LLaMA-Factory 0.9.5 + this plugin installed; run from the repository root (paths below are relative to it)
#   * examples/probe/llava1_5_7b_probe_base.yaml starts from llava-hf/llava-1.5-7b-hf, i.e. CONTINUED fine-tuning
#     of an instruction-tuned model; to follow the paper (Vicuna-1.5 + stage-1 projector) build the stage-1 model
#     with examples/stage1/ and point model_name_or_path of the base YAML at it.
#
# Usage:
#   bash examples/probe/academic.sh [cotbal run options]
#   e.g. bash examples/probe/academic.sh --gpus 0,1,2,3,4,5,6,7 --gpus-per-job 8
# Environment: OUT (plan folder, default runs/academic), THROUGHPUT (training tokens/s per GPU, for the GPU-hour
# estimate), COTBAL (the cotbal command, default: cotbal), CHECK (default 1: `cotbal plan --check` runs
# LLaMA-Factory's own argument checks on every YAML first; CHECK= skips it). On a Slurm cluster, stop after the plan
# (PLAN_ONLY=1) and submit instead:
#   cotbal run --manifest runs/academic/manifest.json --dry-run --format slurm --gpus-per-job 8
set -euo pipefail

OUT=${OUT:-runs/academic}
COTBAL=${COTBAL:-cotbal}
CHECK=${CHECK-1}

# ShareGPT is trained in every probe (mini subset) but not balanced: its weight stays 1.0 (paper §4.1.4);
# `--fixed TASK=WEIGHT` reads the same in `cotbal plan` (which records it in run_all.sh) and `cotbal weights`.
# Every task's validation set and metric(s) are spelled out (without --val a task takes its <task>_val entry of
# dataset_info.json; without --metric the "cotbal_metric" of that entry). The first metric is the one balanced on.
$COTBAL plan \
  --base-yaml examples/probe/llava1_5_7b_probe_base.yaml \
  --dataset-info data/cotbal/dataset_info.json \
  --out "$OUT" \
  --fixed ShareGPT=1.0 \
  --mini-fraction 1/32 \
  --val ShareGPT4V=ShareGPT4V_val           --metric ShareGPT4V=cider \
  --val RefCOCO-caption=RefCOCO-caption_val --metric RefCOCO-caption=cider \
  --val VQAv2=VQAv2_val                     --metric VQAv2=em \
  --val GQA=GQA_val                         --metric GQA=em \
  --val ChartQA=ChartQA_val                 --metric ChartQA=em \
  --val OCRVQA=OCRVQA_val                   --metric OCRVQA=em \
  --val RefCOCO-bbox=RefCOCO-bbox_val       --metric RefCOCO-bbox=iou_acc,miou \
  ${THROUGHPUT:+--throughput "$THROUGHPUT"} \
  ${CHECK:+--check}

if [ -n "${PLAN_ONLY:-}" ]; then exit 0; fi

# 8 probe trainings (mini, and TASK+mini for the 7 tasks) and 56 predictions; finished jobs are skipped and an
# interrupted training resumes from its last checkpoint, so this script can simply be run again.
$COTBAL run --manifest "$OUT/manifest.json" "$@"
$COTBAL eval --manifest "$OUT/manifest.json" --out "$OUT/scores.json"
$COTBAL weights --scores "$OUT/scores.json" --temperature 0.5 --fixed ShareGPT=1.0 --out "$OUT/weights.json"
$COTBAL report --weights "$OUT/weights.json" --out "$OUT/report"
echo "weights: $OUT/weights.json"
echo "final training: set cotbal_weights: $OUT/weights.json in examples/train_full/llava1_5_7b_cotbal.yaml, then"
echo "  llamafactory-cli train examples/train_full/llava1_5_7b_cotbal.yaml"
