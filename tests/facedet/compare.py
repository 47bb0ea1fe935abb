#!/usr/bin/env python3
"""compare.py — fogpipe's face detections against face-api's (the reference).

  compare.py REF.jsonl FP_<size>_<threshold>.jsonl...

REF.jsonl is faceapi_ref.js's output at the lowest threshold used; each
fogpipe file holds `fogpipe detect --input-size <size> --threshold
<threshold>` over the same images. For every (image, size, threshold) the
reference keeps its detections with score > threshold (greedy NMS picks the
same boxes above a threshold whatever lower threshold it ran with), and
fogpipe must give the same number of faces, each matched one to one with a
score within SCORE_TOL and every box edge within EDGE_TOL pixels. fogpipe
clamps boxes to the image, so the reference's edges are clamped too.
Prints one line per case and per size, then "N passed, N failed"; exits 1
on any failure or when the cases cover no face or no face-free image.
"""
import json
import os
import re
import sys

SCORE_TOL = 0.01
EDGE_TOL = 2.0


def edges(box, w, h, clamp):
    x0, y0, x1, y1 = box["x"], box["y"], box["x"] + box["w"], box["y"] + box["h"]
    if clamp:
        x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
        y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
    return (x0, y0, x1, y1)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ref = {}
    for line in open(argv[1]):
        r = json.loads(line)
        ref[(r["image"], r["size"])] = r
    passed = failed = faces = empty = 0
    per_size = {}
    for path in argv[2:]:
        m = re.match(r"fp_(\d+)_([0-9.]+)\.jsonl$", os.path.basename(path))
        if not m:
            print(f"FAIL {path}: name must be fp_<size>_<threshold>.jsonl")
            failed += 1
            continue
        size, thr = int(m.group(1)), float(m.group(2))
        st = per_size.setdefault((size, thr), {"images": 0, "faces": 0, "score": 0.0, "edge": 0.0})
        for line in open(path):
            got = json.loads(line)
            key = (got["image"], size)
            name = f"{os.path.basename(got['image'])} @{size} >{thr}"
            if key not in ref:
                print(f"FAIL {name}: no reference")
                failed += 1
                continue
            r = ref[key]
            w, h = r["width"], r["height"]
            want = sorted((d for d in r["detections"] if d["score"] > thr), key=lambda d: -d["score"])
            have = list(got["detections"])
            st["images"] += 1
            problems = []
            if (got["width"], got["height"]) != (w, h):
                problems.append(f"size {got['width']}x{got['height']}, reference {w}x{h}")
            if len(have) != len(want):
                problems.append(f"{len(have)} faces, face-api finds {len(want)}: "
                                f"fogpipe {[round(d['score'], 4) for d in have]}, "
                                f"face-api {[round(d['score'], 4) for d in want]}")
            else:
                for d in want:
                    e = edges(d["box"], w, h, True)
                    best = min(have, key=lambda g: max(abs(a - b) for a, b in zip(edges(g["box"], w, h, False), e)))
                    have.remove(best)
                    de = max(abs(a - b) for a, b in zip(edges(best["box"], w, h, False), e))
                    ds = abs(best["score"] - d["score"])
                    if best.get("label") != "face":
                        problems.append(f"label {best.get('label')!r}, expected 'face'")
                    if ds > SCORE_TOL or de > EDGE_TOL:
                        problems.append(f"face at {[round(v, 1) for v in e]} score {d['score']:.4f}: fogpipe "
                                        f"{[round(v, 1) for v in edges(best['box'], w, h, False)]} "
                                        f"score {best['score']:.4f} (score diff {ds:.4g}, edge diff {de:.3g} px)")
                    st["score"] = max(st["score"], ds)
                    st["edge"] = max(st["edge"], de)
            st["faces"] += len(want)
            faces += len(want)
            empty += not want
            if problems:
                print(f"FAIL {name}: " + "; ".join(problems))
                failed += 1
            else:
                print(f"ok   {name}: {len(want)} faces")
                passed += 1
    for (size, thr), st in sorted(per_size.items()):
        print(f"size {size}, threshold {thr}: {st['images']} images, {st['faces']} faces, "
              f"max score diff {st['score']:.2g}, max edge diff {st['edge']:.2g} px")
    if faces == 0 or empty == 0:
        print(f"FAIL coverage: {faces} faces, {empty} cases without a face (need both)")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
