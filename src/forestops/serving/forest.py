"""A boosted forest flattened once per champion and walked by one compiled kernel.

Why not the booster's own ``predict``: LightGBM walks a block row by row,
each row through all of the model's trees (4,200 for the default champion:
600 rounds x 7 classes, about 13 MB of nodes kept in five separate arrays per
tree), so a 1,000-row request drags the whole model through the CPU caches a
thousand times.  Here a split is a 16-byte record (threshold, children)
plus 2 bytes (feature, rule) in a second, small array, each tree's records
are contiguous, and the kernel walks the forest tree by tree, every row of
the block through a tree while that tree is in cache: measured in process on
the benchmark's model, 3-4x less CPU per row than the booster from about 64
rows on, and about 30% less for a lone row, whose walk waits on memory at
almost every split whatever evaluates it.  HistGradientBoosting models go
through the same kernel (``from_hist_gradient_boosting``).

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

# Node kinds: a numerical split by its missing-value rule (LightGBM's MissingType), LightGBM's category
# set (in it: left, else right) or scikit-learn's category map (left, right, or unknown: the missing side).
MISSING_NONE, MISSING_ZERO, MISSING_NAN, CATEGORY_SET, CATEGORY_MAP = 0, 1, 2, 3, 4
# Entries of ``category_sets``: where a category goes.
UNKNOWN, GOES_LEFT, GOES_RIGHT = 0, 1, 2

# LightGBM's kZeroThreshold is the float 1e-35f, compared as a double.
ZERO_THRESHOLD = float(np.float32(1e-35))

# A split as the builders write it ...
SPLIT = np.dtype(
    [
        ("threshold", np.float64),  # numerical splits; for categories, the split's row in ``category_sets``
        ("left", np.int32),  # child index: >= 0 a split, < 0 the leaf ``~child``
        ("right", np.int32),
        ("feature", np.int32),
        ("kind", np.uint8),
        ("default_left", np.uint8),
    ]
)
# ... and as the kernel reads it: 16 bytes where the walk goes next, 2 bytes of what to compare.  Measured
# in process against one 24-byte record: 30-40% less CPU for one to eight rows (about 11 MB to wait on
# instead of 13.6 for the 4,200-tree model; the small array stays in the core's cache).
NODE = np.dtype([("threshold", np.float64), ("left", np.int32), ("right", np.int32)])
RULE = np.dtype([("feature", np.uint8), ("rule", np.uint8)])  # rule: kind | DEFAULT_LEFT
KIND_MASK, DEFAULT_LEFT = 0x0F, 0x10
MAX_FEATURES = 256


class Unsupported(ValueError):
    """The booster is not a shape this kernel reproduces (its own predict serves instead)."""


@numba.njit(nogil=True, cache=False)
def _raw_scores(x, nodes, rules, leaves, roots, category_sets, n_classes, out):  # pragma: no cover - compiled
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
                rule = rules[node]
                value = x[row, rule.feature]
                kind = rule.rule & KIND_MASK
                default_left = (rule.rule & DEFAULT_LEFT) != 0
                if kind == CATEGORY_SET:
                    if np.isnan(value) or value < 0:
                        node = split.right
                    else:
                        category = int(value)
                        goes_left = category < width and category_sets[int(split.threshold), category] == GOES_LEFT
                        node = split.left if goes_left else split.right
                    continue
                if kind == CATEGORY_MAP:
                    way = UNKNOWN
                    if not np.isnan(value) and 0 <= value < width:
                        way = category_sets[int(split.threshold), int(value)]
                    goes_left = way == GOES_LEFT or (way == UNKNOWN and default_left)
                    node = split.left if goes_left else split.right
                    continue
                if np.isnan(value) and kind != MISSING_NAN:
                    value = 0.0
                if (kind == MISSING_ZERO and -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD) or (
                    kind == MISSING_NAN and np.isnan(value)
                ):
                    node = split.left if default_left else split.right
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
    nodes: np.ndarray  # NODE records, each tree's splits contiguous
    rules: np.ndarray  # RULE records, one per node
    leaves: np.ndarray  # float64 leaf values
    roots: np.ndarray  # int32 per tree, in LightGBM's order (round by round, class by class)
    category_sets: np.ndarray  # uint8 (category splits, largest category + 1): GOES_LEFT, GOES_RIGHT or UNKNOWN
    n_classes: int  # trees per round
    n_features: int
    baseline: np.ndarray  # float64 per class: the raw score before the first tree

    @classmethod
    def from_hist_gradient_boosting(cls, model: Any) -> Forest:
        """A fitted ``HistGradientBoostingClassifier``'s trees (probabilities through its own loss)."""
        return _flatten_hist_gradient_boosting(model)

    @classmethod
    def from_lightgbm(cls, booster: Any) -> Forest:
        """A LightGBM ``Booster``'s trees, up to its best round when it has one (as its ``predict``)."""
        return _flatten_lightgbm(booster.model_to_string())

    def predict_proba(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """LightGBM's class probabilities for ``x``: its softmax of the raw scores."""
        return _softmax(self.raw_scores(x, threads))

    def raw_scores(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """The summed trees for the float64 matrix ``x`` (rows x features), rows x classes."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} features, got shape {x.shape}")
        raw = np.empty((x.shape[0], self.n_classes), dtype=np.float64)
        raw[:] = self.baseline
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
        return raw

    def _score(self, x: np.ndarray, out: np.ndarray) -> None:
        _raw_scores(x, self.nodes, self.rules, self.leaves, self.roots, self.category_sets, self.n_classes, out)

    @property
    def kinds(self) -> np.ndarray:
        """Each split's kind (MISSING_*, CATEGORY_*)."""
        return self.rules["rule"] & KIND_MASK

    @staticmethod
    def compact(splits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The kernel's two arrays from SPLIT records."""
        if len(splits) and int(splits["feature"].max()) >= MAX_FEATURES:
            raise Unsupported(f"a split on feature {int(splits['feature'].max())} (at most {MAX_FEATURES})")
        nodes = np.zeros(len(splits), dtype=NODE)
        for field in ("threshold", "left", "right"):
            nodes[field] = splits[field]
        rules = np.zeros(len(splits), dtype=RULE)
        rules["feature"] = splits["feature"]
        rules["rule"] = splits["kind"] | np.where(splits["default_left"] != 0, DEFAULT_LEFT, 0)
        return nodes, rules


def _numbers(tree: dict[str, str], key: str, dtype: Any) -> np.ndarray:
    return np.array(tree[key].split(), dtype=dtype) if tree.get(key) else np.empty(0, dtype=dtype)


def _categories(words: np.ndarray) -> list[int]:
    """The categories a LightGBM bitset (uint32 words) holds."""
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    return np.flatnonzero(bits).tolist()


def _flatten_lightgbm(model: str) -> Forest:
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
        part = np.zeros(n_splits, dtype=SPLIT)
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
    category_sets = np.full((max(1, len(sets)), width), GOES_RIGHT, dtype=np.uint8)
    for row, categories in enumerate(sets):
        category_sets[row, categories] = GOES_LEFT
    nodes, rules = Forest.compact(np.concatenate(parts) if parts else np.zeros(0, dtype=SPLIT))
    return Forest(
        nodes=nodes,
        rules=rules,
        leaves=np.concatenate(leaves),
        roots=np.array(roots, dtype=np.int32),
        category_sets=category_sets,
        n_classes=n_classes,
        n_features=int(header["max_feature_idx"]) + 1,
        baseline=np.zeros(n_classes),
    )


def _bitset_rows(bitsets: np.ndarray) -> np.ndarray:
    """Booleans (rows x 256) from scikit-learn's bitsets (rows x 8 uint32 words)."""
    words = np.ascontiguousarray(bitsets, dtype="<u4")
    return np.unpackbits(words.view(np.uint8), axis=1, bitorder="little").astype(bool)


def _flatten_hist_gradient_boosting(model: Any) -> Forest:
    """The kernel's arrays from scikit-learn's tree predictors (``model._predictors``).

    These are private attributes (the node records of ``TreePredictor.nodes``,
    its ``raw_left_cat_bitsets``, the bin mapper's known categories): the
    serving side checks the result against the pipeline before it serves, so a
    change in a new release falls back rather than answering differently.
    Splits decide as ``_predict_one_from_raw_data`` does: a missing number goes
    to its missing side, a category goes left when in the split's left set,
    right when otherwise known in training, else to the missing side.
    """
    known_bitsets, feature_to_row = model._bin_mapper.make_known_categories_bitsets()
    known = _bitset_rows(known_bitsets)
    n_classes = int(model.n_trees_per_iteration_)
    parts: list[np.ndarray] = []
    leaves: list[np.ndarray] = []
    roots: list[int] = []
    maps: list[np.ndarray] = []
    node_offset = leaf_offset = 0
    for round_ in model._predictors:
        if len(round_) != n_classes:
            raise Unsupported(f"a round of {len(round_)} trees, not {n_classes}")
        for predictor in round_:
            records = predictor.nodes
            is_leaf = records["is_leaf"].astype(bool)
            split_at, leaf_at = np.flatnonzero(~is_leaf), np.flatnonzero(is_leaf)
            new_index = np.empty(len(records), dtype=np.int64)  # old node index -> the kernel's child code
            new_index[split_at] = node_offset + np.arange(len(split_at))
            new_index[leaf_at] = ~(leaf_offset + np.arange(len(leaf_at)))
            leaves.append(records["value"][leaf_at].astype(np.float64))
            roots.append(int(new_index[0]))
            splits = records[split_at]
            part = np.zeros(len(split_at), dtype=SPLIT)
            part["left"] = new_index[splits["left"]]
            part["right"] = new_index[splits["right"]]
            part["feature"] = splits["feature_idx"]
            part["default_left"] = splits["missing_go_to_left"]
            part["threshold"] = splits["num_threshold"]
            categorical = splits["is_categorical"].astype(bool)
            part["kind"] = np.where(categorical, CATEGORY_MAP, MISSING_NAN)
            if categorical.any():
                left_sets = _bitset_rows(predictor.raw_left_cat_bitsets)
                for index in np.flatnonzero(categorical):
                    split = splits[index]
                    way = np.where(known[feature_to_row[split["feature_idx"]]], GOES_RIGHT, UNKNOWN)
                    way[left_sets[split["bitset_idx"]]] = GOES_LEFT
                    part["threshold"][index] = len(maps)
                    maps.append(way.astype(np.uint8))
            parts.append(part)
            node_offset += len(split_at)
            leaf_offset += len(leaf_at)
    category_sets = np.stack(maps) if maps else np.zeros((1, 1), dtype=np.uint8)
    nodes, rules = Forest.compact(np.concatenate(parts) if parts else np.zeros(0, dtype=SPLIT))
    return Forest(
        nodes=nodes,
        rules=rules,
        leaves=np.concatenate(leaves) if leaves else np.zeros(0),
        roots=np.array(roots, dtype=np.int32),
        category_sets=category_sets,
        n_classes=n_classes,
        n_features=int(model.n_features_in_),
        baseline=np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1),
    )
