#!/usr/bin/python3
"""Inputs of bench/serve_load/run from LFW: people to enrol (first photo), probes (their second photo, and one
photo each of as many people not enrolled), and synthetic people that fill the gallery up to --people."""
import argparse, base64, json, os, random
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--lfw", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--known", type=int, default=100)
ap.add_argument("--people", type=int, default=10000)
a = ap.parse_args()
rng = random.Random(13)
names = sorted(os.listdir(a.lfw))
names = [n for n in names if os.path.isdir(os.path.join(a.lfw, n))]
multi = [n for n in names if len(os.listdir(os.path.join(a.lfw, n))) >= 2]
single = [n for n in names if n not in set(multi)]
known = rng.sample(multi, a.known)
strangers = rng.sample(single, a.known)
photo = lambda n, i: os.path.join(a.lfw, n, "%s_%04d.jpg" % (n, i))
with open(os.path.join(a.out, "enrol.tsv"), "w") as f:
    for n in known: f.write("%s\t%s\n" % (n, photo(n, 1)))
with open(os.path.join(a.out, "probes.txt"), "w") as f:
    for n in known: f.write(photo(n, 2) + "\n")
    for n in strangers: f.write(photo(n, 1) + "\n")
# Synthetic people: random unit vectors (what they add is search cost; they are far from every real face).
np.random.seed(13)
with open(os.path.join(a.out, "filler.jsonl"), "w") as f:
    f.write(json.dumps({"format": "facekit-gallery-export", "gallery_uuid": "00000000-0000-0000-0000-000000000013",
                        "people": a.people - a.known, "revision": 1, "templates": a.people - a.known, "version": 2}) + "\n")
    for i in range(a.people - a.known):
        v = np.random.randn(128).astype(np.float32)
        v /= np.linalg.norm(v)
        f.write(json.dumps({"created_at": 1796213342, "metadata": {}, "name": "synthetic %05d" % i, "templates": [
            {"created_at": 1796213342, "embedder": "dlib_resnet", "embedder_version": "1.7.15",
             "embedding": base64.b64encode(v.tobytes()).decode(), "kind": "synthetic", "quality": 1.0,
             "source_sha256": ""}]}) + "\n")
