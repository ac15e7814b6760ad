"""A boosted forest flattened once per champion and walked by one compiled kernel.

Why not the booster's own ``predict``: LightGBM walks a block row by row,
each row through all of the model's trees (4,200 for the default champion:
600 rounds x 7 classes, about 13 MB of nodes kept in five separate arrays per
tree), so a 1,000-row request drags the whole model through the CPU caches a
thousand times.  Here a split is an 8-byte record (the threshold's rank
among its feature's thresholds, feature, rule, children within the tree;
3.4 MB for that model), each tree's records are contiguous, and the kernel
walks the forest tree by tree, every row of the block through a tree while
that tree is in cache: measured in process on the benchmark's model, 3-4x
less CPU per row than the booster from about 64 rows on.  One to eight
rows wait on memory at almost every split; there the 8-byte records took
1.4-1.75x less time than the 16-byte ones (plus 2 bytes of rule) they
replaced, and the same within 5% from 64 rows on.  HistGradientBoosting models go through the same kernel
(``from_hist_gradient_boosting``).

The answers are the booster's own.  The model is read from its text
(``Booster.model_to_string``, the format of LightGBM's saved models;
thresholds and leaf values are written with 17 significant digits, which
read back as the same doubles); splits
decide as LightGBM's ``Tree::NumericalDecision`` and
``Tree::CategoricalDecision`` do (missing values, the zero threshold,
categories as sets; a value within the zero threshold is read as zero, as
LightGBM's row reader does); leaf values are summed in LightGBM's order,
round by round and class by class, and turned into probabilities by the
same softmax.  On 10,000 real rows the largest difference from ``predict`` was
2.2e-16.  The serving side still checks every champion against the logged
pipeline before this path serves (``predictors.build_predictor``).

Only what the candidates train is supported: multiclass softmax, no linear
trees, no random-forest averaging; anything else raises ``Unsupported`` and
the booster's own predict serves.
"""

from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

# Node kinds: a numerical split by its missing-value rule (LightGBM's MissingType), LightGBM's category
# set (in it: left, else right) or scikit-learn's category map (left, right, or unknown: the missing side).
MISSING_NONE, MISSING_ZERO, MISSING_NAN, CATEGORY_SET, CATEGORY_MAP = 0, 1, 2, 3, 4
# Entries of ``category_sets``: where a category goes.
UNKNOWN, GOES_LEFT, GOES_RIGHT = 0, 1, 2

# LightGBM's kZeroThreshold is the float 1e-35f, compared as a double.
ZERO_THRESHOLD = float(np.float32(1e-35))

# A split as the builders write it, one array per tree: children are the tree's own indices, ``>= 0`` a
# split, ``< 0`` the leaf ``~child``.
SPLIT = np.dtype(
    [
        ("threshold", np.float64),  # numerical splits; for categories, the split's row in ``category_sets``
        ("left", np.int64),
        ("right", np.int64),
        ("feature", np.int64),
        ("kind", np.uint8),
        ("default_left", np.uint8),
    ]
)
# ... and as the kernel reads it: 8 bytes.  A numerical threshold is kept as its rank among the thresholds
# the forest has for that feature, and each row's values are ranked the same way once per request, so an
# integer comparison decides exactly as the double one would (``value <= threshold`` exactly when fewer
# than ``rank + 1`` thresholds lie below ``value``).  Children are indices within their tree.  Measured in
# process on the benchmark's model against the earlier 16 + 2-byte records (absolute children, double
# thresholds): 30-45% less time for one to eight rows, about the same for 1,000.
NODE = np.dtype(
    [
        ("threshold", np.uint16),  # rank of the threshold, or the category split's row in ``category_sets``
        ("feature", np.uint8),
        ("rule", np.uint8),  # kind | DEFAULT_LEFT
        ("left", np.int16),
        ("right", np.int16),
    ]
)
KIND_MASK, DEFAULT_LEFT = 0x0F, 0x10
MAX_FEATURES = 256
MAX_THRESHOLDS = 1 << 16  # per feature, and rows of ``category_sets``
MAX_SPLITS_PER_TREE = (1 << 15) - 1


class Unsupported(ValueError):
    """The booster is not a shape this kernel reproduces (its own predict serves instead)."""


