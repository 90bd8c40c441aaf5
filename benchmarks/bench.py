"""Side-by-side speed of sk_gpusgd (GPU and CPU), scikit-learn, PyTorch, IBM Snap ML and cuML.

Every SGD competitor trains the same linear model (same loss, alpha, constant
learning rate, batch size where it has one, epochs) on the same synthetic
float32 data, in the same run, and is timed per epoch; the held-out accuracy
(or R^2) after the same number of epochs is reported beside the time. With
``--loss log_loss`` the held-out log loss too, and the time each competitor
takes to reach a target held-out log loss (IBM Snap ML's logistic regression,
a coordinate-descent solver, competes there and per epoch).

    python benchmarks/bench.py --quick          # CPU, under a minute
    python benchmarks/bench.py                  # the full grid (GPU machine)
    python benchmarks/bench.py --cases headline # 2M x 256, 10 classes, batch 1024

Results go to benchmarks/results/bench-<device-slug>-<YYYYMMDD>.json and .md.
"""

from __future__ import annotations

import argparse
import fnmatch
import gc
import math
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    cpu_copy_bandwidth,
    cpu_count,
    cupy_or_none,
    device_info,
    device_slug,
    environment_markdown,
    fmt_bytes,
    fmt_float,
    fmt_rate,
    fmt_ratio,
    fmt_seconds,
    gpu_copy_bandwidth,
    held_out_log_loss,
    linear_targets,
    markdown_table,
    now_iso,
    quiet_warnings,
    ratio,
    result_paths,
    save_report,
    score,
    standard_normal_float32,
    synchronize,
    timed,
    to_host,
    today,
    torch_or_none,
    versions,
    write_json,
    write_text,
)

TASKS = ("binary", "multiclass", "regression")
N_CLASSES = 10
FULL_SIZES = (100_000, 1_000_000, 2_000_000, 10_000_000)
FULL_DIMS = (128, 256, 1024)
FULL_BATCHES = (256, 1024, 8192)
QUICK_SIZES = (20_000, 50_000)
QUICK_DIMS = (128,)
QUICK_BATCHES = (256,)
HEADLINE = ("multiclass", 2_000_000, 256, 1024)
MEMORY_FRACTION = 0.4
# each competitor's constant learning rate is chosen from this grid, by held-out score
# after the timed number of epochs on at most TUNE_ROWS training rows (per-sample and
# minibatch SGD do not share a best eta0)
ETA0_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
TUNE_ROWS = 50_000

COMPETITORS = (
    "sk_gpusgd-gpu",
    "sk_gpusgd-cpu",
    "sklearn",
    "torch",
    "torch-graph",
    "snapml",
    "cuml",
)
# IBM Snap ML's L2 strength is a sum over rows (regularizer = alpha * n_rows is the mean-loss
# alpha of the others); it is chosen from this grid of alphas, by held-out score, as eta0 is
SNAPML_ALPHA_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
# the target held-out log loss: the best any competitor reached after the timed epochs,
# plus this fraction
TARGET_SLACK = 0.01
# steps per captured graph of the PyTorch graph competitor (as the CUDA engine's chunks)
TORCH_GRAPH_CHUNK = 64

TARGET_TEXT = {
    "gpu_ge_100x_sklearn": "sk_gpusgd GPU >= 100x scikit-learn per epoch at 2M x 256, "
    "10 classes, batch 1024",
    "gpu_ge_3x_torch": "sk_gpusgd GPU >= 3x the PyTorch loop (CUDA)",
    "gpu_ge_1x_torch_graph": "sk_gpusgd GPU >= 1x the PyTorch loop captured as CUDA graphs",
    "gpu_ge_60pct_bandwidth": "sk_gpusgd GPU >= 60% of measured copy bandwidth at batch >= 8192",
    "gpu_overhead_le_5us": "sk_gpusgd GPU <= 5 us overhead per step at batch 256 "
    "((s/epoch - bandwidth-bound s/epoch) / steps)",
    "cpu_ge_1_5x_sklearn_binary": "sk_gpusgd CPU >= 1.5x scikit-learn on binary at batch 256",
    "cpu_ge_5x_sklearn_multiclass": "sk_gpusgd CPU >= 5x scikit-learn on 10 classes at batch 256",
    "gpu_accuracy_within_0_5pt": "sk_gpusgd GPU accuracy at most 0.5 pt below scikit-learn",
    "cpu_accuracy_within_0_5pt": "sk_gpusgd CPU accuracy at most 0.5 pt below scikit-learn",
}


# ------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    task: str
    n: int
    d: int
    batch_size: int

    @property
    def name(self) -> str:
        return f"{self.task}-n{self.n}-d{self.d}-b{self.batch_size}"

    @property
    def headline(self) -> bool:
        return (self.task, self.n, self.d, self.batch_size) == HEADLINE

    @property
    def data_key(self) -> tuple:
        return (self.task, self.n, self.d)


def parse_sizes(text: str | None, dims: tuple[int, ...], default: tuple[int, ...]):
    """'2000000x256,100000' -> [(2000000, 256), (100000, d) for every d in dims]."""
    if not text:
        return [(n, d) for n in default for d in dims]
    pairs = []
    for item in text.split(","):
        item = item.strip().lower().replace("_", "")
        if not item:
            continue
        if "x" in item:
            n, d = item.split("x")
            pairs.append((int(float(n)), int(d)))
        else:
            pairs.extend((int(float(item)), d) for d in dims)
    return pairs


def case_selected(case: Case, patterns: list[str] | None) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == "headline" and case.headline:
            return True
        if pattern == case.task or pattern in case.name or fnmatch.fnmatch(case.name, pattern):
            return True
    return False


def build_cases(args) -> list[Case]:
    """Every selected case, the headline first, grouped by data set (one generation each)."""
    dims = tuple(args.dims) if args.dims else (QUICK_DIMS if args.quick else FULL_DIMS)
    sizes = parse_sizes(args.sizes, dims, QUICK_SIZES if args.quick else FULL_SIZES)
    batches = (
        tuple(args.batch_sizes)
        if args.batch_sizes
        else (QUICK_BATCHES if args.quick else FULL_BATCHES)
    )
    tasks = tuple(args.tasks) if args.tasks else TASKS
    cases = [
        Case(task, n, d, b)
        for task in tasks
        for (n, d) in sizes
        for b in batches
        if n > 0 and d > 0
    ]
    if not args.quick and not args.sizes and not args.batch_sizes and not args.tasks:
        if HEADLINE[0] in tasks:
            cases.append(Case(*HEADLINE))
    patterns = [p.strip() for p in args.cases.split(",")] if args.cases else None
    if patterns and "headline" in patterns:
        cases.append(Case(*HEADLINE))
    unique = list(dict.fromkeys(c for c in cases if case_selected(c, patterns)))
    data_order = list(dict.fromkeys(c.data_key for c in unique))
    headline_key = HEADLINE[:3]
    if headline_key in data_order:
        data_order.remove(headline_key)
        data_order.insert(0, headline_key)
    order = {key: i for i, key in enumerate(data_order)}
    return sorted(unique, key=lambda c: (order[c.data_key], not c.headline))


