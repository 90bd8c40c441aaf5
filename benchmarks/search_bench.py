"""A grid search over SGD: sk_gpusgd's batched search beside scikit-learn's GridSearchCV.

The same grid (``alpha`` x ``l1_ratio``, elastic net: 20 candidates), the same 5
folds and the refit, on three problems: dense binary, dense 10-class and a hashed
bag of words. Timed: ``sk_gpusgd.model_selection.GridSearchCV`` over
``GPUSGDClassifier`` (candidates of a fold trained together), scikit-learn's
``GridSearchCV`` over ``GPUSGDClassifier`` (one fit per candidate and fold) and over
scikit-learn's ``SGDClassifier``; and one default ``GPUSGDClassifier`` fit on all
rows, the unit of the ratios. The 10-class problem runs twice: one-vs-rest (the
compiled C epoch, whose candidates the plan trains one by one) and softmax
(``multi_class='multinomial'``, the array-API epoch, whose candidates train
together). Best score and best parameters of each.

    python benchmarks/search_bench.py                   # 200k rows
    python benchmarks/search_bench.py --rows 50000      # smaller
    python benchmarks/search_bench.py --skip-sklearn-sgd
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import scipy.sparse as sp
from _common import (
    device_info,
    device_slug,
    environment_markdown,
    fmt_float,
    fmt_ratio,
    fmt_seconds,
    linear_targets,
    markdown_table,
    now_iso,
    save_report,
    standard_normal_float32,
    today,
    versions,
)
from sklearn import model_selection as sk_model_selection
from sklearn.base import clone
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold

from sk_gpusgd import GPUSGDClassifier
from sk_gpusgd.model_selection import GridSearchCV

GRID = {
    "alpha": [1e-6, 1e-5, 1e-4, 1e-3, 1e-2],
    "l1_ratio": [0.0, 0.15, 0.5, 0.85],
}


def hashed_bag_of_words(n_rows: int, n_features: int, words_per_row: int, seed: int):
    """CSR counts of Zipf-distributed hashed words, labels from a sparse linear model."""
    rng = np.random.default_rng(seed)
    lengths = rng.poisson(words_per_row, size=n_rows).clip(1)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    words = (rng.zipf(1.3, size=indptr[-1]) * 2654435761) % n_features
    X = sp.csr_matrix(
        (np.ones(indptr[-1], dtype=np.float32), words.astype(np.int32), indptr),
        shape=(n_rows, n_features),
    )
    X.sum_duplicates()
    X.data = np.log1p(X.data)
    w = rng.standard_normal(n_features).astype(np.float32)
    score = X @ w + 0.5 * rng.standard_normal(n_rows).astype(np.float32)
    return X, (score > np.median(score)).astype(np.int64)


def problems(rows: int, features: int, seed: int):
    X = standard_normal_float32(rows, features, seed)
    yield "dense binary", X, linear_targets(X, "binary", seed)
    yield "dense 10-class", X, linear_targets(X, "multiclass", seed)
    yield "dense 10-class softmax", X, linear_targets(X, "multiclass", seed)
    yield "hashed bag of words", *hashed_bag_of_words(rows, 2**18, 60, seed)


def run(name, make_search, X, y):
    started = time.perf_counter()
    search = make_search().fit(X, y)
    seconds = time.perf_counter() - started
    return {
        "search": name,
        "seconds": seconds,
        "best_score": float(search.best_score_),
        "best_params": dict(search.best_params_),
        "refit_seconds": float(search.refit_time_),
        # (group, fold) fits that trained several candidates together
        "batched_fits": len(getattr(search, "search_groups_", [])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sklearn-sgd", action="store_true")
    parser.add_argument("--skip-sequential", action="store_true",
                        help="skip scikit-learn's GridSearchCV over GPUSGDClassifier")  # fmt: skip
    parser.add_argument("--only", default=None, help="run one problem (its name's start)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    info = device_info(use_gpu=False)
    records = []
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    theirs_estimator = SGDClassifier(penalty="elasticnet", random_state=0)
    for problem, X, y in problems(args.rows, args.features, args.seed):
        if args.only and not problem.startswith(args.only):
            continue
        ours_estimator = GPUSGDClassifier(penalty="elasticnet", random_state=0)
        if problem.endswith("softmax"):
            ours_estimator.set_params(multi_class="multinomial", loss="log_loss")
        fit_start = time.perf_counter()
        clone(ours_estimator).fit(X, y)
        one_fit = time.perf_counter() - fit_start
        searches = [
            ("sk_gpusgd GridSearchCV",
             lambda est=ours_estimator: GridSearchCV(est, GRID, cv=cv)),
        ]  # fmt: skip
        if not args.skip_sequential:
            searches.append(
                ("sklearn GridSearchCV, GPUSGDClassifier",
                 lambda est=ours_estimator: sk_model_selection.GridSearchCV(est, GRID, cv=cv))
            )  # fmt: skip
        if not args.skip_sklearn_sgd and not problem.endswith("softmax"):
            searches.append(
                ("sklearn GridSearchCV, SGDClassifier",
                 lambda: sk_model_selection.GridSearchCV(theirs_estimator, GRID, cv=cv))
            )  # fmt: skip
        for name, make_search in searches:
            record = run(name, make_search, X, y)
            record.update(problem=problem, one_default_fit_seconds=one_fit)
            record["ratio_to_one_fit"] = record["seconds"] / one_fit
            records.append(record)
            ratio = record["ratio_to_one_fit"]
            print(f"{problem:22s} {name:42s} {record['seconds']:8.1f} s "
                  f"{ratio:6.1f}x  best {record['best_score']:.4f}")  # fmt: skip
    rows = [
        (r["problem"], r["search"], fmt_seconds(r["seconds"]),
         fmt_ratio(r["ratio_to_one_fit"]), fmt_seconds(r["one_default_fit_seconds"]),
         fmt_float(r["best_score"]), r["best_params"], r["batched_fits"])
        for r in records
    ]  # fmt: skip
    found = versions()
    date = today()
    markdown = "\n\n".join(
        [
            f"# Grid search: {len(GRID['alpha']) * len(GRID['l1_ratio'])} candidates x "
            f"{args.folds} folds + refit, {args.rows} rows",
            "Command: `python benchmarks/search_bench.py "
            f"--rows {args.rows} --features {args.features}`. The ratio is to one default "
            "GPUSGDClassifier(penalty='elasticnet') fit on all rows.",
            markdown_table(
                [
                    "problem",
                    "search",
                    "time",
                    "x one fit",
                    "one fit",
                    "best score",
                    "best",
                    "batched fits",
                ],
                rows,
            ),
            environment_markdown(info, found, date),
        ]
    )
    payload = {"date": now_iso(), "args": vars(args), "device": info, "versions": found,
               "grid": GRID, "records": records}  # fmt: skip
    quick = args.rows < 200_000
    save_report("search", device_slug(info), date, quick, payload, markdown, started)


if __name__ == "__main__":
    main()
