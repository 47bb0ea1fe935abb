#!/usr/bin/env bash
# Bad-input test: fogpipe against a corpus of truncated, oversized and
# malformed cfg files, weights files, raw inputs, names files and images.
#
# Every bad input must give exit status 1 (2 for usage errors) and exactly one
# line on stderr starting with "fogpipe", with no sanitizer report, no crash
# and no hang. A few edge inputs that are valid must be accepted (exit 0,
# nothing on stderr). Big and truncated files are generated here, in a
# temporary directory, from the small committed corpus in tests/data/bad/:
#   cfg/*.cfg      malformed cfg files (inspect)
#   img/*          malformed images (detect); ok_* ones must be accepted
#   tiny16.cfg     a valid 16x16x3 network with a YOLO head (forward, detect)
#   other16.cfg    another valid network, without a head
#   gray16.cfg     a valid network with a 1-channel input
#   memory_*.cfg   valid networks needing tens of GiB to TiB, run under a cap
#   binary.names   a names file that is binary data
#   make_images.py regenerates img/
# (tests/data/bad/README.md lists what each file tests.)
#
# Environment (set by ctest; defaults for running by hand from the repo root):
#   FOGPIPE   the fogpipe binary under test (build/fogpipe)
#   FP_BUILD  the build directory            (build)
#   FP_SRC    the source directory           (.)
#   BAD_KEEP=1  keep the temporary directory and print its path
# Prints "ok CASE: <error line>" or "FAIL CASE: <why>" per case, then
# "N passed, N failed". Exit: 0 all passed, 1 any failed.
set -u

