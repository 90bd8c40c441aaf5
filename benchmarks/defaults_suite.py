"""Default parameters, broad suite: sk_gpusgd vs scikit-learn, accuracy and fit time.

Every estimator gets only ``random_state`` (its defaults otherwise):
``GPUSGDClassifier`` vs ``SGDClassifier`` and ``GPUSGDRegressor`` vs
``SGDRegressor``. Classifiers are run twice: with the default loss ('hinge') and
both with ``loss='log_loss'``, where the mean top ``predict_proba`` and the
held-out log loss compare calibration.

Data sets, none downloaded:

- scikit-learn's bundled sets: iris, wine, breast_cancer, digits
  (classification), diabetes and linnerud's 'Weight' target (regression);
- make_classification, binary and 10 classes; make_regression; make_friedman1
  (1k and 20k rows; 200k by default; 1M with ``--large``);
- synthetic bag-of-words CSR (Zipf column frequencies, sublinear tf-idf,
  l2-normalised rows, labels from a sparse linear model plus noise), binary and
  10 classes, 20k rows x 2^14 features (200k x 2^18 by default; 1M x 2^18 with
  ``--large``).

Every run ends with the named cases of ``benchmarks/defaults_cases.py``
(constant columns without an intercept, one-row streams, huge penalties, the
automatic average's optimum, the regression losses at small epsilon and few
epochs, dense against CSR storage), in seconds.

Dense sets run "raw" and "standardized" (StandardScaler fitted on the training
split). Synthetic raw features are multiplied by random per-feature scales
(10^U(-1, 2)) and shifted by random offsets (U(-5, 5) times the scale), so that
raw is really unscaled. Sparse sets run as generated (tf-idf rows).

Per data set: held-out splits (train_test_split, test_size=0.25, stratified
for classification, random_state=split), 10 splits below 2,000 rows and 3
otherwise (one held-out row of a small set is worth several points: ten splits
keep a score difference from being one split's luck); estimators get
``random_state=split``.
Reported: mean held-out accuracy (R^2 for regression), ours - sklearn in points
(1 point = 0.01), median fit time (each fit's fastest of up to 9 runs while
they take under a second in all, the two libraries taking turns) and the ratio
ours / sklearn, mean epochs (``n_iter_``), our ``batch_size_`` and
``preconditioner_``.

    python benchmarks/defaults_suite.py --quick   # sets <= 20k rows
    python benchmarks/defaults_suite.py --cases-only   # the named cases alone
    python benchmarks/defaults_suite.py           # up to 200k rows
    python benchmarks/defaults_suite.py --large   # adds 1M rows
    python benchmarks/defaults_suite.py --large --only '*_1M*' --splits 1   # 1M rows only
    python benchmarks/defaults_suite.py --large --only '*10c_1M*' --scaling standardized \
        --scaling tf-idf --splits 1   # skips scikit-learn's slowest fits (raw 10 classes)

Writes benchmarks/results/<prefix>-<device>-<YYYYMMDD>[-quick].{json,md}
(prefix ``defaults-suite``; ``--large`` adds ``-large`` to the device part).
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    device_info,
    device_slug,
    environment_markdown,
    fmt_seconds,
    markdown_table,
    now_iso,
    quiet_warnings,
    save_report,
    today,
    versions,
)
from defaults_cases import cases_markdown, run_cases  # noqa: E402

SMALL_ROWS = 2_000
LARGE_ROWS = 20_000
TEST_SIZE = 0.25
# a fit is timed up to this many times while the runs so far took under the budget;
# the two libraries take turns, so that both meet the same moments of a shared machine
TIME_REPEATS = 9
REPEAT_BUDGET_SECONDS = 1.0


# -------------------------------------------------------------------- data
@dataclass
class Problem:
    """One data set: ``task`` is 'classification' or 'regression'; X dense or CSR."""

    name: str
    source: str
    task: str
    X: object
    y: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def sparse(self) -> bool:
        return hasattr(self.X, "tocsr")


def unscale(X: np.ndarray, seed: int) -> np.ndarray:
    """X times random per-feature scales 10^U(-1, 2), shifted by U(-5, 5) scales."""
    rng = np.random.default_rng(seed + 104_729)
    scales = 10.0 ** rng.uniform(-1.0, 2.0, X.shape[1])
    offsets = rng.uniform(-5.0, 5.0, X.shape[1]) * scales
    return X * scales + offsets


def bag_of_words(n_rows: int, n_features: int, n_classes: int, seed: int):
    """Tf-idf-like CSR rows and labels from a sparse linear model plus noise.

    About 60 tokens per row (Poisson), columns drawn with Zipf(1.1) frequencies
    (a random column order), sublinear tf ``1 + log(count)`` times smoothed idf,
    rows scaled to unit l2 norm. Labels: ``X W`` for a random W with 20% non-zero
    entries, each column standardised, plus N(0, 0.5^2) noise; binary is the sign
    of the centred score, multiclass its argmax.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    frequency = np.arange(1, n_features + 1, dtype=np.float64) ** -1.1
    cumulative = np.cumsum(frequency / frequency.sum())
    order = rng.permutation(n_features)
    lengths = np.maximum(rng.poisson(60, n_rows), 1)
    draws = np.searchsorted(cumulative, rng.random(int(lengths.sum())), side="right")
    columns = order[np.minimum(draws, n_features - 1)]
    rows = np.repeat(np.arange(n_rows), lengths)
    X = sp.csr_matrix(
        (np.ones(columns.size), (rows, columns)), shape=(n_rows, n_features), dtype=np.float64
    )
    X.sum_duplicates()
    X.data = 1.0 + np.log(X.data)
    document_frequency = np.bincount(X.indices, minlength=n_features)
    idf = np.log((1.0 + n_rows) / (1.0 + document_frequency)) + 1.0
    X.data *= idf[X.indices]
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1.0 / np.maximum(norms, 1e-12)) @ X
    outputs = 1 if n_classes == 2 else n_classes
    W = rng.standard_normal((n_features, outputs)) * (rng.random((n_features, outputs)) < 0.2)
    scores = np.asarray(X @ W)
    scores = (scores - scores.mean(axis=0)) / np.maximum(scores.std(axis=0), 1e-12)
    scores += 0.5 * rng.standard_normal(scores.shape)
    y = (scores[:, 0] > 0).astype(np.int64) if n_classes == 2 else np.argmax(scores, axis=1)
    return X.tocsr(), y