# -------------------------------------------------------------------- data
@dataclass
class Dataset:
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    gpu: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.X_train.shape[0]

    @property
    def d(self) -> int:
        return self.X_train.shape[1]

    def on_gpu(self, cupy):
        if not self.gpu:
            self.gpu = {
                "X_train": cupy.asarray(self.X_train),
                "y_train": cupy.asarray(self.y_train),
                "X_test": cupy.asarray(self.X_test),
            }
            cupy.cuda.Device().synchronize()
        return self.gpu["X_train"], self.gpu["y_train"], self.gpu["X_test"]

    def head(self, rows: int) -> Dataset:
        """The first ``rows`` training rows and as many test rows (the tuning set)."""
        return Dataset(
            self.task,
            self.X_train[:rows],
            self.y_train[:rows],
            self.X_test[:rows],
            self.y_test[:rows],
        )

    def release(self, cupy) -> None:
        self.gpu.clear()
        gc.collect()
        if cupy is not None:
            cupy.get_default_memory_pool().free_all_blocks()


def n_test_rows(n: int) -> int:
    return int(min(max(n // 10, 5_000), 200_000))


def make_dataset(task: str, n: int, d: int, seed: int) -> Dataset:
    n_test = n_test_rows(n)
    X = standard_normal_float32(n + n_test, d, seed)
    y = linear_targets(X, task, seed, n_classes=N_CLASSES)
    return Dataset(task, X[:n], y[:n], X[n:], y[n:])


# ------------------------------------------------------------ hyper-params
def hyper_parameters(task: str, d: int, args) -> dict:
    """The settings every competitor shares for one case."""
    if task == "regression":
        # scikit-learn's per-sample squared-error step diverges once eta0 ||x||^2 > 2
        # (||x||^2 ~ d here), so every competitor gets the largest eta0 <= --eta0 that
        # keeps it stable.
        return {"loss": "squared_error", "alpha": args.alpha, "eta0": min(args.eta0, 0.5 / d)}
    return {"loss": args.loss, "alpha": args.alpha, "eta0": args.eta0}


def sk_gpusgd_estimator(task: str, hp: dict, batch_size: int, epochs: int, device: str, seed: int):
    from sk_gpusgd import GPUSGDClassifier, GPUSGDRegressor

    cls = GPUSGDRegressor if task == "regression" else GPUSGDClassifier
    return cls(
        loss=hp["loss"],
        penalty="l2",
        alpha=hp["alpha"],
        learning_rate="constant",
        eta0=hp["eta0"],
        max_iter=epochs,
        tol=None,
        shuffle=True,
        batch_size=batch_size,
        random_state=seed,
        device=device,
    )


def sklearn_estimator(task: str, hp: dict, epochs: int, seed: int):
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    common = {
        "loss": hp["loss"],
        "penalty": "l2",
        "alpha": hp["alpha"],
        "learning_rate": "constant",
        "eta0": hp["eta0"],
        "max_iter": epochs,
        "tol": None,
        "shuffle": True,
        "random_state": seed,
    }
    if task == "regression":
        return SGDRegressor(**common)
    return SGDClassifier(n_jobs=-1, **common)


def tuned_eta0(
    run, dataset: Dataset, case: Case, hp: dict, args, key: str = "eta0", grid=ETA0_GRID
) -> tuple[float, dict]:
    """The ``hp[key]`` of ``grid`` (eta0 by default) that gives the best held-out score.

    ``run(dataset, hp, args)`` is the competitor's timed run; here it trains on
    the first ``TUNE_ROWS`` rows, once per grid value, for the timed epochs. The
    score is minus the held-out log loss where the run measures it (``--loss
    log_loss``), else the accuracy (R^2). A value whose fit diverges (non-finite
    score or an error) loses.
    """
    subset = dataset.head(min(dataset.n, TUNE_ROWS))
    quick = argparse.Namespace(**{**vars(args), "repeats": 1, "time_to_target": False})
    scores = {}
    for value in grid:
        try:
            with np.errstate(all="ignore"):
                record = run(subset, dict(hp, **{key: value}), quick)
            found = record.get("score")
            if record.get("log_loss") is not None:
                found = -record["log_loss"]
        except Exception:  # noqa: BLE001 - a diverging rate is a losing rate
            found = None
        scores[value] = found if found is not None and math.isfinite(found) else -math.inf
    best = max(grid, key=lambda value: (scores[value], -value))
    return best, {str(k): (None if v == -math.inf else v) for k, v in scores.items()}


# ------------------------------------------------------------- competitors
def _measure(
    fit_once, predict, task, y_test, epochs, repeats, sync, warmup=None, proba=None, ladder=None
):
    """Warm up (untimed), then the best of ``repeats`` timed fits of ``epochs`` epochs.

    ``proba(model)``: held-out class probabilities, for the held-out log loss.
    ``ladder``: {epochs: fit} of fresh fits of fewer epochs, each timed once, for the
    time to a target log loss (the curve of seconds and held-out log loss by epochs).
    """
    record = {"epochs": epochs}
    if warmup is not None:
        record["warmup_seconds"], _ = timed(warmup, sync)
    best, model = math.inf, None
    for _ in range(repeats):
        model = None
        gc.collect()
        seconds, model = timed(fit_once, sync)
        best = min(best, seconds)
    record["fit_seconds"] = best
    record["seconds_per_epoch"] = best / epochs
    record["score"] = score(task, y_test, predict(model))
    n_classes = N_CLASSES if task == "multiclass" else 2
    if proba is not None:
        record["log_loss"] = held_out_log_loss(y_test, proba(model), n_classes)
    if proba is not None and ladder:
        model = None
        curve = []
        for fewer, fit in sorted(ladder.items()):
            gc.collect()
            seconds, shorter = timed(fit, sync)
            loss = held_out_log_loss(y_test, proba(shorter), n_classes)
            curve.append({"epochs": fewer, "seconds": seconds, "log_loss": loss})
            shorter = None
        curve.append({"epochs": epochs, "seconds": best, "log_loss": record["log_loss"]})
        record["log_loss_curve"] = curve
    return record


def measures_log_loss(case: Case, hp: dict) -> bool:
    """Held-out log loss (and the time to a target) for classification with the log loss."""
    return case.task != "regression" and hp["loss"] == "log_loss"


def ladder_of(fit, case: Case, hp: dict, args) -> dict | None:
    """{epochs: fit(epochs)} for 1 .. epochs - 1 when the time to a target is measured."""
    if not (measures_log_loss(case, hp) and getattr(args, "time_to_target", True)):
        return None
    return {epochs: fit(epochs) for epochs in range(1, args.epochs)}


def run_sk_gpusgd(ds: Dataset, case: Case, hp: dict, args, device: str, cupy=None) -> dict:
    if device == "cuda":
        X, y, X_test = ds.on_gpu(cupy)
    else:
        X, y, X_test = ds.X_train, ds.y_train, ds.X_test
    seed = args.seed

    def fit(epochs):
        def go():
            est = sk_gpusgd_estimator(case.task, hp, case.batch_size, epochs, device, seed)
            with quiet_warnings():
                return est.fit(X, y)

        return go

    def sync():
        synchronize(cupy)

    record = _measure(
        fit(args.epochs),
        lambda model: to_host(model.predict(X_test)),
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        sync if device == "cuda" else None,
        warmup=fit(1),
        proba=(lambda model: model.predict_proba(X_test)) if measures_log_loss(case, hp) else None,
        ladder=ladder_of(fit, case, hp, args),
    )
    record["device"] = "cuda:0" if device == "cuda" else "cpu"
    record["steps_per_epoch"] = math.ceil(ds.n / case.batch_size)
    return record


def run_sklearn(ds: Dataset, case: Case, hp: dict, args) -> dict:
    def fit(epochs):
        def go():
            est = sklearn_estimator(case.task, hp, epochs, args.seed)
            with quiet_warnings():
                return est.fit(ds.X_train, ds.y_train)

        return go

    record = _measure(
        fit(args.epochs),
        lambda model: model.predict(ds.X_test),
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        None,
        proba=(lambda model: model.predict_proba(ds.X_test))
        if measures_log_loss(case, hp)
        else None,
        ladder=ladder_of(fit, case, hp, args),
    )
    record["device"] = "cpu"
    record["steps_per_epoch"] = ds.n
    record["per_sample_updates"] = True
    record["note"] = "per-sample updates; measured once per data set (no batch size)"
    return record


def torch_loss(torch, name: str):
    functional = torch.nn.functional
    if name == "hinge":
        return lambda out, target: torch.clamp(1.0 - target * out, min=0.0).sum() / out.shape[0]
    if name == "log_loss":
        return lambda out, target: (
            functional.binary_cross_entropy_with_logits(out, target, reduction="sum") / out.shape[0]
        )
    if name == "squared_error":
        return lambda out, target: 0.5 * ((out - target) ** 2).sum() / out.shape[0]
    raise ValueError(f"no PyTorch loss for {name!r}")


def torch_targets(torch, y, task: str, loss: str, device):
    """Targets as sk_gpusgd sees them: one-vs-rest +1/-1 (hinge) or 1/0 (log loss)."""
    y = torch.as_tensor(np.asarray(y), device=device)
    if task == "regression":
        return y.to(torch.float32)[:, None]
    if task == "multiclass":
        positive = torch.nn.functional.one_hot(y.long(), N_CLASSES).to(torch.float32)
    else:
        positive = y.to(torch.float32)[:, None]
    return positive if loss == "log_loss" else 2.0 * positive - 1.0


def torch_predictor(torch, X_test, task: str):
    """``predict(model)``: the linear layer's predictions on ``X_test``, on the host."""

    def predict(model):
        with torch.no_grad():
            out = model(X_test)
        if task == "regression":
            return to_host(out[:, 0])
        if task == "multiclass":
            return to_host(out.argmax(dim=1))
        return to_host((out[:, 0] > 0).long())

    return predict


def torch_proba(torch, X_test, task: str):
    """``proba(model)``: one-vs-rest probabilities as scikit-learn's (sigmoids, normalised)."""

    def proba(model):
        with torch.no_grad():
            p = torch.sigmoid(model(X_test).double())
        if task == "multiclass":
            p = p / p.sum(dim=1, keepdim=True)
        else:
            p = torch.cat([1.0 - p, p], dim=1)
        return to_host(p)

    return proba


def torch_on_cuda(torch, args) -> bool:
    """PyTorch runs on CUDA when it can, unless --quick / --no-gpu / --torch-device cpu."""
    if args.torch_device == "cpu" or args.quick or args.no_gpu:
        return False
    return torch.cuda.is_available()


def run_torch(ds: Dataset, case: Case, hp: dict, args, cupy=None) -> dict:
    torch = torch_or_none()
    if torch is None:
        return {"status": "not installed"}
    on_cuda = torch_on_cuda(torch, args)
    device = torch.device("cuda" if on_cuda else "cpu")
    if on_cuda and cupy is not None:
        X_gpu, _y, X_test_gpu = ds.on_gpu(cupy)
        X = torch.from_dlpack(X_gpu)  # zero copy: the same device buffer as CuPy's
        X_test = torch.from_dlpack(X_test_gpu)
    else:
        X = torch.from_numpy(ds.X_train).to(device)
        X_test = torch.from_numpy(ds.X_test).to(device)
    T = torch_targets(torch, ds.y_train, case.task, hp["loss"], device)
    n, d = X.shape
    n_out = N_CLASSES if case.task == "multiclass" else 1
    loss_fn = torch_loss(torch, hp["loss"])
    batch_size = case.batch_size

    def train(epochs):
        def go():
            torch.manual_seed(args.seed)
            generator = torch.Generator(device=device)
            generator.manual_seed(args.seed)
            model = torch.nn.Linear(d, n_out).to(device)
            with torch.no_grad():  # zeros, as sk_gpusgd and scikit-learn start
                model.weight.zero_()
                model.bias.zero_()
            optimizer = torch.optim.SGD(
                [
                    {"params": [model.weight], "weight_decay": hp["alpha"]},
                    {"params": [model.bias], "weight_decay": 0.0},
                ],
                lr=hp["eta0"],
            )
            for _ in range(epochs):
                order = torch.randperm(n, device=device, generator=generator)
                for start in range(0, n, batch_size):
                    rows = order[start : start + batch_size]
                    loss = loss_fn(model(X[rows]), T[rows])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            return model

        return go

    predict = torch_predictor(torch, X_test, case.task)

    record = _measure(
        train(args.epochs),
        predict,
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        (lambda: torch.cuda.synchronize()) if on_cuda else None,
        warmup=train(1),
        proba=torch_proba(torch, X_test, case.task) if measures_log_loss(case, hp) else None,
        ladder=ladder_of(train, case, hp, args),
    )
    record["device"] = "cuda:0" if on_cuda else "cpu"
    record["steps_per_epoch"] = math.ceil(n / batch_size)
    record["torch_threads"] = torch.get_num_threads()
    return record


def run_torch_graph(ds: Dataset, case: Case, hp: dict, args, cupy=None) -> dict:
    """The PyTorch loop of :func:`run_torch`, its steps captured as CUDA graphs.

    Chunks of ``TORCH_GRAPH_CHUNK`` steps are captured once per fit (after warm-up steps
    on a side stream, as PyTorch's CUDA-graph guide does, then the weights are zeroed
    again) and replayed every epoch; each epoch's permutation is drawn outside the graphs
    into the static index tensor the graphs read. The capture is part of the timed fit.
    """
    torch = torch_or_none()
    if torch is None:
        return {"status": "not installed"}
    if not torch_on_cuda(torch, args):
        return {"status": "skipped", "reason": "CUDA graphs need PyTorch on CUDA"}
    device = torch.device("cuda")
    if cupy is not None:
        X_gpu, _y, X_test_gpu = ds.on_gpu(cupy)
        X, X_test = torch.from_dlpack(X_gpu), torch.from_dlpack(X_test_gpu)
    else:
        X = torch.from_numpy(ds.X_train).to(device)
        X_test = torch.from_numpy(ds.X_test).to(device)
    T = torch_targets(torch, ds.y_train, case.task, hp["loss"], device)
    n, d = X.shape
    n_out = N_CLASSES if case.task == "multiclass" else 1
    loss_fn = torch_loss(torch, hp["loss"])
    batch_size = case.batch_size
    steps = math.ceil(n / batch_size)

    def train(epochs):
        def go():
            torch.manual_seed(args.seed)
            generator = torch.Generator(device=device)
            generator.manual_seed(args.seed)
            model = torch.nn.Linear(d, n_out).to(device)
            optimizer = torch.optim.SGD(
                [
                    {"params": [model.weight], "weight_decay": hp["alpha"]},
                    {"params": [model.bias], "weight_decay": 0.0},
                ],
                lr=hp["eta0"],
            )
            order = torch.randperm(n, device=device, generator=generator)

            def step(index):
                rows = order[index * batch_size : min((index + 1) * batch_size, n)]
                optimizer.zero_grad(set_to_none=False)
                loss_fn(model(X[rows]), T[rows]).backward()
                optimizer.step()

            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for index in range(min(3, steps)):
                    step(index)
            torch.cuda.current_stream().wait_stream(side)
            graphs = []
            for first in range(0, steps, TORCH_GRAPH_CHUNK):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for index in range(first, min(first + TORCH_GRAPH_CHUNK, steps)):
                        step(index)
                graphs.append(graph)
            with torch.no_grad():  # zeros, as sk_gpusgd and scikit-learn start
                model.weight.zero_()
                model.bias.zero_()
            for _ in range(epochs):
                order.copy_(torch.randperm(n, device=device, generator=generator))
                for graph in graphs:
                    graph.replay()
            return model

        return go

    predict = torch_predictor(torch, X_test, case.task)

    record = _measure(
        train(args.epochs),
        predict,
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        lambda: torch.cuda.synchronize(),
        warmup=train(1),
        proba=torch_proba(torch, X_test, case.task) if measures_log_loss(case, hp) else None,
        ladder=ladder_of(train, case, hp, args),
    )
    record["device"] = "cuda:0"
    record["steps_per_epoch"] = steps
    record["graph_chunk_steps"] = TORCH_GRAPH_CHUNK
    return record


def snapml_on_gpu(cupy, args) -> bool:
    """Snap ML trains on the GPU where the benchmark uses one (its wheel has its own CUDA)."""
    return cupy is not None and not (args.quick or args.no_gpu)


def run_snapml(ds: Dataset, case: Case, hp: dict, args, cupy=None) -> dict:
    """IBM Snap ML's ``LogisticRegression`` (dual coordinate descent), on the GPU where used.

    Its L2 strength is ``regularizer = alpha * n_rows`` (a sum over rows where the SGD
    competitors take a mean); ``alpha`` is its own best of ``SNAPML_ALPHA_GRID`` (the
    tuning picks it as it picks the others' eta0). ``tol=0`` runs every epoch asked for
    (``max_iter`` epochs of coordinate descent); an intercept as the others have. It
    takes host NumPy data (its fit copies X to the GPU, within the timed fit). The
    multiclass model is one-vs-rest, as the others'.
    """
    if case.task == "regression":
        return {"status": "skipped", "reason": "logistic regression: classification only"}
    if hp["loss"] != "log_loss":
        return {"status": "skipped", "reason": "logistic regression: needs --loss log_loss"}
    try:
        from snapml import LogisticRegression
    except Exception as error:  # noqa: BLE001 - absent or broken: either way not measurable
        return {"status": "not installed", "reason": f"{type(error).__name__}: {error}"}
    on_gpu = snapml_on_gpu(cupy, args)
    regularizer = hp["alpha"] * ds.n

    def fit(epochs):
        def go():
            est = LogisticRegression(
                max_iter=epochs,
                regularizer=regularizer,
                use_gpu=on_gpu,
                device_ids=[0] if on_gpu else [],
                n_jobs=256 if on_gpu else cpu_count(),
                dual=True,
                fit_intercept=True,
                tol=0.0,
                random_state=args.seed,
            )
            with quiet_warnings():
                return est.fit(ds.X_train, ds.y_train)

        return go

    record = _measure(
        fit(args.epochs),
        lambda model: model.predict(ds.X_test),
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        None,  # fit returns once the model is on the host
        warmup=fit(1),
        proba=lambda model: model.predict_proba(ds.X_test),
        ladder=ladder_of(fit, case, hp, args),
    )
    record["device"] = "cuda:0" if on_gpu else "cpu"
    record["regularizer"] = regularizer
    record["note"] = "dual coordinate descent; an epoch is one pass of coordinate updates"
    return record


def run_cuml(ds: Dataset, case: Case, hp: dict, args, cupy=None) -> dict:
    try:
        from cuml.linear_model import MBSGDClassifier, MBSGDRegressor
    except Exception:  # noqa: BLE001 - absent or broken: either way not measurable
        return {"status": "not installed"}
    if cupy is None:
        return {"status": "skipped", "reason": "no GPU"}
    X, y, X_test = ds.on_gpu(cupy)
    loss = {"hinge": "hinge", "log_loss": "log", "squared_error": "squared_loss"}[hp["loss"]]
    cls = MBSGDRegressor if case.task == "regression" else MBSGDClassifier

    def fit(epochs):
        def go():
            est = cls(
                loss=loss,
                penalty="l2",
                alpha=hp["alpha"],
                learning_rate="constant",
                eta0=hp["eta0"],
                epochs=epochs,
                batch_size=case.batch_size,
                tol=0.0,
                n_iter_no_change=epochs + 1,
                shuffle=True,
            )
            return est.fit(X, y)

        return go

    record = _measure(
        fit(args.epochs),
        lambda model: to_host(model.predict(X_test)),
        case.task,
        ds.y_test,
        args.epochs,
        args.repeats,
        lambda: synchronize(cupy),
        warmup=fit(1),
    )
    record["device"] = "cuda:0"
    record["steps_per_epoch"] = math.ceil(ds.n / case.batch_size)
    return record


# ---------------------------------------------------------------- analysis
def add_throughput(record: dict, case: Case, x_bytes: int, bandwidth: float | None) -> None:
    """samples/s, effective GB/s, the bandwidth bound and the overhead per step."""
    spe = record.get("seconds_per_epoch")
    if spe is None:
        return
    record["samples_per_s"] = case.n / spe
    record["effective_gb_s"] = x_bytes / spe / 1e9
    if bandwidth:
        bound = x_bytes / bandwidth
        record["bandwidth_gb_s"] = bandwidth / 1e9
        record["bandwidth_bound_s_per_epoch"] = bound
        record["fraction_of_bandwidth"] = bound / spe
        steps = record.get("steps_per_epoch")
        if steps and not record.get("per_sample_updates"):
            record["overhead_us_per_step"] = (spe - bound) / steps * 1e6


def _spe(results: dict, name: str) -> float | None:
    record = results.get(name, {})
    return record.get("seconds_per_epoch") if record.get("status", "ok") == "ok" else None


def _score(results: dict, name: str) -> float | None:
    record = results.get(name, {})
    return record.get("score") if record.get("status", "ok") == "ok" else None


def analyse(case: Case, results: dict) -> tuple[dict, dict]:
    """Speed-up ratios (how many times faster) and target booleans of one case."""
    gpu, cpu = _spe(results, "sk_gpusgd-gpu"), _spe(results, "sk_gpusgd-cpu")
    skl, tch = _spe(results, "sklearn"), _spe(results, "torch")
    torch_graph = _spe(results, "torch-graph")
    torch_device = results.get("torch", {}).get("device")
    ratios = {
        "gpu_vs_sklearn": ratio(skl, gpu),
        "gpu_vs_torch": ratio(tch, gpu),
        "gpu_vs_torch_graph": ratio(torch_graph, gpu),
        "gpu_vs_snapml": ratio(_spe(results, "snapml"), gpu),
        "cpu_vs_sklearn": ratio(skl, cpu),
        "cpu_vs_torch": ratio(tch, cpu) if torch_device == "cpu" else None,
        "torch_device": torch_device,
    }
    skl_score = _score(results, "sklearn")
    for which in ("gpu", "cpu"):
        ours = _score(results, f"sk_gpusgd-{which}")
        ratios[f"{which}_score_minus_sklearn"] = (
            None if ours is None or skl_score is None else ours - skl_score
        )
    classification = case.task != "regression"
    gpu_record = results.get("sk_gpusgd-gpu", {})

    def check(condition_applies: bool, value, threshold, higher=True):
        if not condition_applies or value is None:
            return None
        return bool(value >= threshold) if higher else bool(value <= threshold)

    targets = {
        "gpu_ge_100x_sklearn": check(case.headline, ratios["gpu_vs_sklearn"], 100),
        "gpu_ge_3x_torch": check(torch_device == "cuda:0", ratios["gpu_vs_torch"], 3),
        "gpu_ge_1x_torch_graph": check(True, ratios["gpu_vs_torch_graph"], 1),
        "gpu_ge_60pct_bandwidth": check(
            case.batch_size >= 8192 and gpu is not None,
            gpu_record.get("fraction_of_bandwidth"),
            0.6,
        ),
        "gpu_overhead_le_5us": check(
            case.batch_size == 256 and gpu is not None,
            gpu_record.get("overhead_us_per_step"),
            5.0,
            higher=False,
        ),
        "cpu_ge_1_5x_sklearn_binary": check(
            case.task == "binary" and case.batch_size == 256, ratios["cpu_vs_sklearn"], 1.5
        ),
        "cpu_ge_5x_sklearn_multiclass": check(
            case.task == "multiclass" and case.batch_size == 256, ratios["cpu_vs_sklearn"], 5
        ),
    }
    for which in ("gpu", "cpu"):
        # the target guards against losing accuracy: being more accurate meets it
        diff = ratios[f"{which}_score_minus_sklearn"]
        targets[f"{which}_accuracy_within_0_5pt"] = check(classification, diff, -0.005)
    return ratios, {k: v for k, v in targets.items() if v is not None}


# ------------------------------------------------------------------ report
def status_of(record: dict) -> str:
    return record.get("status", "ok")


def markdown_report(payload: dict) -> str:
    settings = payload["settings"]
    bw = payload["bandwidth"]
    lines = [
        f"# sk_gpusgd speed benchmark ({'quick' if settings['quick'] else 'full'})",
        "",
        environment_markdown(payload["device"], payload["versions"], payload["date"]),
        f"- Command: `{payload['command']}`",
        f"- Epochs timed: {settings['epochs']} (after a 1-epoch warm-up fit for sk_gpusgd, "
        f"PyTorch, cuML), best of {settings['repeats']}; loss {settings['loss']} "
        f"(regression: squared_error), alpha {settings['alpha']}, constant learning rate, "
        + (
            f"each competitor's own best eta0 of {list(ETA0_GRID)} (held-out score after the "
            f"timed epochs on at most {TUNE_ROWS:,} training rows)"
            if settings.get("tune", True)
            else f"eta0 {settings['eta0']} (regression: min(eta0, 0.5/d)) for all"
        )
        + ", L2 penalty, shuffle, tol=None",
        f"- Copy bandwidth (2 x bytes / time): CPU {fmt_float(bw.get('cpu_gb_s'), 1)} GB/s"
        + (f", GPU {fmt_float(bw.get('gpu_gb_s'), 1)} GB/s" if bw.get("gpu_gb_s") else ""),
        "",
        "## Targets",
        "",
    ]
    summary = payload["target_summary"]
    for key, text in TARGET_TEXT.items():
        verdict = summary.get(key)
        if verdict is None:
            status = "not measured in this run"
        else:
            status = f"met in {verdict['met']}/{verdict['measured']} case(s)"
        lines.append(f"- {text}: **{status}**")
    lines += [
        "",
        "## Ratios (how many times faster; score differences are ours minus scikit-learn)",
        "",
    ]
    rows = []
    for case in payload["cases"]:
        if case.get("skipped"):
            continue
        r = case["ratios"]
        met = [k for k, v in case["targets"].items() if v]
        missed = [k for k, v in case["targets"].items() if v is False]
        rows.append(
            [
                case["name"] + (" **(headline)**" if case["headline"] else ""),
                fmt_ratio(r["gpu_vs_sklearn"]),
                fmt_ratio(r["gpu_vs_torch"]),
                fmt_ratio(r.get("gpu_vs_torch_graph")),
                fmt_ratio(r.get("gpu_vs_snapml")),
                fmt_ratio(r["cpu_vs_sklearn"]),
                fmt_ratio(r["cpu_vs_torch"]),
                fmt_float(r["gpu_score_minus_sklearn"]),
                fmt_float(r["cpu_score_minus_sklearn"]),
                ", ".join(met) or "-",
                ", ".join(missed) or "-",
            ]
        )
    lines.append(
        markdown_table(
            [
                "case",
                "GPU vs sklearn",
                "GPU vs torch",
                "GPU vs torch-graph",
                "GPU vs Snap ML",
                "CPU vs sklearn",
                "CPU vs torch (CPU)",
                "GPU score - sklearn",
                "CPU score - sklearn",
                "targets met",
                "targets missed",
            ],
            rows,
        )
    )
    lines += ["", "## Measurements", ""]
    rows = []
    for case in payload["cases"]:
        if case.get("skipped"):
            rows.append([case["name"], "all", "skipped: " + case["skipped"]] + ["-"] * 8)
            continue
        for name, rec in case["results"].items():
            label = name if name != "torch" else f"torch ({rec.get('device', '?')})"
            if status_of(rec) != "ok":
                reason = status_of(rec) + (f": {rec['reason']}" if rec.get("reason") else "")
                rows.append([case["name"], label, reason] + ["-"] * 8)
                continue
            frac = rec.get("fraction_of_bandwidth")
            rows.append(
                [
                    case["name"],
                    label,
                    fmt_seconds(rec["seconds_per_epoch"]),
                    fmt_rate(rec.get("samples_per_s")),
                    fmt_float(rec.get("effective_gb_s"), 2),
                    "-" if frac is None else f"{100 * frac:.1f}%",
                    fmt_seconds(rec.get("bandwidth_bound_s_per_epoch")),
                    fmt_float(rec.get("overhead_us_per_step"), 2),
                    fmt_float(rec.get("score")),
                    fmt_float(rec.get("log_loss")),
                    tuned_text(rec),
                ]
            )
    lines.append(
        markdown_table(
            [
                "case",
                "competitor",
                "s/epoch",
                "samples/s",
                "effective GB/s",
                "% of copy bw",
                "bw-bound s/epoch",
                "overhead us/step",
                "accuracy / R^2",
                "held-out log loss",
                "eta0 (Snap ML: alpha)",
            ],
            rows,
        )
    )
    lines += time_to_target_markdown(payload["cases"])
    lines += [
        "",
        "## Notes",
        "",
        "- Case names are `<task>-n<train rows>-d<features>-b<batch size>`; the held-out "
        "split has min(max(n/10, 5000), 200000) rows. X is float32 standard normal; labels "
        "come from a random linear model plus noise (10 classes: argmax of X W + noise).",
        "- s/epoch is the time of one `fit` of the given epochs divided by the epochs; it "
        "includes input validation and one host synchronisation per epoch. Effective GB/s is "
        "the bytes of X per epoch over s/epoch; the bandwidth bound is the bytes of X per "
        "epoch over the measured copy bandwidth of the device the competitor ran on.",
        "- scikit-learn takes one update per sample, sk_gpusgd and PyTorch one batch-mean "
        "update per batch: these are not the same algorithm and do not share a best eta0, so "
        "each runs at its own (the eta0 column). "
        "scikit-learn has no batch size: it is measured once per data set and shown against "
        "every batch size. Multiclass is one-vs-rest everywhere (PyTorch: one output per "
        "class with the binary loss on +1/-1 or 1/0 targets).",
        "- PyTorch: nn.Linear + torch.optim.SGD (weight_decay=alpha on the weights only), "
        "data already on the device, a fresh torch.randperm each epoch; it runs on CUDA when "
        "torch.cuda.is_available(), else on the CPU (labelled in the competitor column).",
    ]
    lines.append(
        "- IBM Snap ML: `snapml.LogisticRegression` (dual coordinate descent, an intercept, "
        "tol=0, `use_gpu=True, device_ids=[0]` where a GPU is used), regularizer = alpha x "
        "rows at its own best alpha of " + str(list(SNAPML_ALPHA_GRID)) + "; it takes host "
        "NumPy data, so its fit includes the copy to the GPU. Only with `--loss log_loss`."
    )
    if payload.get("cuml_status"):
        lines.append(f"- cuML: {payload['cuml_status']}.")
    return "\n".join(lines) + "\n"


def tuned_text(rec: dict) -> str:
    if rec.get("eta0") is not None:
        return f"{rec['eta0']:g}"
    if rec.get("alpha") is not None:
        return f"alpha {rec['alpha']:g}"
    return "-"


def time_to_target_markdown(cases: list[dict]) -> list[str]:
    """The time-to-target section: per case the target and each competitor's time to it."""
    lines = []
    for case in cases:
        found = case.get("time_to_target")
        if not found:
            continue
        if not lines:
            lines += [
                "",
                "## Time to a target held-out log loss",
                "",
                "Fresh fits of 1, 2, ... epochs, each timed; a competitor's time is that of its "
                "shortest fit whose held-out log loss is at most the target. The ratio is the "
                "competitor's time over sk_gpusgd GPU's.",
            ]
        lines += [
            "",
            f"{case['name']}: target {found['target_log_loss']:.4f} ({found['rule']})",
            "",
        ]
        rows = []
        for name, seconds in found["seconds"].items():
            curve = case["results"][name].get("log_loss_curve", [])
            rows.append(
                [
                    name,
                    "not reached" if seconds is None else fmt_seconds(seconds),
                    "-" if found["epochs"][name] is None else str(found["epochs"][name]),
                    fmt_float(
                        min(
                            (p["log_loss"] for p in curve if p["log_loss"] is not None),
                            default=None,
                        )
                    ),
                    fmt_ratio(case["ratios"].get(f"gpu_vs_{name}_to_target")),
                ]
            )
        lines.append(
            markdown_table(
                ["competitor", "time to target", "epochs", "best log loss", "vs sk_gpusgd GPU"],
                rows,
            )
        )
    return lines


def summarise_targets(cases: list[dict]) -> dict:
    summary = {}
    for case in cases:
        for key, value in case.get("targets", {}).items():
            entry = summary.setdefault(key, {"met": 0, "measured": 0, "cases_missed": []})
            entry["measured"] += 1
            entry["met"] += int(value)
            if not value:
                entry["cases_missed"].append(case["name"])
    return summary


# -------------------------------------------------------------------- main
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CPU run, under a minute")
    parser.add_argument(
        "--cases",
        help="comma-separated filters on case names: a task, 'headline', a substring or a "
        "glob (e.g. 'multiclass-n2000000-*')",
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated rows or ROWSxFEATURES (e.g. '2000000x256,100000'); bare rows "
        "combine with every --dims",
    )
    parser.add_argument("--dims", type=int, nargs="+", help="features (default 128 256 1024)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="default 256 1024 8192")
    parser.add_argument("--tasks", nargs="+", choices=TASKS)
    parser.add_argument("--epochs", type=int, help="epochs timed (default 3; quick 3)")
    parser.add_argument(
        "--repeats", type=int, help="timed fits per competitor, best kept (default 1; quick 2)"
    )
    parser.add_argument("--loss", choices=("hinge", "log_loss"), default="hinge")
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument(
        "--eta0",
        type=float,
        default=0.01,
        help="the shared constant learning rate with --no-tune (default 0.01)",
    )
    parser.add_argument(
        "--no-tune",
        dest="tune",
        action="store_false",
        help="run every competitor at --eta0 instead of its own best eta0 of the grid",
    )
    parser.add_argument(
        "--no-time-to-target",
        dest="time_to_target",
        action="store_false",
        help="with --loss log_loss, skip the fits of fewer epochs that time each competitor "
        "to the target held-out log loss",
    )
    parser.add_argument(
        "--target-log-loss",
        type=float,
        help="the target held-out log loss (default: the best final one of any competitor "
        f"+ {TARGET_SLACK:.0%})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--competitors",
        nargs="+",
        choices=COMPETITORS,
        help="default: all (the GPU ones only where a GPU is present; quick: CPU only)",
    )
    parser.add_argument(
        "--cpu-max-elements",
        type=float,
        default=2.1e9,
        help="skip CPU competitors when n*d exceeds this (default 2.1e9)",
    )
    parser.add_argument("--no-gpu", action="store_true", help="ignore any GPU")
    parser.add_argument(
        "--torch-device",
        choices=("auto", "cpu"),
        default="auto",
        help="'auto': CUDA when torch.cuda.is_available() (not with --quick / --no-gpu)",
    )
    parser.add_argument("--output-prefix", default="bench", help="result file name prefix")
    parser.add_argument(
        "--fail-on-error",
        action="store_true",
        help="exit with status 1 when a competitor raised (it is recorded and the run goes on)",
    )
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = 3
    if args.repeats is None:
        args.repeats = 2 if args.quick else 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    cupy = None if (args.quick or args.no_gpu) else cupy_or_none()
    competitors = list(args.competitors or COMPETITORS)
    if cupy is None:  # cuML stays, to record whether it is installed
        competitors = [c for c in competitors if c != "sk_gpusgd-gpu"]
    info = device_info(use_gpu=cupy is not None)
    date = today()
    print(f"device: {info['name']}", flush=True)

    bandwidth = {"cpu_gb_s": cpu_copy_bandwidth(128 * 2**20 if args.quick else 1024 * 2**20) / 1e9}
    if cupy is not None:
        bandwidth["gpu_gb_s"] = gpu_copy_bandwidth(cupy) / 1e9
    print("copy bandwidth GB/s:", {k: round(v, 1) for k, v in bandwidth.items()}, flush=True)

    versions_found = versions()

    def save(case_records: list[dict], cuml_status, finished: bool) -> None:
        payload = {
            "benchmark": "bench",
            "date": date,
            "timestamp": now_iso(),
            "command": " ".join(["python", "benchmarks/bench.py", *(argv or sys.argv[1:])]),
            "device": info,
            "versions": versions_found,
            "settings": {
                "quick": args.quick,
                "epochs": args.epochs,
                "repeats": args.repeats,
                "loss": args.loss,
                "alpha": args.alpha,
                "eta0": args.eta0,
                "regression_eta0": "min(eta0, 0.5 / d)",
                "tune": args.tune,
                "eta0_grid": list(ETA0_GRID),
                "snapml_alpha_grid": list(SNAPML_ALPHA_GRID),
                "tune_rows": TUNE_ROWS,
                "time_to_target": args.time_to_target,
                "target_log_loss": args.target_log_loss,
                "seed": args.seed,
                "competitors": competitors,
                "cpu_max_elements": args.cpu_max_elements,
            },
            "bandwidth": bandwidth,
            "target_text": TARGET_TEXT,
            "cases": case_records,
            "target_summary": summarise_targets(case_records),
            "cuml_status": cuml_status,
            "finished": finished,
            "total_seconds": time.perf_counter() - started,
        }
        markdown = markdown_report(payload)
        slug = device_slug(info)
        if finished:
            save_report(args.output_prefix, slug, date, args.quick, payload, markdown, started)
        else:  # quietly, after every competitor
            json_path, md_path = result_paths(args.output_prefix, slug, date, args.quick)
            write_json(json_path, payload)
            write_text(md_path, markdown)

    ram = info["cpu"]["ram_bytes"]
    gpu_memory = info["gpu"]["memory_bytes"] if info.get("gpu") else None
    cases = build_cases(args)
    case_records = []
    dataset: Dataset | None = None
    sklearn_cache: dict = {}
    cuml_status = None
    for case in cases:
        hp = hyper_parameters(case.task, case.d, args)
        total_bytes = (case.n + n_test_rows(case.n)) * case.d * 4
        x_bytes = case.n * case.d * 4
        record = {
            "name": case.name,
            "task": case.task,
            "n_train": case.n,
            "n_test": n_test_rows(case.n),
            "d": case.d,
            "n_classes": N_CLASSES
            if case.task == "multiclass"
            else (2 if case.task == "binary" else None),
            "batch_size": case.batch_size,
            "headline": case.headline,
            "epochs": args.epochs,
            "x_bytes_per_epoch": x_bytes,
            **hp,
        }
        limits = [("RAM", ram)] + ([("GPU memory", gpu_memory)] if gpu_memory else [])
        too_big = [lbl for lbl, cap in limits if cap and total_bytes > MEMORY_FRACTION * cap]
        if too_big:
            record["skipped"] = (
                f"X ({fmt_bytes(total_bytes)}) exceeds {MEMORY_FRACTION:.0%} of "
                + ", ".join(too_big)
            )
            print(f"[skip] {case.name}: {record['skipped']}", flush=True)
            case_records.append(record)
            continue
        if dataset is None or (dataset.task, dataset.n, dataset.d) != case.data_key:
            if dataset is not None:
                dataset.release(cupy)
            dataset = None
            gc.collect()
            seconds, dataset = timed(lambda c=case: make_dataset(c.task, c.n, c.d, args.seed))
            print(f"data {case.task} {case.n}x{case.d}: {seconds:.1f} s", flush=True)
        cpu_allowed = case.n * case.d <= args.cpu_max_elements
        results = {}
        runners = {
            "sk_gpusgd-gpu": lambda ds, h, a, case=case: run_sk_gpusgd(
                ds, case, h, a, "cuda", cupy
            ),
            "sk_gpusgd-cpu": lambda ds, h, a, case=case: run_sk_gpusgd(ds, case, h, a, "cpu"),
            "sklearn": lambda ds, h, a, case=case: run_sklearn(ds, case, h, a),
            "torch": lambda ds, h, a, case=case: run_torch(ds, case, h, a, cupy),
            "torch-graph": lambda ds, h, a, case=case: run_torch_graph(ds, case, h, a, cupy),
            "snapml": lambda ds, h, a, case=case: run_snapml(ds, case, h, a, cupy),
            "cuml": lambda ds, h, a, case=case: run_cuml(ds, case, h, a, cupy),
        }
        for name in competitors:
            t0 = time.perf_counter()
            try:
                skip = None
                if name in ("sk_gpusgd-cpu", "sklearn") and not cpu_allowed:
                    skip = "n*d > --cpu-max-elements"
                if name == "torch" and not cpu_allowed:
                    torch = torch_or_none()
                    if torch is not None and not torch_on_cuda(torch, args):
                        skip = "CPU torch, n*d > --cpu-max-elements"
                if skip is not None:
                    rec = {"status": "skipped", "reason": skip}
                elif name == "sklearn" and case.data_key in sklearn_cache:
                    rec = dict(sklearn_cache[case.data_key], reused=True)
                else:
                    run = runners[name]
                    own_hp, grid_scores = hp, None
                    key, grid = (
                        ("alpha", SNAPML_ALPHA_GRID) if name == "snapml" else ("eta0", ETA0_GRID)
                    )
                    if args.tune and not (name == "snapml" and not measures_log_loss(case, hp)):
                        best, grid_scores = tuned_eta0(run, dataset, case, hp, args, key, grid)
                        own_hp = dict(hp, **{key: best})
                    rec = dict(run(dataset, own_hp, args))
                    if rec.get("status", "ok") == "ok" and name == "snapml":
                        rec.update(alpha=own_hp["alpha"], alpha_grid_scores=grid_scores)
                    elif rec.get("status", "ok") == "ok":
                        rec.update(eta0=own_hp["eta0"], eta0_grid_scores=grid_scores)
                    if name == "sklearn":
                        sklearn_cache[case.data_key] = rec
                    if name == "cuml":
                        cuml_status = rec.get("status", "measured")
            except Exception as exc:  # noqa: BLE001 - one failing competitor must not stop the run
                rec = {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}
                traceback.print_exc()
            rec = dict(rec)
            rec.setdefault("status", "ok")
            if rec["status"] == "ok":
                on_gpu = rec.get("device", "").startswith("cuda")
                bw = bandwidth.get("gpu_gb_s") if on_gpu else bandwidth["cpu_gb_s"]
                add_throughput(rec, case, x_bytes, bw * 1e9 if bw else None)
            results[name] = rec
            spe = rec.get("seconds_per_epoch")
            print(
                f"  {case.name:<36} {name:<14} "
                + (
                    f"{fmt_seconds(spe):>10}/epoch  score {fmt_float(rec.get('score'))}"
                    + (
                        f"  log loss {fmt_float(rec['log_loss'])}"
                        if rec.get("log_loss") is not None
                        else ""
                    )
                    if spe is not None
                    else rec["status"] + (f" ({rec.get('reason')})" if rec.get("reason") else "")
                )
                + f"  [{time.perf_counter() - t0:.1f} s]",
                flush=True,
            )
            # after every competitor, the results so far (a run cut short keeps them)
            ratios, targets = analyse(case, results)
            to_target = time_to_target(results, args.target_log_loss)
            if to_target is not None:
                ratios.update(to_target.pop("ratios"))
            record.update(results=results, ratios=ratios, targets=targets)
            record["time_to_target"] = to_target
            save(case_records + [record], cuml_status, finished=False)
        if "results" not in record:  # no competitor selected
            record.update(results=results, ratios={}, targets={}, time_to_target=None)
        case_records.append(record)
    if dataset is not None:
        dataset.release(cupy)
    save(case_records, cuml_status, finished=True)
    errors = [
        f"{case['name']} {name}: {rec.get('reason')}"
        for case in case_records
        for name, rec in case.get("results", {}).items()
        if rec.get("status") == "error"
    ]
    if errors and args.fail_on_error:
        print("competitors that raised:", *errors, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def time_to_target(results: dict, target: float | None) -> dict | None:
    """Each competitor's seconds to a held-out log loss at most ``target``, and the ratios.

    The default target is the best final held-out log loss of any competitor plus
    ``TARGET_SLACK`` of it. A competitor's time is that of its shortest fit (fresh fits
    of 1, 2, ... epochs) whose log loss is at most the target; None when none is.
    """
    curves = {
        name: rec["log_loss_curve"]
        for name, rec in results.items()
        if rec.get("status", "ok") == "ok" and rec.get("log_loss_curve")
    }
    finals = [c[-1]["log_loss"] for c in curves.values() if c[-1]["log_loss"] is not None]
    if not finals:
        return None
    rule = "--target-log-loss"
    if target is None:
        target = min(finals) * (1.0 + TARGET_SLACK)
        rule = f"best final held-out log loss of any competitor + {TARGET_SLACK:.0%}"
    seconds, epochs = {}, {}
    for name, curve in curves.items():
        reached = [p for p in curve if p["log_loss"] is not None and p["log_loss"] <= target]
        seconds[name] = min((p["seconds"] for p in reached), default=None)
        epochs[name] = min((p["epochs"] for p in reached), default=None)
    gpu = seconds.get("sk_gpusgd-gpu")
    ratios = {
        f"gpu_vs_{name}_to_target": ratio(value, gpu)
        for name, value in seconds.items()
        if name != "sk_gpusgd-gpu"
    }
    return {
        "target_log_loss": target,
        "rule": rule,
        "seconds": seconds,
        "epochs": epochs,
        "ratios": ratios,
    }


if __name__ == "__main__":
    raise SystemExit(main())