FP_SRC=${FP_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
FP_BUILD=${FP_BUILD:-$FP_SRC/build}
FOGPIPE=${FOGPIPE:-$FP_BUILD/fogpipe}
BAD=$FP_SRC/tests/data/bad
LIMIT=${FP_CASE_TIMEOUT:-90} # seconds per command; generous, CI machines are shared

if [ ! -x "$FOGPIPE" ]; then
    echo "FAIL: fogpipe binary $FOGPIPE not found"
    exit 1
fi
if [ ! -d "$BAD/cfg" ] || [ ! -d "$BAD/img" ]; then
    echo "FAIL: corpus $BAD not found"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bad_input.XXXXXX") || exit 1
if [ "${BAD_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
ulimit -c 0 2>/dev/null # a crash must not leave a core file behind
# Sanitizer builds: report leaks too, and print reports where we read them.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:log_path=stderr
export UBSAN_OPTIONS=${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1

pass=0
fail=0

# The first line of a file, shortened for the report.
first_line() { head -n 1 "$1" | cut -c 1-300; }

# Runs a command with the time limit; sets $rc, stdout in $tmp/out, stderr in $tmp/err.
# With MEMCAP=1 (commands run under $CAPPED, below) the allocation-failure
# warnings ASan prints when malloc returns NULL are dropped from stderr.
MEMCAP=0
run() {
    timeout -k 5 "$LIMIT" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    if [ "$MEMCAP" = 1 ]; then
        grep -v -E '^==[0-9]+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes$' "$tmp/err" >"$tmp/err2"
        mv "$tmp/err2" "$tmp/err"
    fi
}

# Problems every run is checked for, whatever it was expected to do.
# Prints the reason and returns 1 when there is one.
common_problems() {
    if [ "$rc" = 124 ]; then
        echo "timed out after ${LIMIT}s"
        return 1
    fi
    if [ "$rc" = 137 ]; then
        echo "killed by SIGKILL (hung past ${LIMIT}s, or out of memory)"
        return 1
    fi
    if [ "$rc" -gt 128 ]; then
        echo "killed by signal $((rc - 128))"
        return 1
    fi
    if grep -q -E 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error|ThreadSanitizer' "$tmp/err"; then
        echo "sanitizer report: $(grep -m 1 -E 'ERROR|runtime error|SUMMARY' "$tmp/err" | cut -c 1-300)"
        return 1
    fi
    return 0
}

# bad CASE WANT_RC COMMAND...: the command must fail with WANT_RC (1: bad
# input, 2: usage) and exactly one non-empty stderr line starting with
# "fogpipe: " (usage errors: "fogpipe COMMAND: ").
bad() {
    local name=$1 want=$2 why
    shift 2
    run "$@"
    if ! why=$(common_problems); then
        echo "FAIL $name: $why"
        fail=$((fail + 1))
        return
    fi
    local lines prefix='^fogpipe: [^ ]'
    lines=$(awk 'END { print NR }' "$tmp/err")
    [ "$want" = 2 ] && prefix='^fogpipe( [a-z-]+)?: [^ ]'
    if [ "$rc" != "$want" ]; then
        why="exit status $rc, expected $want"
        [ "$rc" = 0 ] && why="$why (the bad input was accepted)"
        [ -s "$tmp/err" ] && why="$why: $(first_line "$tmp/err")"
    elif [ "$lines" != 1 ]; then
        why="$lines lines on stderr, expected 1: $(tr '\n' '|' <"$tmp/err" | cut -c 1-300)"
    elif [ -n "$(tail -c 1 "$tmp/err")" ]; then
        why="the error line does not end with a newline"
    elif ! grep -q -E "$prefix" "$tmp/err"; then
        why="the error line does not start with \"fogpipe: \": $(first_line "$tmp/err")"
    else
        echo "ok $name: $(first_line "$tmp/err")"
        pass=$((pass + 1))
        return
    fi
    echo "FAIL $name: $why"
    fail=$((fail + 1))
}

# good CASE COMMAND...: an edge input that is valid: exit 0, stderr empty.
good() {
    local name=$1 why
    shift
    run "$@"
    if ! why=$(common_problems); then
        :
    elif [ "$rc" != 0 ]; then
        why="exit status $rc, expected 0: $(first_line "$tmp/err")"
    elif [ -s "$tmp/err" ]; then
        why="unexpected stderr: $(first_line "$tmp/err")"
    else
        echo "ok $name: accepted"
        pass=$((pass + 1))
        return
    fi
    echo "FAIL $name: $why"
    fail=$((fail + 1))
}

# setup WHAT COMMAND...: a step the cases need; the test stops if it fails.
setup() {
    local what=$1 why
    shift
    run "$@"
    if ! why=$(common_problems) || [ "$rc" != 0 ]; then
        echo "FAIL setup ($what): ${why:-exit status $rc}: $(first_line "$tmp/err")"
        exit 1
    fi
}

filesize() { wc -c <"$1" | tr -d ' '; }

# CAPPED: a command prefix that runs a command with at most 2 GiB of memory:
# ulimit -v for a plain build; for a sanitizer build (which reserves
# terabytes of address space) ASan's own allocation cap, past which malloc
# returns NULL.
if grep -q -a __asan_init "$FOGPIPE"; then
    CAPPED=(env "ASAN_OPTIONS=$ASAN_OPTIONS:allocator_may_return_null=1:max_allocation_size_mb=2048:hard_rss_limit_mb=3072")
else
    CAPPED=(bash -c 'ulimit -v 2097152 && exec "$@"' capped)
fi

TINY=$BAD/tiny16.cfg
OTHER=$BAD/other16.cfg
mkdir -p "$tmp/cfg" "$tmp/w" "$tmp/in" "$tmp/img" "$tmp/ann" "$tmp/adir"

# ---------------------------------------------------------------- cfg files
for f in "$BAD"/cfg/*.cfg; do
    bad "cfg/$(basename "$f")" 1 "$FOGPIPE" inspect --cfg "$f"
done

# Generated: too big to commit.
{
    printf '[net]\nwidth=16\nheight=16\nchannels=3\n\n[maxpool]\nsize=2\nstride=2\nnames='
    head -c 9994 /dev/zero | tr '\0' 'a'
    printf '\n'
} >"$tmp/cfg/line_10000_chars.cfg"
{
    printf '[net]\nwidth=16\nheight=16\nchannels=3\n'
    for _ in $(seq 1 5000); do printf '\n[maxpool]\nsize=1\nstride=1\n'; done
} >"$tmp/cfg/maxpool_x5000.cfg"
{
    printf '[net]\nwidth=16\nheight=16\nchannels=3\n\n[maxpool]\nsize=2\nstride=2\n'
    yes '# padding comment: this cfg is 5 MiB, over the 4 MiB limit' | head -c $((5 << 20))
} >"$tmp/cfg/size_5MiB.cfg"
for f in "$tmp"/cfg/*.cfg; do
    bad "gen/$(basename "$f")" 1 "$FOGPIPE" inspect --cfg "$f"
done
bad "cfg_missing" 1 "$FOGPIPE" inspect --cfg "$tmp/no-such-file.cfg"
bad "cfg_is_directory" 1 "$FOGPIPE" inspect --cfg "$tmp/cfg"
bad "cfg_bad_for_random_weights" 1 "$FOGPIPE" random-weights --cfg "$BAD/cfg/yolo_channel_mismatch.cfg" -o "$tmp/w/never.weights"

# ------------------------------------------------------------ weights files
W=$tmp/w/tiny16.weights
setup "random weights for tiny16.cfg" "$FOGPIPE" random-weights --cfg "$TINY" --seed 5 -o "$W"
setup "random weights for other16.cfg" "$FOGPIPE" random-weights --cfg "$OTHER" --seed 5 -o "$tmp/w/other16.weights"
S=$(filesize "$W")
IN=$tmp/in/ok.f32
head -c $((16 * 16 * 3 * 4)) /dev/zero >"$IN"
setup "forward with good weights" "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$IN" --output "$tmp/out.f32"

: >"$tmp/w/empty.weights"
head -c 3 "$W" >"$tmp/w/3_bytes.weights"
head -c 20 "$W" >"$tmp/w/header_only.weights"
head -c 12 "$W" >"$tmp/w/header_cut.weights"
head -c $((S / 2)) "$W" >"$tmp/w/half.weights"
head -c $((S - 4)) "$W" >"$tmp/w/one_float_short.weights"
head -c $((S - 1)) "$W" >"$tmp/w/one_byte_short.weights"
{ cat "$W"; head -c 4 /dev/zero; } >"$tmp/w/one_float_extra.weights"
{ printf '\377\377\377\377'; tail -c +5 "$W"; } >"$tmp/w/negative_major.weights"
{ head -c 4 "$W"; printf '\000\000\000\200'; tail -c +9 "$W"; } >"$tmp/w/minor_int_min.weights"
{ printf '\350\003\000\000\350\003\000\000'; tail -c +9 "$W"; } >"$tmp/w/version_1000.1000.weights"
# A NaN in the first layer's biases, an infinity in the last float.
cp "$W" "$tmp/w/nan.weights"
printf '\000\000\300\177' | dd of="$tmp/w/nan.weights" bs=1 seek=24 conv=notrunc 2>/dev/null
cp "$W" "$tmp/w/inf_last.weights"
printf '\000\000\200\377' | dd of="$tmp/w/inf_last.weights" bs=1 seek=$((S - 4)) conv=notrunc 2>/dev/null
cp "$tmp/w/other16.weights" "$tmp/w/for_other_cfg.weights"
for f in "$tmp"/w/*.weights; do
    case $(basename "$f") in tiny16.weights | other16.weights) continue ;; esac
    bad "weights/$(basename "$f")" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$f" --input-raw "$IN" --output "$tmp/out.f32"
done
bad "weights_missing" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$tmp/no-such.weights" --input-raw "$IN" --output "$tmp/out.f32"
bad "weights_is_directory" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$tmp/w" --input-raw "$IN" --output "$tmp/out.f32"
bad "weights_is_cfg_text" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$TINY" --input-raw "$IN" --output "$tmp/out.f32"
bad "weights_bad_in_detect" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$tmp/w/half.weights" "$BAD/img/empty.jpg"
# Darknet's transposed format (major version > 1000, 4-byte "seen"): the
# [connected] weights are transposed on load; a valid file must load.
{ printf '\351\003\000\000\000\000\000\000\000\000\000\000\000\000\000\000'; tail -c +21 "$tmp/w/other16.weights"; } >"$tmp/transposed.weights"
good "weights_transposed_ok" "$FOGPIPE" forward --cfg "$OTHER" --weights "$tmp/transposed.weights" --input-raw "$IN" --output "$tmp/out.f32"
{ head -c 16 "$tmp/transposed.weights"; tail -c +21 "$tmp/w/other16.weights" | head -c 1000; } >"$tmp/w2.weights"
bad "weights_transposed_truncated" 1 "$FOGPIPE" forward --cfg "$OTHER" --weights "$tmp/w2.weights" --input-raw "$IN" --output "$tmp/out.f32"

# ------------------------------------------ valid cfgs that need huge memory
# Under a 2 GiB cap the activation arena / workspace cannot be allocated:
# the failure must be a clean error, not a crash (or an OOM kill).
for c in memory_workspace memory_arena; do
    setup "random weights for $c.cfg" "$FOGPIPE" random-weights --cfg "$BAD/$c.cfg" -o "$tmp/$c.weights"
    MEMCAP=1
    bad "memory/$c.cfg" 1 "${CAPPED[@]}" "$FOGPIPE" forward --cfg "$BAD/$c.cfg" --weights "$tmp/$c.weights" --input-raw "$IN" --output "$tmp/out.f32"
    MEMCAP=0
done

# ---------------------------------------------------------- forward inputs
head -c $((16 * 16 * 3 * 4 - 4)) /dev/zero >"$tmp/in/one_float_short.f32"
head -c $((16 * 16 * 3 * 4 + 4)) /dev/zero >"$tmp/in/one_float_long.f32"
head -c $((16 * 16 * 3 * 4 - 1)) /dev/zero >"$tmp/in/one_byte_short.f32"
: >"$tmp/in/empty.f32"
for f in "$tmp"/in/*.f32; do
    [ "$f" = "$IN" ] && continue
    bad "input/$(basename "$f")" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$f" --output "$tmp/out.f32"
done
bad "input_missing" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$tmp/no-such.f32" --output "$tmp/out.f32"
bad "output_unwritable" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$IN" --output "$tmp/no-such-dir/out.f32"
bad "dump_layers_is_a_file" 1 "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$IN" --output "$tmp/out.f32" --dump-layers "$IN"

# ------------------------------------------------------------------- usage
bad "usage_forward_no_weights" 2 "$FOGPIPE" forward --cfg "$TINY" --input-raw "$IN" --output "$tmp/out.f32"
bad "usage_detect_no_image" 2 "$FOGPIPE" detect --cfg "$TINY" --weights "$W"
bad "usage_threads_zero" 2 "$FOGPIPE" forward --cfg "$TINY" --weights "$W" --input-raw "$IN" --output "$tmp/out.f32" --threads 0
bad "usage_threshold_nan" 2 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --threshold nan "$IN"

# ------------------------------------------------------------------ images
# A valid 24x16 PPM made here; named .jpg/.png so that detect --annotate
# writes a real JPEG and PNG of it, whose truncated copies are bad inputs.
ppm() { # ppm W H FILE: a W x H P6 image with a fixed pattern
    {
        printf 'P6\n%d %d\n255\n' "$1" "$2"
        awk -v n=$(($1 * $2 * 3)) 'BEGIN { for (i = 0; i < n; i++) printf "%c", 32 + (i * 7) % 90 }'
    } >"$3"
}
ppm 24 16 "$tmp/img/gen.ppm"
cp "$tmp/img/gen.ppm" "$tmp/adir/gen.jpg"
cp "$tmp/img/gen.ppm" "$tmp/adir/gen.png"
setup "detect --annotate on a good image" "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --annotate "$tmp/ann" "$tmp/adir/gen.jpg" "$tmp/adir/gen.png"
JPG=$tmp/ann/gen.jpg
PNG=$tmp/ann/gen.png
if [ "$(head -c 2 "$JPG" | od -An -tx1 | tr -d ' ')" != ffd8 ] || [ "$(head -c 4 "$PNG" | tail -c 3)" != PNG ]; then
    echo "FAIL setup: detect --annotate did not write a JPEG and a PNG"
    exit 1
fi
setup "detect on the annotated JPEG and PNG" "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$JPG" "$PNG"
JS=$(filesize "$JPG")
PS=$(filesize "$PNG")
head -c $((JS / 2)) "$JPG" >"$tmp/img/jpeg_truncated_half.jpg"
head -c $((JS - 2)) "$JPG" >"$tmp/img/jpeg_no_eoi.jpg"
head -c 100 "$JPG" >"$tmp/img/jpeg_first_100_bytes.jpg"
head -c $((PS / 2)) "$PNG" >"$tmp/img/png_truncated_half.png"
head -c $((PS - 12)) "$PNG" >"$tmp/img/png_no_iend.png"
head -c 33 "$PNG" >"$tmp/img/png_ihdr_only.png"
head -c $((JS - 1)) "$JPG" >"$tmp/img/jpeg_cut_last_byte.jpg"
head -c $((PS - 1)) "$PNG" >"$tmp/img/png_cut_last_byte.png"
# The real JPEG with an EXIF block inserted after SOI: malformed EXIF is
# ignored (the image must load), a valid orientation is applied.
exif_jpeg() { # exif_jpeg OUT TIFF-BYTES-AS-PRINTF-ESCAPES LENGTH
    { head -c 2 "$JPG"; printf '\377\341'; printf "\\$(printf '%03o' $((($3 + 8) >> 8)))\\$(printf '%03o' $((($3 + 8) & 255)))"; printf 'Exif\000\000'; printf "$2"; tail -c +3 "$JPG"; } >"$1"
}
exif_jpeg "$tmp/img/ok_jpeg_exif_offset_far.jpg" 'II*\000\360\377\377\377' 8
exif_jpeg "$tmp/img/ok_jpeg_exif_count_huge.jpg" 'MM\000*\000\000\000\010\377\377\001\022\000\003' 14
exif_jpeg "$tmp/img/ok_jpeg_exif_entry_cut.jpg" 'II*\000\010\000\000\000\001\000\022\001\003\000\001\000' 16
exif_jpeg "$tmp/img/ok_jpeg_exif_tiff_cut.jpg" 'II*' 3
exif_jpeg "$tmp/img/ok_jpeg_exif_rotate_90.jpg" 'II*\000\010\000\000\000\001\000\022\001\003\000\001\000\000\000\006\000\000\000\000\000\000\000' 30
head -c $(($(filesize "$tmp/img/gen.ppm") - 1)) "$tmp/img/gen.ppm" >"$tmp/img/ppm_one_byte_short.ppm"
rm "$tmp/img/gen.ppm"
for f in "$BAD"/img/* "$tmp"/img/*; do
    case $(basename "$f") in
    ok_*) good "img/$(basename "$f")" "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$f" ;;
    *) bad "img/$(basename "$f")" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$f" ;;
    esac
done
bad "image_missing" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$tmp/no-such.jpg"
bad "image_is_directory" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$tmp/img"
bad "image_raw_floats" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$IN"

# One bad image among good ones: one error line, exit 1, the good ones reported.
bad "image_bad_among_good" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$JPG" "$BAD/img/png_0x0.png" "$PNG"
if [ "$(grep -c '"image"' "$tmp/out")" = 2 ]; then
    echo "ok image_bad_among_good/stdout: the two good images reported"
    pass=$((pass + 1))
else
    echo "FAIL image_bad_among_good/stdout: expected 2 JSON lines for the good images, got: $(head -c 300 "$tmp/out")"
    fail=$((fail + 1))
fi

# Absurd but valid shapes: one row, one column.
ppm 32768 1 "$tmp/wide.ppm"
ppm 1 32768 "$tmp/tall.ppm"
good "img_gen/ok_32768x1.ppm" "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$tmp/wide.ppm"
good "img_gen/ok_1x32768.ppm" "$FOGPIPE" detect --cfg "$TINY" --weights "$W" "$tmp/tall.ppm"

# ------------------------------------------------------ detect: cfg, names
bad "detect_cfg_without_head" 1 "$FOGPIPE" detect --cfg "$OTHER" --weights "$tmp/w/other16.weights" "$JPG"
setup "random weights for gray16.cfg" "$FOGPIPE" random-weights --cfg "$BAD/gray16.cfg" -o "$tmp/gray16.weights"
bad "detect_cfg_one_channel" 1 "$FOGPIPE" detect --cfg "$BAD/gray16.cfg" --weights "$tmp/gray16.weights" "$JPG"
bad "names_binary" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --names "$BAD/binary.names" "$JPG"
yes person | head -n 100002 >"$tmp/many.names"
bad "names_100002_lines" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --names "$tmp/many.names" "$JPG"
bad "names_missing" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --names "$tmp/no-such.names" "$JPG"
bad "names_is_directory" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --names "$tmp/img" "$JPG"
bad "annotate_dir_is_a_file" 1 "$FOGPIPE" detect --cfg "$TINY" --weights "$W" --annotate "$IN" "$JPG"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
