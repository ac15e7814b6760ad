"""A LightGBM forest flattened once per champion and walked by one compiled kernel.

Why not the booster's own ``predict``: LightGBM walks a block row by row,
each row through all of the model's trees (4,200 for the default champion:
600 rounds x 7 classes, about 13 MB of nodes kept in five separate arrays per
tree), so a 1,000-row request drags the whole model through the CPU caches a
thousand times.  Here every split is one 24-byte record, each tree's records
are contiguous, and the kernel walks the forest tree by tree, every row of
the block through a tree while that tree is in cache: measured in process on
the benchmark's model, 3-4x less CPU per row from about 64 rows on.  A lone
row costs what it costs in LightGBM (the walk waits on memory either way).

The answers are the booster's own.  The model is read from its text
(``Booster.model_to_string``, the format of LightGBM's saved models;
thresholds and leaf values are written with 17 significant digits, which
read back as the same doubles); splits
decide as LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` do (missing values, the zero threshold,
categories as sets); leaf values are summed in LightGBM's order, round by
round and class by class, and turned into probabilities by the same
softmax.  On 10,000 real rows the largest difference from ``predict`` was
2.2e-16.  The serving side still checks every champion against the logged
pipeline before this path serves (``predictors.build_predictor``).

Only what the candidates train is supported: multiclass softmax, no linear
trees, no random-forest averaging; anything else raises ``Unsupported`` and
the booster's own predict serves.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

# Node kinds: a numerical split by its missing-value rule (LightGBM's MissingType), or a category set.
MISSING_NONE, MISSING_ZERO, MISSING_NAN, CATEGORY_SET = 0, 1, 2, 3

# LightGBM's kZeroThreshold is the float 1e-35f, compared as a double.
ZERO_THRESHOLD = float(np.float32(1e-35))

NODE = np.dtype(
    [
        ("threshold", np.float64),  # numerical splits; for category sets, the set's row in ``category_sets``
        ("left", np.int32),  # child index: >= 0 a node, < 0 the leaf ``~child``
        ("right", np.int32),
        ("feature", np.int32),
        ("kind", np.uint8),
        ("default_left", np.uint8),
    ],
    align=True,
)


class Unsupported(ValueError):
    """The booster is not a shape this kernel reproduces (its own predict serves instead)."""


@numba.njit(nogil=True, cache=False)
def _raw_scores(x, nodes, leaves, roots, category_sets, n_classes, out):  # pragma: no cover - compiled
    """Add every tree's leaf value for every row of ``x`` to ``out`` (rows x classes), tree by tree."""
    n_rows = x.shape[0]
    width = category_sets.shape[1]
    for tree in range(roots.shape[0]):
        klass = tree % n_classes
        root = roots[tree]
        for row in range(n_rows):
            node = root
            while node >= 0:
                split = nodes[node]
                value = x[row, split.feature]
                kind = split.kind
                if kind == CATEGORY_SET:
                    if np.isnan(value) or value < 0:
                        node = split.right
                    else:
                        category = int(value)
                        known = category < width and category_sets[int(split.threshold), category] != 0
                        node = split.left if known else split.right
                    continue
                if np.isnan(value) and kind != MISSING_NAN:
                    value = 0.0
                if (kind == MISSING_ZERO and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD) or (
                    kind == MISSING_NAN and np.isnan(value)
                ):
                    node = split.left if split.default_left else split.right
                elif value <= split.threshold:
                    node = split.left
                else:
                    node = split.right
            out[row, klass] += leaves[~node]
    return out


