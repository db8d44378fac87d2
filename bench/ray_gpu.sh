#!/usr/bin/env bash
# Issue 16 on one H200: `batch` in-process against `batch --ray` (a local Ray, one replica of 1 GPU), 32 synthetic
# 16K-token contracts, Qwen3-Next-80B-A3B FP8 architecture on dummy weights, one mode per device command:
#   bash bench/ray_gpu.sh inproc|ray
# Before it: the wheel parts of ../shared/gpu (see bench/e2e_gpu.sh) plus Ray's, copied to /root/stage
# (.gpu-wheels/rayp1-4: ray 2.60.0 split in two, pyarrow, pandas and Ray's small deps; numpy is the host's).
set -u
mode=${1:?inproc or ray}
export PYTHONPATH=/root/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 RAY_AUTH_MODE=disabled DOCANALYST_ENGINE=local
[ -f /root/site/.installed ] || { bash /root/stage/install-wheels.sh /root/stage /root/site > /root/install.log 2>&1 && touch /root/site/.installed; tail -3 /root/install.log; }
rm -rf /root/site/huggingface_hub /root/site/huggingface_hub-*.dist-info
M=/root/qwen-fp8; mkdir -p $M
cp docanalyst/engine_configs/qwen3-next-80b-a3b-fp8.config.json $M/config.json
cp bench/assets/tokenizer_config.json bench/assets/chat_template.jinja $M/; gunzip -c bench/assets/tokenizer.json.gz > $M/tokenizer.json
[ -d /root/docs32 ] || python bench/synthetic_contracts.py /root/docs32 --count 32 --words 12000
extra=(); [ "$mode" = ray ] && extra=(--ray)
t0=$(date +%s.%N)
python -m docanalyst.cli batch /root/docs32 --profile qwen3-next --model $M --template contract \
  --engine-arg load_format=dummy --engine-arg gdn_prefill_backend=triton --batch-size 32 \
  --db sqlite:////root/$mode-$(date +%s).db --jsonl "${extra[@]}" > $OUT/$mode.jsonl 2> $OUT/$mode.err
rc=$?
t1=$(date +%s.%N)
python - "$mode" "$t0" "$t1" "$rc" <<'PY' | tee $OUT/$mode.summary.json
import json, sys
mode, t0, t1, rc = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rows = [json.loads(l) for l in open(f"{__import__('os').environ['OUT']}/{mode}.jsonl")]
starts = [r["timings"].get("engine_start_s") for r in rows if r["timings"].get("engine_start_s")]
wall = t1 - t0
engine = max(starts) if starts else None
print(json.dumps({"mode": mode, "exit": rc, "documents": len(rows), "wall_s": round(wall, 1), "engine_start_s": engine,
                  "statuses": sorted({r["status"] for r in rows}),
                  "docs_per_min_after_engine": round(len(rows) / ((wall - (engine or 0)) / 60), 2) if rows else None,
                  "prompt_tokens": sum(r["usage"].get("prompt_tokens", 0) for r in rows),
                  "completion_tokens": sum(r["usage"].get("completion_tokens", 0) for r in rows)}))
PY
tail -3 $OUT/$mode.err
