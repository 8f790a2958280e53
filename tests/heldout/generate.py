#!/usr/bin/env python3
"""Held-out persistence diagrams for the semantic engine, computed by ripser from noisy point clouds.

Nothing here shares code or parameters with the engine's own archetype generator: the shapes are classic
topological spaces (circle, figure-eight, torus, clusters, sphere), sampled at random sizes, scales, noise
levels and orientations in R^3, and their Vietoris-Rips diagrams (H0, H1, H2) come from ripser.

Variants:
  standard  100-160 points, Gaussian noise 0-8% of the shape's size, scales 0.5x-4x
  hard      40-90 points, noise 6-18%, scales 0.1x-20x, plus 0-15% uniform outliers in the bounding box

Each variant is written as <variant>-train.jsonl and <variant>-test.jsonl (an even split per shape), one
labelled anomaly per line in the dataset format of `aura eval`; essential deaths are written as null.

Usage: python3 generate.py [--per-shape N] [--seed S] [--out DIR]
Requires: numpy, ripser (pip install numpy ripser).
"""
import argparse
import json
import math
import os

import numpy as np
from ripser import ripser

SHAPES = ["circle", "figure-eight", "torus", "clusters", "sphere"]

VARIANTS = {
    "standard": dict(points=(100, 160), noise=(0.0, 0.08), scale=(0.5, 4.0), outliers=(0.0, 0.0)),
    "hard": dict(points=(40, 90), noise=(0.06, 0.18), scale=(0.1, 20.0), outliers=(0.0, 0.15)),
}


def sample_shape(shape, n, rng):
    if shape == "circle":
        t = rng.uniform(0, 2 * math.pi, n)
        return np.c_[np.cos(t), np.sin(t), np.zeros(n)]
    if shape == "figure-eight":
        # Two unit circles touching at the origin.
        t = rng.uniform(0, 2 * math.pi, n)
        side = rng.choice([-1.0, 1.0], n)
        return np.c_[side * (1 + np.cos(t)), np.sin(t), np.zeros(n)]
    if shape == "torus":
        big, small = rng.uniform(1.8, 2.6), rng.uniform(0.7, 1.0)
        u, v = rng.uniform(0, 2 * math.pi, n), rng.uniform(0, 2 * math.pi, n)
        return np.c_[(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u), small * np.sin(v)] / big
    if shape == "clusters":
        k = int(rng.integers(2, 6))
        centers = rng.uniform(-1.5, 1.5, (k, 3))
        labels = rng.integers(0, k, n)
        return centers[labels] + rng.normal(0, 0.12, (n, 3))
    if shape == "sphere":
        x = rng.normal(size=(n, 3))
        return x / np.linalg.norm(x, axis=1, keepdims=True)
    raise ValueError(shape)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def cloud(shape, params, rng):
    n = int(rng.integers(params["points"][0], params["points"][1] + 1))
    x = sample_shape(shape, n, rng)
    x = x + rng.normal(0, rng.uniform(*params["noise"]), x.shape)
    n_out = int(round(n * rng.uniform(*params["outliers"])))
    if n_out:
        lo, hi = x.min(axis=0), x.max(axis=0)
        x[rng.choice(n, n_out, replace=False)] = rng.uniform(lo, hi, (n_out, 3))
    scale = math.exp(rng.uniform(math.log(params["scale"][0]), math.log(params["scale"][1])))
    return (x @ random_rotation(rng).T) * scale + rng.uniform(-10, 10, 3)


def diagram(x):
    dgms = ripser(x, maxdim=2)["dgms"]
    out = []
    for dim, d in enumerate(dgms):
        for birth, death in d:
            if death - birth <= 0:
                continue
            out.append({
                "dimension": dim,
                "birth": float(f"{birth:.4g}"),
                "death": None if math.isinf(death) else float(f"{death:.4g}"),
            })
    return out


def record(i, variant, shape, dgm):
    return {
        "anomaly": {
            "anomaly_id": f"{variant}-{i}",
            "correlation_id": f"{variant}-{i}",
            "source": f"heldout-{variant}",
            "detected_at": 1_700_000_000_000 + i,
            "anomaly_score": 0.5,
            "severity": "MEDIUM",
            "betti": [],
            "diagram": dgm,
            "signature": [],
            "tags": [],
            "entities": [],
            "attributes": {},
        },
        "label": {"pattern": shape},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-shape", type=int, default=80, help="diagrams per shape and variant (half train, half test)")
    ap.add_argument("--seed", type=int, default=20240611)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for variant in args.variants.split(","):
        params = VARIANTS[variant]
        rows = {"train": [], "test": []}
        i = 0
        for shape in SHAPES:
            for j in range(args.per_shape):
                rows["train" if j % 2 == 0 else "test"].append(record(i, variant, shape, diagram(cloud(shape, params, rng))))
                i += 1
        for split, items in rows.items():
            order = rng.permutation(len(items))
            path = os.path.join(args.out, f"{variant}-{split}.jsonl")
            with open(path, "w") as f:
                for k in order:
                    f.write(json.dumps(items[k], separators=(",", ":")) + "\n")
            print(f"wrote {len(items)} diagrams to {path}")


if __name__ == "__main__":
    main()