def _softmax(raw: np.ndarray) -> np.ndarray:
    """LightGBM's ``Common::Softmax``: exp(score - max) over its sum, row by row."""
    shifted = np.exp(raw - raw.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for splitting a big block's rows (the kernel releases the GIL)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="forestops-forest")
    return _POOL


@dataclass(frozen=True)
class Forest:
    nodes: np.ndarray  # NODE records, each tree's splits contiguous, in LightGBM's order
    leaves: np.ndarray  # float64 leaf values
    roots: np.ndarray  # int32 per tree, in LightGBM's order (round by round, class by class)
    category_sets: np.ndarray  # uint8 (sets, largest category + 1): 1 where the category goes left
    n_classes: int
    n_features: int

    @classmethod
    def from_lightgbm(cls, booster: Any) -> Forest:
        return _flatten(booster.model_to_string())

    def predict_proba(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """Class probabilities for the float64 matrix ``x`` (rows x the booster's features)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} features, got shape {x.shape}")
        raw = np.zeros((x.shape[0], self.n_classes), dtype=np.float64)
        threads = max(1, min(threads, x.shape[0]))
        if threads == 1:
            self._score(x, raw)
        else:
            bounds = np.linspace(0, x.shape[0], threads + 1).astype(int)
            parts = [
                _pool().submit(self._score, x[start:stop], raw[start:stop])
                for start, stop in itertools.pairwise(bounds)
            ]
            for part in parts:
                part.result()
        return _softmax(raw)

    def _score(self, x: np.ndarray, out: np.ndarray) -> None:
        _raw_scores(x, self.nodes, self.leaves, self.roots, self.category_sets, self.n_classes, out)


def _numbers(tree: dict[str, str], key: str, dtype: Any) -> np.ndarray:
    return np.array(tree[key].split(), dtype=dtype) if tree.get(key) else np.empty(0, dtype=dtype)


def _categories(words: np.ndarray) -> list[int]:
    """The categories a LightGBM bitset (uint32 words) holds."""
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()


def _flatten(model: str) -> Forest:
    """The kernel's arrays from LightGBM's model text (``Booster.model_to_string``).

    The model text rather than ``dump_model``: for the 4,200-tree champion it
    is written in under a second, the JSON dump took ten.  Its per-tree lines
    are LightGBM's own arrays (``Tree::ToString``): child indices with leaves as
    ``~leaf``, ``decision_type`` bits (1 categorical, 2 default left, then the
    missing type), and for category splits the threshold indexes
    ``cat_boundaries`` into the ``cat_threshold`` bitset words.
    """
    head, _, rest = model.partition("\nTree=")
    header = dict(line.split("=", 1) for line in head.splitlines() if "=" in line)
    objective = header.get("objective", "").split(" ")[0]
    if objective != "multiclass":
        raise Unsupported(f"objective {objective!r} (only multiclass softmax is compiled)")
    if "average_output" in head.splitlines():
        raise Unsupported("random-forest boosting averages its trees")
    n_classes = int(header["num_tree_per_iteration"])
    blocks = ("Tree=" + rest).split("end of trees")[0].split("Tree=")[1:]
    trees = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line) for block in blocks]
    if n_classes < 2 or not trees or len(trees) % n_classes:
        raise Unsupported(f"{len(trees)} trees do not make whole rounds of {n_classes} classes")

    parts: list[np.ndarray] = []
    leaves: list[np.ndarray] = []
    roots: list[int] = []
    sets: list[list[int]] = []
    node_offset = leaf_offset = 0
    for tree in trees:
        if tree.get("is_linear", "0") != "0":
            raise Unsupported("linear trees")
        n_leaves = int(tree["num_leaves"])
        leaf_values = _numbers(tree, "leaf_value", np.float64)
        if leaf_values.shape != (n_leaves,):
            raise Unsupported("a tree whose leaf values do not match its leaf count")
        leaves.append(leaf_values)
        n_splits = n_leaves - 1
        if n_splits == 0:  # a lone leaf
            roots.append(~leaf_offset)
            leaf_offset += 1
            continue
        decision = _numbers(tree, "decision_type", np.int64)
        threshold = _numbers(tree, "threshold", np.float64)
        feature = _numbers(tree, "split_feature", np.int64)
        children = [_numbers(tree, side, np.int64) for side in ("left_child", "right_child")]
        if not all(a.shape == (n_splits,) for a in (decision, threshold, feature, *children)):
            raise Unsupported("a tree whose split arrays do not match its leaf count")
        part = np.zeros(n_splits, dtype=NODE)
        for side, child in zip(("left", "right"), children, strict=True):
            part[side] = np.where(child >= 0, child + node_offset, ~(~child + leaf_offset))
        categorical = (decision & 1) != 0
        part["kind"] = np.where(categorical, CATEGORY_SET, (decision >> 2) & 3)
        part["default_left"] = (decision & 2) != 0
        part["feature"] = feature
        part["threshold"] = threshold
        if categorical.any():
            bounds = _numbers(tree, "cat_boundaries", np.int64)
            words = _numbers(tree, "cat_threshold", np.uint32)
            for index in np.flatnonzero(categorical):
                cat = int(threshold[index])
                part["threshold"][index] = len(sets)
                sets.append(_categories(words[bounds[cat] : bounds[cat + 1]]))
        if np.any(part["kind"][~categorical] > MISSING_NAN):
            raise Unsupported("an unknown missing-value type")
        parts.append(part)
        roots.append(node_offset)
        node_offset += n_splits
        leaf_offset += n_leaves

    width = 1 + max((c for categories in sets for c in categories), default=0)
    category_sets = np.zeros((max(1, len(sets)), width), dtype=np.uint8)
    for row, categories in enumerate(sets):
        category_sets[row, categories] = 1
    return Forest(
        nodes=np.concatenate(parts) if parts else np.zeros(0, dtype=NODE),
        leaves=np.concatenate(leaves),
        roots=np.array(roots, dtype=np.int32),
        category_sets=category_sets,
        n_classes=n_classes,
        n_features=int(header["max_feature_idx"]) + 1,
    )