def bundled_problems() -> list[Problem]:
    """scikit-learn's data sets that ship with it (no download)."""
    from sklearn import datasets

    problems = [
        Problem(name, f"sklearn.datasets.load_{name}", "classification", *loader(return_X_y=True))
        for name, loader in (
            ("iris", datasets.load_iris),
            ("wine", datasets.load_wine),
            ("breast_cancer", datasets.load_breast_cancer),
            ("digits", datasets.load_digits),
        )
    ]
    problems.append(
        Problem(
            "diabetes", "sklearn.datasets.load_diabetes", "regression",
            *datasets.load_diabetes(return_X_y=True),
        )
    )  # fmt: skip
    # linnerud has three targets; SGDRegressor takes one ('Weight', the first)
    X, Y = datasets.load_linnerud(return_X_y=True)
    problems.append(
        Problem("linnerud_weight", "sklearn.datasets.load_linnerud", "regression", X, Y[:, 0])
    )
    return problems


def synthetic_problems(
    sizes: list[int], sparse_sizes: list[tuple[int, int]], wanted=lambda name: True
) -> list[Problem]:
    """make_classification / make_regression / make_friedman1 and bag-of-words, per size.

    Only the sets whose name ``wanted`` accepts are generated.
    """
    from sklearn.datasets import make_classification, make_friedman1, make_regression

    generators = []
    for n in sizes:
        tag = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        generators += [
            (f"make_classification_2c_{tag}", "make_classification", "classification",
             lambda n=n: make_classification(
                 n_samples=n, n_features=20, n_informative=10, n_redundant=5, random_state=n)),
            (f"make_classification_10c_{tag}", "make_classification", "classification",
             lambda n=n: make_classification(
                 n_samples=n, n_features=40, n_informative=20, n_redundant=5, n_classes=10,
                 n_clusters_per_class=1, random_state=n + 1)),
            (f"make_regression_{tag}", "make_regression", "regression",
             lambda n=n: make_regression(
                 n_samples=n, n_features=20, n_informative=10, noise=10.0, random_state=n + 2)),
            (f"make_friedman1_{tag}", "make_friedman1", "regression",
             lambda n=n: make_friedman1(
                 n_samples=n, n_features=10, noise=1.0, random_state=n + 3)),
        ]  # fmt: skip
    for n, log2_features in sparse_sizes:
        tag = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
        for n_classes in (2, 10):
            generators.append(
                (
                    f"bag_of_words_{n_classes}c_{tag}_2^{log2_features}",
                    "synthetic tf-idf CSR",
                    "classification",
                    lambda n=n, k=n_classes, f=log2_features: bag_of_words(n, 2**f, k, seed=n + k),
                )
            )
    return [
        Problem(name, source, task, *generate())
        for name, source, task, generate in generators
        if wanted(name)
    ]