@numba.njit(nogil=True, cache=False)
def _rank_rows(x, thresholds, counts, zero_band, out):  # pragma: no cover - compiled
    """Each value's rank: how many of its feature's thresholds lie below it.

    A missing value ranks as 0.0 (the splits that treat it otherwise read the
    value itself), and so does anything within ``zero_band`` of zero: LightGBM
    reads such a value as 0.0 before any tree sees it (its dense-row reader
    keeps only values beyond ``kZeroThreshold``).
    """
    for row in range(x.shape[0]):
        for feature in range(x.shape[1]):
            value = x[row, feature]
            if np.isnan(value) or -zero_band <= value <= zero_band:
                value = 0.0
            low, high = 0, counts[feature]
            while low < high:
                middle = (low + high) >> 1
                if thresholds[feature, middle] < value:
                    low = middle + 1
                else:
                    high = middle
            out[row, feature] = low
    return out


@numba.njit(inline="always")
def _child(split, x, ranks, row, category_sets, width):  # pragma: no cover - compiled
    """Where ``row`` goes from ``split``: the tree's index of a split, or ``~leaf``."""
    if split.rule & KIND_MASK == MISSING_NONE:  # almost every split: the raw value is not even read
        return split.right if ranks[row, split.feature] > split.threshold else split.left
    return _special_child(split, x[row, split.feature], ranks[row, split.feature], category_sets, width)


@numba.njit(inline="always")
def _special_child(split, value, rank, category_sets, width):  # pragma: no cover - compiled
    """``_child`` for the rarer splits: categories, and missing values or zeros with a side of their own."""
    kind = split.rule & KIND_MASK
    # Never true after ``_child``'s test.  Kept because of how numba/LLVM compile the walk, measured on
    # 1,000 rows: the same logic as one function took 300-315 ms, as a helper that is not inlined 400 ms,
    # and in this shape 230 ms, as fast as the earlier 16-byte kernel.
    if kind == MISSING_NONE:
        return split.right if rank > split.threshold else split.left
    default_left = (split.rule & DEFAULT_LEFT) != 0
    if kind == CATEGORY_SET:
        if np.isnan(value) or value < 0:
            return split.right
        category = int(value)
        goes_left = category < width and category_sets[split.threshold, category] == GOES_LEFT
        return split.left if goes_left else split.right
    if kind == CATEGORY_MAP:
        way = UNKNOWN
        if not np.isnan(value) and 0 <= value < width:
            way = category_sets[split.threshold, int(value)]
        goes_left = way == GOES_LEFT or (way == UNKNOWN and default_left)
        return split.left if goes_left else split.right
    if (kind == MISSING_NAN and np.isnan(value)) or (
        kind == MISSING_ZERO and (np.isnan(value) or -ZERO_THRESHOLD <= value <= ZERO_THRESHOLD)
    ):
        return split.left if default_left else split.right
    return split.right if rank > split.threshold else split.left


# How many trees ahead of the walk the kernel prefetches a tree.  Measured in process on the benchmark's
# model, one row after 2 ms of other work as in the service (medians of 200 calls): 8, 16 or 32 trees ahead
# within 0.51-0.71 ms of each other, against 1.37-1.63 ms for the walk alone; 8 rows 2.0 against 3.4-4.0 ms.
READ_AHEAD_TREES = 16
RECORDS_PER_LINE = 8  # in a 64-byte cache line: NODE records and float64 leaf values are both 8 bytes
# A bigger tree is read ahead from its start only (its first splits are the ones every row passes); this
# also bounds the kernels compiled, one per distinct count.
MAX_READ_AHEAD_LINES = 64


@intrinsic
def _prefetch(typingctx: Any, array: Any, index: Any) -> Any:  # pragma: no cover - compiled
    """Ask the CPU to bring ``array[index]``'s cache line in (LLVM's ``prefetch``: read, keep in all levels).

    A prefetch never faults and never waits; the callers keep ``index`` within the array all the same.
    """

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        address = builder.bitcast(builder.gep(data, [args[1]]), ir.PointerType(ir.IntType(8)))
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32]), "llvm.prefetch.p0"
        )
        builder.call(prefetch, [address, i32(0), i32(3), i32(1)])  # read, highest locality, data cache
        return context.get_dummy_value()

    return types.void(array, index), codegen


