#!/usr/bin/env bash
# One call's worth of GPU measurements on the lent machine (../shared/device/README.md), every part
# time-boxed so the whole fits one `run` (timeout_s 600), logs teed under $OUT as they are written:
#   here:    bash ../shared/device/pack.sh
#   device:  run(command: "bash scripts/device-bench.sh", carry: [".device"], timeout_s: 590)
# Order = value per second: adapter, our model step, torchvision's on the same GPU, the embedded
# default training run end to end, the ResNet-50-FPN step, then the kernel micro-benchmarks.
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT"
t0=$(date +%s)
left() { echo $(( ${BUDGET_S:-570} - ($(date +%s) - t0) )); }
part() { # part NAME MAX_S CMD...: runs CMD with min(MAX_S, time left - 5) seconds, log in $OUT/NAME.log
  local name=$1 max=$2; shift 2
  local lim; lim=$(left); lim=$(( lim - 5 < max ? lim - 5 : max ))
  if [ "$lim" -lt 10 ]; then echo "== $name skipped: ${lim}s left" | tee -a "$OUT/summary.log"; return; fi
  echo "== $name (limit ${lim}s) $(date -u +%FT%TZ)" | tee -a "$OUT/summary.log"
  local s; s=$(date +%s)
  timeout -k 5 "$lim" "$@" > "$OUT/$name.log" 2>&1
  echo "== $name rc=$? in $(( $(date +%s) - s ))s" | tee -a "$OUT/summary.log"
  tail -4 "$OUT/$name.log"
}
{ nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv; } > "$OUT/gpu.txt" 2>&1
# The NVIDIA Vulkan ICD (libGLX_nvidia.so.0) returns no vkCreateInstance without libglvnd's libraries
# (2026-11-29 run: "Could not get 'vkCreateInstance' via 'vk_icdGetInstanceProcAddr'", adapter NONE;
# NVIDIA/nvidia-container-toolkit#1952, same driver line, was fixed by libegl1). Bring them as the
# device README's loader recipe does: here, once, `(mkdir -p .device/gl && cd .device/gl && apt-get download
# libglvnd0 libegl1 libgl1 libglx0 libopengl0 libgles2)`; there they are unpacked to / before enter.sh.
{ uname -r; ldconfig -p | grep -E 'libvulkan|libEGL|libGLdispatch|libGLX' ; cat "${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"; } >> "$OUT/gpu.txt" 2>&1
if ls .device/gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libEGL.so.1 '; then
  for f in .device/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
f=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$f" ] && [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$f
# not `source … | tee`: a pipeline runs the source in a subshell and its PATH/VK_DRIVER_FILES exports would be lost
source .device/enter.sh > "$OUT/adapter.txt" 2>&1; cat "$OUT/adapter.txt"
node --version >> "$OUT/adapter.txt" 2>&1; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}" >> "$OUT/adapter.txt"
cat "$OUT/gpu.txt" "$OUT/adapter.txt" >> "$OUT/summary.log"
probe() { node --input-type=module -e "const { create, globals } = await import('webgpu'); Object.assign(globalThis, globals); const a = await create([]).requestAdapter(); console.log(a ? 'adapter ' + a.info.vendor + ' ' + a.info.architecture + ' ' + a.info.description : 'NONE'); process.exit(0);" 2>&1 | grep -v '^Warning' | tail -1; }
if grep -q 'device adapter: NONE' "$OUT/adapter.txt"; then
  # other ICD manifests on the machine, then one naming the EGL flavour of the same driver
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libEGL_nvidia.so.0","api_version":"1.3.0"}}' > /tmp/nvidia_egl_icd.json
  for icd in $(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan -name '*.json' 2>/dev/null | grep -i icd) /tmp/nvidia_egl_icd.json; do
    r=$(VK_DRIVER_FILES=$icd probe); echo "probe VK_DRIVER_FILES=$icd: $r" | tee -a "$OUT/adapter.txt"
    case "$r" in adapter*) export VK_DRIVER_FILES=$icd; sed -i 's/device adapter: NONE/device adapter: found on retry/' "$OUT/adapter.txt"; break;; esac
  done
  cat "$OUT/adapter.txt" >> "$OUT/summary.log"
fi
if grep -q 'device adapter: NONE' "$OUT/adapter.txt"; then # the loader's own account of why, for the next try
  VK_LOADER_DEBUG=error,warn,driver node -e "import('webgpu').then(async ({ create }) => { await create([]).requestAdapter(); process.exit(0); })" > "$OUT/vk-loader-debug.txt" 2>&1
  tail -20 "$OUT/vk-loader-debug.txt"
  echo "no WebGPU adapter: stopping here (device time is scarce)" | tee -a "$OUT/summary.log"; exit 3
fi
export PYTHONUNBUFFERED=1
part model-shapes 90 node --import tsx bench/model.ts --bs 8 --steps 20 --out "$OUT/model-shapes.json"
part peer-gpu 120 python3 bench/model_peer_gpu.py --out "$OUT/peer-gpu.json" --reps 20
part train-default 180 node --import tsx model/train.ts --save_dir /tmp/run --nw 8
part model-full 80 node --import tsx bench/model.ts --full --steps 3 --out "$OUT/model-full.json"
part bench-kernels 400 node --import tsx bench/run.ts --full --reps 5 --out "$OUT/bench-full.json"
# at most 8 files come back: everything in one archive, the summary beside it
(cd "$OUT" && tar -czf /tmp/device-bench.tgz --exclude=summary.log . && find . -mindepth 1 ! -name summary.log -delete && mv /tmp/device-bench.tgz . && cp /tmp/run/*.png . 2>/dev/null; ls -la)