def scalings(problem: Problem) -> list[str]:
    """'raw' and 'standardized' for dense X; sparse tf-idf runs as generated."""
    return ["tf-idf"] if problem.sparse else ["raw", "standardized"]


def prepared(problem: Problem, scaling: str) -> Problem:
    """The synthetic dense sets' raw X is made unscaled; the bundled sets are raw already."""
    if scaling == "raw" and problem.source.startswith("make_"):
        return Problem(
            problem.name,
            problem.source,
            problem.task,
            unscale(problem.X, problem.n_rows),
            problem.y,
        )
    return problem


# --------------------------------------------------------------- one split
def fit_and_score(model, task, X_train, y_train, X_test, y_test, proba: bool) -> dict:
    """Fit time, held-out score, epochs; with ``proba`` the top probability and log loss."""
    from sklearn.metrics import log_loss

    out = {"error": None}
    start = time.perf_counter()
    try:
        with quiet_warnings(), np.errstate(all="ignore"):
            model.fit(X_train, y_train)
    except (ValueError, FloatingPointError, ArithmeticError) as exc:
        out.update(fit_seconds=time.perf_counter() - start, score=math.nan)
        out["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        return out
    out["fit_seconds"] = time.perf_counter() - start
    with np.errstate(all="ignore"):
        out["score"] = float(model.score(X_test, y_test))
        out["n_iter"] = int(model.n_iter_)
        for attribute in ("batch_size_", "preconditioner_"):
            if hasattr(model, attribute):
                out[attribute] = getattr(model, attribute)
        if proba and task == "classification":
            probabilities = np.asarray(model.predict_proba(X_test), dtype=np.float64)
            if np.all(np.isfinite(probabilities)):
                out["mean_top_proba"] = float(probabilities.max(axis=1).mean())
                out["log_loss"] = float(log_loss(y_test, probabilities, labels=model.classes_))
    return out


def run_split(problem: Problem, scaling: str, loss: str | None, split: int) -> dict:
    """Ours and scikit-learn's defaults on one train/test split."""
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

    classification = problem.task == "classification"
    X_train, X_test, y_train, y_test = train_test_split(
        problem.X,
        problem.y,
        test_size=TEST_SIZE,
        random_state=split,
        stratify=problem.y if classification else None,
    )
    if scaling == "standardized":
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    extra = {} if loss is None else {"loss": loss}
    if classification:
        ours = GPUSGDClassifier(random_state=split, **extra)
        theirs = SGDClassifier(random_state=split, **extra)
    else:
        ours = GPUSGDRegressor(random_state=split)
        theirs = SGDRegressor(random_state=split)
    proba = loss == "log_loss"
    models = {"sk_gpusgd": ours, "sklearn": theirs}
    results = {
        label: fit_and_score(model, problem.task, X_train, y_train, X_test, y_test, proba)
        for label, model in models.items()
    }
    retime_in_turns(results, models, X_train, y_train)
    return {"split": split, **results}


def retime_in_turns(results: dict, models: dict, X_train, y_train) -> None:
    """Fit short fits again, the libraries taking turns; keep each one's fastest run.

    The same seed gives the same model, so only the time changes: the fastest
    run is the one least disturbed by other work on the machine, and taking
    turns lets both libraries meet the same disturbances.
    """
    from sklearn.base import clone

    spent = {label: out["fit_seconds"] for label, out in results.items() if not out["error"]}
    for _ in range(TIME_REPEATS - 1):
        for label in spent:
            if spent[label] > REPEAT_BUDGET_SECONDS:
                continue
            again = clone(models[label])
            start = time.perf_counter()
            with quiet_warnings(), np.errstate(all="ignore"):
                again.fit(X_train, y_train)
            elapsed = time.perf_counter() - start
            spent[label] += elapsed
            results[label]["fit_seconds"] = min(results[label]["fit_seconds"], elapsed)


# ------------------------------------------------------------- aggregation
def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def summarise_runs(runs: list[dict]) -> dict:
    """Means over splits (median for fit time) of each library, and the paired difference."""
    record = {}
    for label in ("sk_gpusgd", "sklearn"):
        side = [run[label] for run in runs]
        scores = [s["score"] for s in side]
        finite = all(math.isfinite(s) for s in scores)
        record[label] = {
            "score_mean": float(np.mean(scores)) if finite else None,
            "score_std": float(np.std(scores)) if finite else None,
            "fit_seconds_median": statistics.median(s["fit_seconds"] for s in side),
            "n_iter_mean": _mean([s.get("n_iter") for s in side]),
            "mean_top_proba": _mean([s.get("mean_top_proba") for s in side]),
            "log_loss": _mean([s.get("log_loss") for s in side]),
            "failed_splits": sum(s["error"] is not None for s in side),
            "errors": sorted({s["error"] for s in side if s["error"]}),
        }
    ours = [run["sk_gpusgd"] for run in runs]
    record["batch_size_"] = sorted({s["batch_size_"] for s in ours if "batch_size_" in s})
    record["preconditioner_"] = sorted(
        {str(s["preconditioner_"]) for s in ours if "preconditioner_" in s}
    )
    a, b = record["sk_gpusgd"]["score_mean"], record["sklearn"]["score_mean"]
    record["difference"] = None if a is None or b is None else a - b
    t_ours = record["sk_gpusgd"]["fit_seconds_median"]
    t_theirs = record["sklearn"]["fit_seconds_median"]
    record["time_ratio"] = t_ours / t_theirs if t_theirs > 0 else None
    return record


def fmt_score(value: float | None) -> str:
    """4 decimals, or scientific notation for a diverged R^2."""
    if value is None:
        return "failed"
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.3g}"