@functools.cache
def _kernel(lines: int) -> Any:
    """The forest walk, compiled for trees that span at most ``lines`` cache lines of splits or of leaves.

    Why the read-ahead: in the service a model call follows milliseconds of
    HTTP work, after which most of the forest has left the caches, and a walk
    is a chain of dependent loads (each split is read only once the one
    before has decided), so every miss is waited on in turn.  Before walking
    a tree the kernel asks the CPU to fetch every cache line of the tree
    ``READ_AHEAD_TREES`` further on (a prefetch: nothing waits for it), so
    that tree is in cache when its turn comes.  ``lines`` is a compile-time
    constant so that the prefetches are unrolled and issued at once: with
    the count as an argument the gain was half as large.  Plain loads of one
    value per line did nearly as well for batches but a lone row took
    0.80-1.03 ms against 0.51-0.71 with prefetches (in process, after 2 ms
    of other work): a load that misses holds up the instructions behind it
    until its data arrives, a prefetch does not.
    """

    @numba.njit(inline="always")
    def read_ahead(nodes, leaves, tree_splits, tree_leaves, tree):  # pragma: no cover - compiled
        first_split, first_leaf = tree_splits[tree], tree_leaves[tree]
        if first_split >= 0:
            for line in range(lines):
                _prefetch(nodes, min(first_split + RECORDS_PER_LINE * line, nodes.shape[0] - 1))
        for line in range(lines):
            _prefetch(leaves, min(first_leaf + RECORDS_PER_LINE * line, leaves.shape[0] - 1))

    @numba.njit(nogil=True, cache=False)
    def raw_scores(  # pragma: no cover - compiled
        x, ranks, nodes, leaves, tree_splits, tree_leaves, category_sets, n_classes, out
    ):
        """Add every tree's leaf value for every row of ``x`` to ``out`` (rows x classes), tree by tree."""
        width = category_sets.shape[1]
        n_trees = tree_splits.shape[0]
        for tree in range(min(READ_AHEAD_TREES, n_trees)):
            read_ahead(nodes, leaves, tree_splits, tree_leaves, tree)
        for tree in range(n_trees):
            if tree + READ_AHEAD_TREES < n_trees:
                read_ahead(nodes, leaves, tree_splits, tree_leaves, tree + READ_AHEAD_TREES)
            klass = tree % n_classes
            first_split, first_leaf = tree_splits[tree], tree_leaves[tree]
            if first_split < 0:  # a lone leaf
                for row in range(x.shape[0]):
                    out[row, klass] += leaves[first_leaf]
                continue
            for row in range(x.shape[0]):
                child = 0
                while child >= 0:
                    child = _child(nodes[first_split + child], x, ranks, row, category_sets, width)
                out[row, klass] += leaves[first_leaf + ~child]
        return out

    return raw_scores


