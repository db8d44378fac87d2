#!/usr/bin/env bash
# The H200 run of bench/e2e_gpu.py (issue 15), as one device command. Before it, here in the project root:
#   echo /.gpu-wheels/ >> .git/info/exclude; echo /.gpu-run/ >> .git/info/exclude
#   printf '%s\n' pyyaml==6.0.3 uvicorn==0.38.0 h11==0.16.0 model_hosting_container_standards==0.1.16 \
#       jmespath==1.0.1 supervisor==4.3.0 httpx==0.28.1 > .gpu-run/extra-req.txt
#   ../shared/gpu/stage-wheels.sh .gpu-wheels ../shared/gpu/requirements-docanalyst.txt .gpu-run/extra-req.txt
#   .venv/bin/python bench/e2e_gpu.py prepare --docs .gpu-run/docs        # book, 32K/128K cuts, 250K bundle
#   mkdir -p .gpu-run/old && git archive <commit before issue 15> docanalyst prompts | tar -x -C .gpu-run/old
# then one device `run` per wheel part (carry .gpu-wheels/partK; mkdir -p /root/stage && cp .gpu-wheels/partK/*
# /root/stage/), the last one carrying .gpu-run/docs and .gpu-run/old too, and finally (2026-12-03: 1,592 s of
# device time in all, incl. a cold host, 8 copies and a serve start of 252 s), two commands of ≤ 600 s:
#   timeout 585 bash bench/e2e_gpu.sh book.pdf:template=contract book.pdf:ask=4 \
#       book.pdf:code=.gpu-run/old,template=contract book.pdf:groups=1,template=contract ...
#   timeout 450 bash bench/e2e_gpu.sh book-32k.pdf:groups=1,template=contract ... book-128k.pdf:evidence=refs,...
# The serve stays up (setsid) for a second command with more cases on the same host.
# On the GPU host: install (once), serve the real-architecture profile (dummy weights), run the cases given as args.
set -u
export PYTHONPATH=/root/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_SERVER_DEV_MODE=1
[ -f /root/site/.installed ] || { bash /root/stage/install-wheels.sh /root/stage /root/site > /root/install.log 2>&1 && touch /root/site/.installed; tail -3 /root/install.log; }
# the host image has huggingface_hub (its transformers needs a newer one than 0.36: is_offline_mode); one staged
# by hand would shadow it
rm -rf /root/site/huggingface_hub /root/site/huggingface_hub-*.dist-info
M=/root/qwen-fp8; mkdir -p $M
cp docanalyst/engine_configs/qwen3-next-80b-a3b-fp8.config.json $M/config.json
cp bench/assets/tokenizer_config.json bench/assets/chat_template.jinja $M/; gunzip -c bench/assets/tokenizer.json.gz > $M/tokenizer.json
URL=http://127.0.0.1:8008
if ! curl -sf $URL/v1/models > /dev/null; then
  t0=$(date +%s)
  nohup setsid python -m docanalyst.cli serve --profile qwen3-next --model $M --engine-arg load_format=dummy \
     --engine-arg gdn_prefill_backend=triton > /root/serve.log 2>&1 &
  pid=$!
  until curl -sf $URL/v1/models > /dev/null; do
    sleep 2; kill -0 $pid 2> /dev/null || break; [ $(( $(date +%s) - t0 )) -gt 420 ] && break
  done
  echo "serve ready after $(( $(date +%s) - t0 )) s"; tail -5 /root/serve.log
else echo "serve already up"; fi
MODEL=$(curl -s $URL/v1/models | python -c "import json,sys; print(json.load(sys.stdin)['data'][0]['id'])")
echo "model: $MODEL"
nproc
cases=(); for c in "$@"; do cases+=(--case "$c"); done
python bench/e2e_gpu.py run --docs .gpu-run/docs --engine $URL --model "$MODEL" --out $OUT/e2e.jsonl "${cases[@]}"
[ -n "${READ_BENCH:-}" ] && timeout 90 python bench/read_bench.py .gpu-run/docs/book.pdf --repeat 3 --json $OUT/read.json > $OUT/read.txt 2>&1
cp /root/serve.log $OUT/serve.log 2>/dev/null; tail -c 20000 /root/serve.log > $OUT/serve.log