def fmt_points(value: float | None) -> str:
    if value is None:
        return "-"
    points = 100.0 * value
    return f"{points:+.2f}" if abs(points) < 1e4 else f"{points:+.3g}"


def fmt_optional(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_rows(records: list[dict]) -> list[list[str]]:
    rows = []
    for r in records:
        ours, theirs = r["sk_gpusgd"], r["sklearn"]
        calibration = "-"
        if r["loss"] == "log_loss":
            calibration = (
                f"{fmt_optional(ours['mean_top_proba'])} / "
                f"{fmt_optional(theirs['mean_top_proba'])}; "
                f"{fmt_optional(ours['log_loss'])} / {fmt_optional(theirs['log_loss'])}"
            )
        rows.append(
            [
                r["name"],
                f"{r['n_rows']} x {r['n_features']}",
                r["scaling"],
                r["loss"],
                r["splits"],
                fmt_score(ours["score_mean"]),
                fmt_score(theirs["score_mean"]),
                fmt_points(r["difference"]),
                fmt_seconds(ours["fit_seconds_median"]),
                fmt_seconds(theirs["fit_seconds_median"]),
                "-" if r["time_ratio"] is None else f"{r['time_ratio']:.2f}",
                f"{fmt_optional(ours['n_iter_mean'], 1)} / "
                f"{fmt_optional(theirs['n_iter_mean'], 1)}",
                ",".join(str(b) for b in r["batch_size_"]) or "-",
                ",".join(r["preconditioner_"]) or "-",
                calibration,
            ]
        )
    return rows


HEADERS = [
    "data set",
    "rows x features",
    "scaling",
    "loss",
    "splits",
    "ours",
    "sklearn",
    "ours - sklearn (pt)",
    "fit ours",
    "fit sklearn",
    "time ours / sklearn",
    "epochs ours / sklearn",
    "batch_size_",
    "preconditioner_",
    "log_loss: mean top proba ours / sklearn; log loss ours / sklearn",
]


def _label(record: dict) -> str:
    return f"{record['name']} ({record['scaling']})"


def geometric_mean(values: list[float]) -> float | None:
    return float(np.exp(np.mean(np.log(values)))) if values else None


def overall_summary(records: list[dict]) -> dict:
    """Worst difference, how many sets lose > 1 point, time ratios, small-set fit times."""
    summary = {}
    for loss_label in ("default", "log_loss"):
        chosen = [r for r in records if r["loss"] == loss_label]
        compared = [r for r in chosen if r["difference"] is not None]
        worst = min(compared, key=lambda r: r["difference"], default=None)
        # an R^2 below 0 on both sides (worse than the mean, e.g. a diverged fit) can differ
        # by orders of magnitude and hide every other row
        informative = [
            r for r in compared if max(r["sk_gpusgd"]["score_mean"], r["sklearn"]["score_mean"]) > 0
        ]
        worst_informative = min(informative, key=lambda r: r["difference"], default=None)
        big = [r for r in chosen if r["n_rows"] >= LARGE_ROWS and r["time_ratio"] is not None]
        small = [r for r in chosen if r["n_rows"] < SMALL_ROWS]
        ratios = [r["time_ratio"] for r in big]
        summary[loss_label] = {
            "rows_compared": len(compared),
            "rows_with_a_failure": [
                f"{r['name']} ({r['scaling']}): ours {r['sk_gpusgd']['failed_splits']}, "
                f"sklearn {r['sklearn']['failed_splits']} failed splits"
                for r in chosen
                if r["sk_gpusgd"]["failed_splits"] or r["sklearn"]["failed_splits"]
            ],
            "worst_difference_points": None if worst is None else 100.0 * worst["difference"],
            "worst_data_set": None if worst is None else f"{worst['name']} ({worst['scaling']})",
            "worst_difference_points_either_score_above_0": None
            if worst_informative is None
            else 100.0 * worst_informative["difference"],
            "worst_data_set_either_score_above_0": None
            if worst_informative is None
            else f"{worst_informative['name']} ({worst_informative['scaling']})",
            "both_scores_below_0": [
                f"{r['name']} ({r['scaling']})" for r in compared if r not in informative
            ],
            "more_than_1_point_below": [
                f"{r['name']} ({r['scaling']}): {100.0 * r['difference']:+.2f} pt"
                for r in compared
                if r["difference"] < -0.01
            ],
            "time_ratio_ge_20k_rows": {
                "n_sets": len(ratios),
                "geometric_mean": geometric_mean(ratios),
                "geometric_mean_dense": geometric_mean(
                    [r["time_ratio"] for r in big if not r["sparse"]]
                ),
                "geometric_mean_sparse": geometric_mean(
                    [r["time_ratio"] for r in big if r["sparse"]]
                ),
                "min": min(ratios, default=None),
                "max": max(ratios, default=None),
                "max_set": None
                if not big
                else max(big, key=lambda r: r["time_ratio"])["name"]
                + f" ({max(big, key=lambda r: r['time_ratio'])['scaling']})",
            },
            "max_fit_seconds_below_2000_rows": {
                label: max((r[label]["fit_seconds_median"] for r in small), default=None)
                for label in ("sk_gpusgd", "sklearn")
            },
            "max_fit_set_below_2000_rows": {
                label: None
                if not small
                else _label(max(small, key=lambda r: r[label]["fit_seconds_median"]))
                for label in ("sk_gpusgd", "sklearn")
            },
        }
    return summary


def summary_markdown(summary: dict) -> str:
    lines = []
    for loss_label, s in summary.items():
        ratio = s["time_ratio_ge_20k_rows"]
        small = s["max_fit_seconds_below_2000_rows"]
        worst = s["worst_difference_points"]
        below = s["more_than_1_point_below"]
        lines += [
            f"**loss = {loss_label}** ({s['rows_compared']} data set x scaling rows compared)",
            "",
            "- Worst accuracy / R^2 difference (ours - sklearn): "
            + ("-" if worst is None else f"{worst:+.2f} points, on {s['worst_data_set']}"),
            "- The same, leaving out rows where both scores are below 0 (R^2 worse than "
            "predicting the mean; "
            + (", ".join(s["both_scores_below_0"]) or "none")
            + "): "
            + (
                "-"
                if s["worst_difference_points_either_score_above_0"] is None
                else f"{s['worst_difference_points_either_score_above_0']:+.2f} points, on "
                f"{s['worst_data_set_either_score_above_0']}"
            ),
            f"- Ours more than 1 point (0.01) below scikit-learn: {len(below)}"
            + (f" ({'; '.join(below)})" if below else ""),
            "- Fit-time ratio ours / sklearn (of the median fit times; < 1: ours faster) on "
            "sets >= 20,000 rows: "
            + (
                "-"
                if ratio["geometric_mean"] is None
                else f"geometric mean {ratio['geometric_mean']:.2f} over {ratio['n_sets']} rows "
                f"(dense {fmt_optional(ratio['geometric_mean_dense'], 2)}, sparse "
                f"{fmt_optional(ratio['geometric_mean_sparse'], 2)}), "
                f"min {ratio['min']:.2f}, max {ratio['max']:.2f} ({ratio['max_set']})"
            ),
            f"- Max median fit time below 2,000 rows: ours {fmt_seconds(small['sk_gpusgd'])} "
            f"({s['max_fit_set_below_2000_rows']['sk_gpusgd']}), sklearn "
            f"{fmt_seconds(small['sklearn'])} ({s['max_fit_set_below_2000_rows']['sklearn']})",
        ]
        if s["rows_with_a_failure"]:
            lines.append("- Failed fits: " + "; ".join(s["rows_with_a_failure"]))
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sets <= 20k rows")
    parser.add_argument("--large", action="store_true", help="add 1M-row sets")
    parser.add_argument(
        "--only",
        action="append",
        default=None,
        help="run only the data sets whose name matches this glob (repeatable), "
        "e.g. --large --only '*_1M'",
    )
    parser.add_argument(
        "--scaling",
        action="append",
        choices=["raw", "standardized", "tf-idf"],
        help="run only these feature scalings (repeatable; default: all)",
    )
    parser.add_argument(
        "--splits", type=int, help="splits per data set (default: 10 below 2,000 rows, else 3)"
    )
    parser.add_argument(
        "--cases-only",
        action="store_true",
        help="run only the named cases (benchmarks/defaults_cases.py), no data sets",
    )
    parser.add_argument("--output-prefix", default="defaults-suite")
    parser.add_argument("--note", action="append", default=[], help="a note for the report")
    args = parser.parse_args(argv)
    if args.quick and args.large:
        parser.error("--quick and --large exclude each other")

    started = time.perf_counter()
    date = today()
    info = device_info(use_gpu=True)
    sizes = [1_000, 20_000]
    sparse_sizes = [(20_000, 14)]
    if not args.quick:
        sizes.append(200_000)
        sparse_sizes.append((200_000, 18))
    if args.large:
        sizes.append(1_000_000)
        sparse_sizes.append((1_000_000, 18))

    # an untimed warm-up: imports and first-call set-up are not charged to the first set
    warm = Problem("warm-up", "make_classification", "classification", *_tiny())
    run_split(warm, "standardized", None, 0)

    def wanted(name: str) -> bool:
        return not args.only or any(fnmatch.fnmatch(name, pattern) for pattern in args.only)

    problems = [] if args.cases_only else [p for p in bundled_problems() if wanted(p.name)]
    if not args.cases_only:
        problems += synthetic_problems(sizes, sparse_sizes, wanted)
    records = []
    for problem in problems:
        n_splits = 3 if problem.n_rows >= SMALL_ROWS else 10
        if args.splits:
            n_splits = args.splits
        losses = ["default", "log_loss"] if problem.task == "classification" else ["default"]
        for scaling in scalings(problem):
            if args.scaling and scaling not in args.scaling:
                continue
            data = prepared(problem, scaling)
            for loss in losses:
                runs = [
                    run_split(data, scaling, None if loss == "default" else loss, split)
                    for split in range(n_splits)
                ]
                record = {
                    "name": problem.name,
                    "source": problem.source,
                    "task": problem.task,
                    "metric": "accuracy" if problem.task == "classification" else "r2",
                    "n_rows": problem.n_rows,
                    "n_features": int(problem.X.shape[1]),
                    "n_classes": int(np.unique(problem.y).size)
                    if problem.task == "classification"
                    else None,
                    "sparse": problem.sparse,
                    "scaling": scaling,
                    "loss": loss,
                    "splits": n_splits,
                    **summarise_runs(runs),
                    "per_split": runs,
                }
                records.append(record)
                print(markdown_table(HEADERS, table_rows([record])).splitlines()[-1], flush=True)

    # the named cases: seconds in all, in every mode
    case_records = run_cases()
    cases_table = cases_markdown(case_records)
    print(cases_table, flush=True)
    summary = overall_summary(records) if records else {}
    found = versions()
    command = shlex.join(["python", "benchmarks/defaults_suite.py", *(argv or sys.argv[1:])])
    threads = {
        k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    }
    notes = [
        "Estimators: default parameters, random_state=split only (sk_gpusgd device='auto': "
        + ("the GPU" if info.get("gpu") else "the CPU, NumPy, no GPU present")
        + ").",
        f"Thread settings: {', '.join(f'{k}={v}' for k, v in threads.items() if v) or 'none'}.",
        *args.note,
    ]
    payload = {
        "benchmark": "defaults_suite",
        "date": date,
        "timestamp": now_iso(),
        "command": command,
        "device": info,
        "versions": found,
        "notes": notes,
        "settings": {
            "quick": args.quick,
            "large": args.large,
            "test_size": TEST_SIZE,
            "splits": "3" if args.quick else f"10 below {SMALL_ROWS} rows, else 3",
            "sizes": sizes,
            "sparse_sizes": [[n, 2**k] for n, k in sparse_sizes],
            "thread_environment": threads,
        },
        "summary": summary,
        "records": records,
        "cases": case_records,
        "total_seconds": time.perf_counter() - started,
    }
    table = markdown_table(HEADERS, table_rows(records))
    summary_text = summary_markdown(summary) if records else "(data sets not run)"
    markdown = "\n".join(
        [
            "# Default parameters: sk_gpusgd vs scikit-learn, broad suite",
            "",
            environment_markdown(info, found, date),
            f"- Command: `{command}`",
            *(f"- {note}" for note in notes),
            f"- Held-out splits: train_test_split(test_size={TEST_SIZE}, stratified for "
            "classification, random_state=split); scores are means over the splits, fit times "
            f"medians over the splits of each fit's fastest of up to {TIME_REPEATS} runs (repeated "
            f"while they take under {REPEAT_BUDGET_SECONDS:g} s in all, the two libraries taking "
            "turns); 'pt' = points of "
            "accuracy or R^2 (1 pt = 0.01). 'raw' synthetic features "
            "are randomly scaled and shifted; 'standardized' uses StandardScaler fitted on the "
            "training split. loss 'default' is hinge for classifiers and squared error for "
            "regressors; the log_loss rows set loss='log_loss' in both libraries.",
            "",
            table,
            "",
            "## Summary",
            "",
            summary_text,
            "",
            "## Cases",
            "",
            "Named cases where an automatic choice used to change the model "
            "(benchmarks/defaults_cases.py): the same arguments in both libraries, "
            "defaults otherwise.",
            "",
            cases_table,
        ]
    )
    print()
    print(table)
    print()
    print(summary_text)
    slug = device_slug(info) + ("-large" if args.large else "")
    save_report(args.output_prefix, slug, date, args.quick, payload, markdown, started)
    return 0


def _tiny():
    from sklearn.datasets import make_classification

    return make_classification(n_samples=200, n_features=5, random_state=0)


if __name__ == "__main__":
    raise SystemExit(main())
