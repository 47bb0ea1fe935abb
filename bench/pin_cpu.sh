# Sourced by the single-thread benchmarks (bench/engine.sh, bench/facedet.sh):
# sets pin1, a command prefix that pins a run to CPU $CPU1 (FP_BENCH_CPU,
# default the last CPU; "none", or no taskset: not pinned, pin1 empty).
# Every engine's one-thread runs go to the same CPU: the vCPUs of a shared VM
# need not be alike (here one ran yolov3-tiny 28.4 ms, the other 32.1, both
# fogpipe and ONNX Runtime about 12% apart, which one for minutes at a time),
# and an unpinned process gets one or the other.
CPU1=${FP_BENCH_CPU:-$(($(nproc) - 1))}
pin1=(taskset -c "$CPU1")
if [ "$CPU1" = none ] || ! command -v taskset >/dev/null; then pin1=(); CPU1=none; fi