def _lines_spanned(records_per_tree: int) -> int:
    """Cache lines that can hold some of ``records_per_tree`` consecutive 8-byte records, however aligned."""
    return -(-records_per_tree // RECORDS_PER_LINE) + 1


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
    leaves: np.ndarray  # float64 leaf values, each tree's contiguous
    tree_splits: np.ndarray  # int64 per tree, in LightGBM's order (round by round, class by class): its first
    # split in ``nodes``, -1 for a tree that is a lone leaf
    tree_leaves: np.ndarray  # int64 per tree: its first leaf in ``leaves``
    thresholds: np.ndarray  # float64 (features x most thresholds): each feature's distinct thresholds, sorted
    threshold_counts: np.ndarray  # int64 per feature: how many of its row of ``thresholds`` are real
    category_sets: np.ndarray  # uint8 (category splits, largest category + 1): GOES_LEFT, GOES_RIGHT or UNKNOWN
    n_classes: int  # trees per round
    n_features: int
    baseline: np.ndarray  # float64 per class: the raw score before the first tree
    zero_band: float  # values this close to zero are read as 0.0 (LightGBM: ZERO_THRESHOLD; scikit-learn: 0.0)
    read_ahead_lines: int  # cache lines of a tree's splits, and of its leaves, read before its walk (``_kernel``)

    @classmethod
    def from_hist_gradient_boosting(cls, model: Any) -> Forest:
        """A fitted ``HistGradientBoostingClassifier``'s trees (probabilities through its own loss)."""
        return _flatten_hist_gradient_boosting(model)

    @classmethod
    def from_lightgbm(cls, booster: Any) -> Forest:
        """A LightGBM ``Booster``'s trees, up to its best round when it has one (as its ``predict``)."""
        return _flatten_lightgbm(booster.model_to_string())

    @classmethod
    def assemble(
        cls,
        trees: list[tuple[np.ndarray, np.ndarray]],
        category_sets: np.ndarray,
        n_classes: int,
        n_features: int,
        baseline: np.ndarray,
        zero_band: float = 0.0,
    ) -> Forest:
        """The kernel's arrays from each tree's SPLIT records and leaf values, in the order they are summed."""
        if any(len(splits) > MAX_SPLITS_PER_TREE for splits, _ in trees):
            raise Unsupported(f"a tree of more than {MAX_SPLITS_PER_TREE} splits")
        if len(category_sets) > MAX_THRESHOLDS:
            raise Unsupported(f"{len(category_sets)} category splits (at most {MAX_THRESHOLDS})")
        split_counts = np.array([len(splits) for splits, _ in trees], dtype=np.int64)
        leaf_counts = np.array([len(values) for _, values in trees], dtype=np.int64)
        tree_splits = np.where(split_counts > 0, np.cumsum(split_counts) - split_counts, -1)
        tree_leaves = np.cumsum(leaf_counts) - leaf_counts
        splits = np.concatenate([s for s, _ in trees]) if trees else np.zeros(0, dtype=SPLIT)
        if len(splits) and int(splits["feature"].max()) >= min(MAX_FEATURES, n_features):
            raise Unsupported(f"a split on feature {int(splits['feature'].max())} of {n_features}")

        numerical = ~np.isin(splits["kind"], (CATEGORY_SET, CATEGORY_MAP))
        per_feature = [np.unique(splits["threshold"][numerical & (splits["feature"] == f)]) for f in range(n_features)]
        counts = np.array([len(t) for t in per_feature], dtype=np.int64)
        if counts.max(initial=0) > MAX_THRESHOLDS:
            raise Unsupported(f"a feature split at {counts.max()} thresholds (at most {MAX_THRESHOLDS})")
        thresholds = np.full((n_features, max(1, counts.max(initial=0))), np.inf)
        for feature, values in enumerate(per_feature):
            thresholds[feature, : len(values)] = values

        nodes = np.zeros(len(splits), dtype=NODE)
        ranks = np.zeros(len(splits), dtype=np.int64)
        ranks[~numerical] = splits["threshold"][~numerical]  # a category split's row
        for feature, values in enumerate(per_feature):
            mine = numerical & (splits["feature"] == feature)
            ranks[mine] = np.searchsorted(values, splits["threshold"][mine])
        nodes["threshold"] = ranks
        nodes["feature"] = splits["feature"]
        nodes["rule"] = splits["kind"] | np.where(splits["default_left"] != 0, DEFAULT_LEFT, 0)
        nodes["left"] = splits["left"]
        nodes["right"] = splits["right"]
        return cls(
            nodes=nodes,
            leaves=np.concatenate([v for _, v in trees]).astype(np.float64) if trees else np.zeros(0),
            tree_splits=tree_splits,
            tree_leaves=tree_leaves,
            thresholds=thresholds,
            threshold_counts=counts,
            category_sets=np.ascontiguousarray(category_sets, dtype=np.uint8),
            n_classes=n_classes,
            n_features=n_features,
            baseline=np.asarray(baseline, dtype=np.float64).reshape(-1),
            zero_band=zero_band,
            read_ahead_lines=min(MAX_READ_AHEAD_LINES, _lines_spanned(int(leaf_counts.max(initial=1)))),
        )

    def predict_proba(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """LightGBM's class probabilities for ``x``: its softmax of the raw scores."""
        return _softmax(self.raw_scores(x, threads))

    def raw_scores(self, x: np.ndarray, threads: int = 1) -> np.ndarray:
        """The summed trees for the float64 matrix ``x`` (rows x features), rows x classes."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected a matrix of {self.n_features} features, got shape {x.shape}")
        ranks = _rank_rows(x, self.thresholds, self.threshold_counts, self.zero_band, np.empty(x.shape, dtype=np.int32))
        raw = np.empty((x.shape[0], self.n_classes), dtype=np.float64)
        raw[:] = self.baseline
        threads = max(1, min(threads, x.shape[0]))
        if threads == 1:
            self._score(x, ranks, raw)
        else:
            bounds = np.linspace(0, x.shape[0], threads + 1).astype(int)
            parts = [
                _pool().submit(self._score, x[start:stop], ranks[start:stop], raw[start:stop])
                for start, stop in itertools.pairwise(bounds)
            ]
            for part in parts:
                part.result()
        return raw

    def _score(self, x: np.ndarray, ranks: np.ndarray, out: np.ndarray) -> None:
        _kernel(self.read_ahead_lines)(
            x, ranks, self.nodes, self.leaves, self.tree_splits, self.tree_leaves, self.category_sets,
            self.n_classes, out,
        )  # fmt: skip

    @property
    def kinds(self) -> np.ndarray:
        """Each split's kind (MISSING_*, CATEGORY_*)."""
        return self.nodes["rule"] & KIND_MASK


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

    flat: list[tuple[np.ndarray, np.ndarray]] = []
    sets: list[list[int]] = []
    for tree in trees:
        if tree.get("is_linear", "0") != "0":
            raise Unsupported("linear trees")
        n_leaves = int(tree["num_leaves"])
        leaf_values = _numbers(tree, "leaf_value", np.float64)
        if leaf_values.shape != (n_leaves,):
            raise Unsupported("a tree whose leaf values do not match its leaf count")
        n_splits = n_leaves - 1
        part = np.zeros(n_splits, dtype=SPLIT)
        flat.append((part, leaf_values))
        if n_splits == 0:  # a lone leaf
            continue
        decision = _numbers(tree, "decision_type", np.int64)
        threshold = _numbers(tree, "threshold", np.float64)
        feature = _numbers(tree, "split_feature", np.int64)
        children = [_numbers(tree, side, np.int64) for side in ("left_child", "right_child")]
        if not all(a.shape == (n_splits,) for a in (decision, threshold, feature, *children)):
            raise Unsupported("a tree whose split arrays do not match its leaf count")
        part["left"], part["right"] = children
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

    width = 1 + max((c for categories in sets for c in categories), default=0)
    category_sets = np.full((max(1, len(sets)), width), GOES_RIGHT, dtype=np.uint8)
    for row, categories in enumerate(sets):
        category_sets[row, categories] = GOES_LEFT
    n_features = int(header["max_feature_idx"]) + 1
    return Forest.assemble(flat, category_sets, n_classes, n_features, np.zeros(n_classes), ZERO_THRESHOLD)


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
    flat: list[tuple[np.ndarray, np.ndarray]] = []
    maps: list[np.ndarray] = []
    for round_ in model._predictors:
        if len(round_) != n_classes:
            raise Unsupported(f"a round of {len(round_)} trees, not {n_classes}")
        for predictor in round_:
            records = predictor.nodes
            is_leaf = records["is_leaf"].astype(bool)
            split_at, leaf_at = np.flatnonzero(~is_leaf), np.flatnonzero(is_leaf)
            child = np.empty(len(records), dtype=np.int64)  # scikit-learn's node index -> the kernel's child
            child[split_at] = np.arange(len(split_at))
            child[leaf_at] = ~np.arange(len(leaf_at))
            # The root is record 0, so a tree's walk starts at its split 0 (a lone leaf has none).
            splits = records[split_at]
            part = np.zeros(len(split_at), dtype=SPLIT)
            part["left"] = child[splits["left"]]
            part["right"] = child[splits["right"]]
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
            flat.append((part, records["value"][leaf_at].astype(np.float64)))
    category_sets = np.stack(maps) if maps else np.zeros((1, 1), dtype=np.uint8)
    return Forest.assemble(flat, category_sets, n_classes, int(model.n_features_in_), model._baseline_prediction)
