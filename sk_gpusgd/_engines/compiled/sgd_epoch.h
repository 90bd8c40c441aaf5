// One epoch of minibatch SGD on the CPU, for one floating type.
//
// Included twice by sgd_cpu.c, with REAL = double / float and FN(name) giving the
// type's names. The step is the NumPy engine's (sk_gpusgd/_engines/reference.py, sparse.py),
// operation for operation; arithmetic is carried in double, storage is REAL.

static double FN(dot_strided_1)(const REAL* x, const double* w, int64_t d) {
    // four partial sums: independent chains the compiler can pipeline
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int64_t j = 0;
    for (; j + 4 <= d; j += 4) {
        s0 += (double)x[j] * w[j];
        s1 += (double)x[j + 1] * w[j + 1];
        s2 += (double)x[j + 2] * w[j + 2];
        s3 += (double)x[j + 3] * w[j + 3];
    }
    for (; j < d; ++j) s0 += (double)x[j] * w[j];
    return (s0 + s1) + (s2 + s3);
}

static double FN(squared_norm_dense)(const REAL* x, int64_t d) {
    double total = 0.0;
    for (int64_t j = 0; j < d; ++j) total += (double)x[j] * (double)x[j];
    return total;
}

// Loss value (added to the epoch's unweighted total) and weighted derivative of one row.
static void FN(row_derivative)(const SgdConfig* cfg, const SgdArrays* a, int64_t row,
                               const REAL* target, const double* decision, double* derivative,
                               double squared_norm) {
    const int64_t K = cfg->n_outputs;
    const REAL* positive = (const REAL*)a->positive_weight;
    const REAL* negative = (const REAL*)a->negative_weight;
    const REAL* sample_weight = (const REAL*)a->sample_weight;
    const REAL* mask = (const REAL*)a->mask;
    for (int64_t k = 0; k < K; ++k) {
        const double y = (double)target[k];
        double value, slope;
        if (cfg->loss == LOSS_LOG && cfg->schedule < SCHEDULE_PA1) {
            // the row's loss value is not needed, only the epoch's total
            slope = log_loss_accumulated(y, decision[k], a->loss_total + k, a->loss_product + k);
        } else {
            loss_value_and_derivative(cfg->loss, cfg->loss_parameter, decision[k], y, &value, &slope);
            a->loss_total[k] += value;
        }
        if (cfg->schedule >= SCHEDULE_PA1) {
            slope = passive_aggressive_derivative(cfg, value, decision[k], y, squared_norm);
        } else if (!cfg->bounded) {
            slope = clip_derivative(slope);
        }
        double weight = 1.0;
        int weighted = 0;
        if (positive) {
            weight = y > 0 ? (double)positive[k] : (double)negative[k];
            weighted = 1;
        }
        if (sample_weight) {
            weight = weighted ? weight * (double)sample_weight[row] : (double)sample_weight[row];
            weighted = 1;
        }
        if (mask) {
            weight = weighted ? weight * (double)mask[k] : (double)mask[k];
            weighted = 1;
        }
        derivative[k] = weighted ? slope * weight : slope;
    }
}

// The penalty of the model's weights before the step, once per row of the batch.
static void FN(add_penalty_dense)(const SgdConfig* cfg, const SgdArrays* a, const double* model,
                                  int64_t rows) {
    const int64_t d = cfg->n_features, K = cfg->n_outputs;
    for (int64_t k = 0; k < K; ++k) {
        double squares = 0.0, absolute = 0.0;
        for (int64_t j = 0; j < d; ++j) {
            const double w = model[j * K + k];
            squares += w * w;
            absolute += fabs(w);
        }
        a->penalty_total[k] += (double)rows * (0.5 * cfg->l2 * squares + cfg->l1 * absolute);
    }
}

static void FN(step_intercept)(const SgdConfig* cfg, REAL* intercept, const double* column_sum,
                               const double* eta) {
    if (!cfg->fit_intercept) return;
    for (int64_t k = 0; k < cfg->n_outputs; ++k)
        intercept[k] = (REAL)((double)intercept[k] - (eta[k] * cfg->intercept_scale) * column_sum[k]);
}

// Cumulative L1 (Tsuruoka et al. 2009): toward zero by what is pending, never across it.
static double FN(l1_truncate_value)(double w, REAL* applied, double total) {
    const double q = (double)*applied;
    double truncated = w;
    if (w > 0) {
        truncated = w - (total + q);
        if (truncated < 0) truncated = 0.0;
    } else if (w < 0) {
        truncated = w + (total - q);
        if (truncated > 0) truncated = 0.0;
    }
    *applied = (REAL)(q + (truncated - w));
    return truncated;
}

static void FN(l1_truncate)(REAL* w, REAL* applied, double total) {
    *w = (REAL)FN(l1_truncate_value)((double)*w, applied, total);
}

// Running mean of the weights, per sample, once average_start samples were seen.
static void FN(update_average)(const SgdConfig* cfg, const SgdArrays* a, int64_t rows,
                               const REAL* coef, const REAL* intercept, int64_t size) {
    const int64_t seen = a->counters[COUNTER_SAMPLES];
    if (cfg->average_start <= 0 || seen < cfg->average_start) return;
    int64_t counted = seen - cfg->average_start + 1;
    if (counted > rows) counted = rows;
    a->counters[COUNTER_AVERAGED] += counted;
    // uniform (decay 0) or Shamir and Zhang's polynomial decay (_core/steps.py, average_rate)
    const double averaged = (double)a->counters[COUNTER_AVERAGED], eta = cfg->average_decay;
    double rate = (double)counted / averaged;
    if (eta != 0.0) {
        rate = (eta + 1.0) * (double)counted / (averaged + eta * (double)counted);
        if (rate > 1.0) rate = 1.0;
    }
    REAL* average = (REAL*)a->average_coef;
    REAL* average_intercept = (REAL*)a->average_intercept;
    for (int64_t i = 0; i < size; ++i)
        average[i] = (REAL)((double)average[i] + rate * ((double)coef[i] - (double)average[i]));
    for (int64_t k = 0; k < cfg->n_outputs; ++k)
        average_intercept[k] = (REAL)((double)average_intercept[k] +
                                      rate * ((double)intercept[k] - (double)average_intercept[k]));
}

static void FN(fold_scale)(REAL* coef, int64_t d, int64_t K, double* scale) {
    for (int64_t j = 0; j < d; ++j)
        for (int64_t k = 0; k < K; ++k) coef[j * K + k] = (REAL)((double)coef[j * K + k] * scale[k]);
    for (int64_t k = 0; k < K; ++k) scale[k] = 1.0;
}

static void FN(lazy_norms_reset)(const REAL* coef, int64_t d, int64_t K, double* squares,
                                 double* absolute) {
    for (int64_t k = 0; k < K; ++k) squares[k] = absolute[k] = 0.0;
    for (int64_t j = 0; j < d; ++j)
        for (int64_t k = 0; k < K; ++k) {
            const double w = (double)coef[j * K + k];
            squares[k] += w * w;
            absolute[k] += fabs(w);
        }
}

// x @ model + intercept for several outputs; restrict: the compiler may vectorise over k.
static void FN(decision_row)(const REAL* restrict x, const double* restrict model,
                             const double* restrict intercept, double* restrict out, int64_t d,
                             int64_t K) {
    for (int64_t k = 0; k < K; ++k) out[k] = intercept[k];
    for (int64_t j = 0; j < d; ++j) {
        const double xj = (double)x[j];
        const double* restrict w = model + j * K;
        for (int64_t k = 0; k < K; ++k) out[k] += xj * w[k];
    }
}

// grad += x g^T for several outputs.
static void FN(gradient_row)(const REAL* restrict x, const double* restrict g,
                             double* restrict grad, int64_t d, int64_t K) {
    for (int64_t j = 0; j < d; ++j) {
        const double xj = (double)x[j];
        double* restrict total = grad + j * K;
        for (int64_t k = 0; k < K; ++k) total[k] += xj * g[k];
    }
}

// Ask for a shuffled dense row's cache lines a few rows before they are read (X larger
// than the caches otherwise costs a memory latency per row).
static void FN(prefetch_dense_row)(const REAL* x, int64_t d) {
    for (int64_t j = 0; j < d; j += 64 / (int64_t)sizeof(REAL)) __builtin_prefetch(x + j);
}

static int FN(epoch_dense)(const SgdConfig* cfg, const SgdArrays* a) {
    const int64_t n = cfg->n_samples, d = cfg->n_features, K = cfg->n_outputs;
    const int64_t B = cfg->batch_size;
    const REAL* X = (const REAL*)a->X_data;
    const REAL* targets = (const REAL*)a->targets;
    const REAL* mean = (const REAL*)a->mean;
    const REAL* inv_scale = (const REAL*)a->inv_scale;
    REAL* coef = (REAL*)a->coef;
    REAL* intercept = (REAL*)a->intercept;
    REAL* applied = (REAL*)a->l1_applied;
    double* model = malloc(sizeof(double) * (size_t)(d * K));
    double* grad = malloc(sizeof(double) * (size_t)(d * K));
    // one row at a time: its decision and derivative
    double* decision = malloc(sizeof(double) * (size_t)K);
    double* derivative = malloc(sizeof(double) * (size_t)K);
    double* column_sum = malloc(sizeof(double) * (size_t)K);
    double* eta = malloc(sizeof(double) * (size_t)K);
    double* model_intercept = malloc(sizeof(double) * (size_t)K);
    double* last_derivative = malloc(sizeof(double) * (size_t)K);
    if (!model || !grad || !decision || !derivative || !column_sum || !eta || !model_intercept ||
        !last_derivative) {
        free(model); free(grad); free(decision); free(derivative); free(column_sum); free(eta);
        free(model_intercept); free(last_derivative);
        return 1;
    }
    const int shrinks = cfg->l2 != 0.0 || cfg->decay != 0.0;
    const int passive_aggressive = cfg->schedule >= SCHEDULE_PA1;
    for (int64_t start = 0; start < n; start += B) {
        const int64_t stop = start + B < n ? start + B : n;
        const int64_t rows = stop - start;
        // the model's weights: v * inv_scale and c - mean @ coef when preconditioned
        for (int64_t k = 0; k < K; ++k) model_intercept[k] = (double)intercept[k];
        for (int64_t j = 0; j < d; ++j) {
            const double s = inv_scale ? (double)inv_scale[j] : 1.0;
            for (int64_t k = 0; k < K; ++k) {
                const double w = (double)coef[j * K + k] * s;
                model[j * K + k] = w;
                if (mean) model_intercept[k] -= (double)mean[j] * w;
            }
        }
        if (cfg->with_penalty) FN(add_penalty_dense)(cfg, a, model, rows);
        // One pass over the batch: each row's decision, derivative and share of the gradient
        // (the weights do not move inside a batch, so the row's gradient can follow at once).
        const double inv_rows = 1.0 / (double)rows;
        const REAL* last_x = X;
        for (int64_t k = 0; k < K; ++k) column_sum[k] = 0.0;
        memset(grad, 0, sizeof(double) * (size_t)(d * K));
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row = a->order ? a->order[start + r] : start + r;
            const REAL* x = X + row * d;
            if (a->order && start + r + PREFETCH_ROWS < n)
                FN(prefetch_dense_row)(X + a->order[start + r + PREFETCH_ROWS] * d, d);
            double* out = decision;
            if (K == 1) {
                out[0] = FN(dot_strided_1)(x, model, d) + model_intercept[0];
            } else {
                FN(decision_row)(x, model, model_intercept, out, d, K);
            }
            const double squared_norm = passive_aggressive ? FN(squared_norm_dense)(x, d) : 0.0;
            double* g = derivative;
            FN(row_derivative)(cfg, a, row, targets + row * K, out, g, squared_norm);
            // the batch mean, folded into the derivative as in the NumPy step
            for (int64_t k = 0; k < K; ++k) {
                g[k] *= inv_rows;
                column_sum[k] += g[k];
            }
            if (r + 1 == rows) {
                last_x = x;
                for (int64_t k = 0; k < K; ++k) last_derivative[k] = g[k];
            }
            if (K == 1) {
                const double g0 = g[0];
                // a row whose loss is flat (hinge beyond the margin) adds nothing
                if (g0 != 0.0)
                    for (int64_t j = 0; j < d; ++j) grad[j] += (double)x[j] * g0;
            } else {
                FN(gradient_row)(x, g, grad, d, K);
            }
        }
        step_rates(cfg, a, rows, eta);
        // where the shrink is clamped, the last row's share alone (clamp_earlier_rows)
        const int within = shrinks && rows > 1;
        for (int64_t j = 0; j < d; ++j) {
            const double s = inv_scale ? (double)inv_scale[j] : 1.0;
            const double m = mean ? (double)mean[j] : 0.0;
            const double l2 = inv_scale ? cfg->l2 * s * s : cfg->l2;
            for (int64_t k = 0; k < K; ++k) {
                double g = grad[j * K + k];
                if (inv_scale) g = (g - m * column_sum[k]) * s;
                if (within && shrink_factor(eta[k], l2 + cfg->decay) == 0.0) {
                    const double share = (double)last_x[j] * last_derivative[k];
                    g = inv_scale ? (share - m * last_derivative[k]) * s : share;
                }
                double w = (double)coef[j * K + k];
                if (shrinks) w *= shrink_factor(eta[k], l2 + cfg->decay);
                coef[j * K + k] = (REAL)(w - eta[k] * g);
            }
        }
        FN(step_intercept)(cfg, intercept, column_sum, eta);
        if (cfg->l1 != 0.0) {
            for (int64_t k = 0; k < K; ++k) a->l1_total[k] += eta[k] * cfg->l1;
            for (int64_t j = 0; j < d; ++j) {
                const double s = inv_scale ? (double)inv_scale[j] : 1.0;
                for (int64_t k = 0; k < K; ++k)
                    FN(l1_truncate)(coef + j * K + k, applied + j * K + k, a->l1_total[k] * s);
            }
        }
        a->counters[COUNTER_STEPS] += 1;
        a->counters[COUNTER_SAMPLES] += rows;
        FN(update_average)(cfg, a, rows, coef, intercept, d * K);
    }
    free(model); free(grad); free(decision); free(derivative); free(column_sum); free(eta);
    free(model_intercept); free(last_derivative);
    return 0;
}

// A sparse step's end: the clock, and once averaging has begun every row's true weight
// (the scale folded in, pending L1 applied) into the running average.
static void FN(sparse_step_done)(const SgdConfig* cfg, const SgdArrays* a, int64_t rows,
                                 double* scale, double* squares, double* absolute) {
    const int64_t d = cfg->n_features, K = cfg->n_outputs;
    REAL* coef = (REAL*)a->coef;
    REAL* applied = (REAL*)a->l1_applied;
    a->counters[COUNTER_STEPS] += 1;
    a->counters[COUNTER_SAMPLES] += rows;
    if (cfg->average_start <= 0 || a->counters[COUNTER_SAMPLES] < cfg->average_start) return;
    FN(fold_scale)(coef, d, K, scale);
    if (cfg->l1 != 0.0)
        for (int64_t j = 0; j < d; ++j)
            for (int64_t k = 0; k < K; ++k)
                FN(l1_truncate)(coef + j * K + k, applied + j * K + k, a->l1_total[k]);
    if (cfg->with_penalty) FN(lazy_norms_reset)(coef, d, K, squares, absolute);
    FN(update_average)(cfg, a, rows, coef, (const REAL*)a->intercept, d * K);
}

// Ask for the cache lines of a row's stored values [first, last) before they are read.
static void FN(prefetch_span)(const REAL* data, const int32_t* indices, int64_t first,
                              int64_t last) {
    for (int64_t p = first; p < last; p += 64 / sizeof(REAL)) __builtin_prefetch(data + p);
    for (int64_t p = first; p < last; p += 16) __builtin_prefetch(indices + p);
}

// The same for a shuffled row, a few rows before it is read.
static void FN(prefetch_row)(const REAL* data, const int32_t* indices, const int64_t* indptr,
                             int64_t row) {
    FN(prefetch_span)(data, indices, indptr[row], indptr[row + 1]);
}

// Sparse epoch without L1: every weight's pending change is the shared scale, so a step
// updates the stored weights row by row, in place (scikit-learn's own scheme):
// stored' = stored - eta * grad / scale', the same value as the slot-table step up to rounding.
static int FN(epoch_sparse_direct)(const SgdConfig* cfg, const SgdArrays* a) {
    const int64_t n = cfg->n_samples, d = cfg->n_features, K = cfg->n_outputs;
    const int64_t B = cfg->batch_size;
    const int64_t batch_rows = B < n ? B : n;
    const REAL* data = (const REAL*)a->X_data;
    const int32_t* indices = (const int32_t*)a->X_indices;
    const int64_t* indptr = (const int64_t*)a->X_indptr;
    const REAL* targets = (const REAL*)a->targets;
    REAL* coef = (REAL*)a->coef;
    REAL* intercept = (REAL*)a->intercept;
    double* decision = malloc(sizeof(double) * (size_t)(batch_rows * K));
    double* derivative = malloc(sizeof(double) * (size_t)(batch_rows * K));
    double* work = malloc(sizeof(double) * (size_t)(6 * K));
    if (!decision || !derivative || !work) {
        free(decision); free(derivative); free(work);
        return 1;
    }
    double *column_sum = work, *eta = work + K, *scale = work + 2 * K, *squares = work + 3 * K;
    double *absolute = work + 4 * K, *step = work + 5 * K;
    for (int64_t k = 0; k < K; ++k) scale[k] = 1.0;
    const int with_penalty = (int)cfg->with_penalty;
    const int passive_aggressive = cfg->schedule >= SCHEDULE_PA1;
    if (with_penalty) FN(lazy_norms_reset)(coef, d, K, squares, absolute);
    const double decay = cfg->decay + cfg->l2;
    for (int64_t start = 0; start < n; start += B) {
        const int64_t stop = start + B < n ? start + B : n;
        const int64_t rows = stop - start;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row = a->order ? a->order[start + r] : start + r;
            if (a->order && start + r + 2 * PREFETCH_ROWS < n) {
                // two stages: a later row's pointers and target now, its values next
                const int64_t later = a->order[start + r + 2 * PREFETCH_ROWS];
                __builtin_prefetch(indptr + later);
                __builtin_prefetch(targets + later * K);
            }
            if (a->order && start + r + PREFETCH_ROWS < n)
                FN(prefetch_row)(data, indices, indptr, a->order[start + r + PREFETCH_ROWS]);
            double* out = decision + r * K;
            double squared_norm = 0.0;
            if (passive_aggressive)
                squared_norm = FN(squared_norm_dense)(data + indptr[row], indptr[row + 1] - indptr[row]);
            if (K == 1) {
                // two partial sums: half the dependency chain of one
                double even = 0.0, odd = 0.0;
                const int64_t last = indptr[row + 1];
                int64_t p = indptr[row];
                for (; p + 1 < last; p += 2) {
                    even += (double)data[p] * (double)coef[indices[p]];
                    odd += (double)data[p + 1] * (double)coef[indices[p + 1]];
                }
                if (p < last) even += (double)data[p] * (double)coef[indices[p]];
                out[0] = scale[0] * (even + odd) + (double)intercept[0];
            } else {
                for (int64_t k = 0; k < K; ++k) out[k] = 0.0;
                for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                    const double x = (double)data[p];
                    const REAL* w = coef + (int64_t)indices[p] * K;
                    for (int64_t k = 0; k < K; ++k) out[k] += x * (double)w[k];
                }
                for (int64_t k = 0; k < K; ++k) out[k] = scale[k] * out[k] + (double)intercept[k];
            }
            FN(row_derivative)(cfg, a, row, targets + row * K, out, derivative + r * K, squared_norm);
        }
        if (with_penalty) add_lazy_penalty(cfg, a, rows, scale, squares, absolute);
        batch_mean(derivative, rows, K, column_sum);
        step_rates(cfg, a, rows, eta);
        clamp_earlier_rows(derivative, rows, K, eta, decay);
        int renormalise = 0;
        for (int64_t k = 0; k < K; ++k) {
            scale[k] *= shrink_factor(eta[k], decay);
            renormalise |= scale[k] < MIN_WEIGHT_SCALE;
        }
        if (renormalise) {
            // also where the shrink was clamped to zero: every weight becomes 0, as in scikit-learn
            FN(fold_scale)(coef, d, K, scale);
            if (with_penalty) FN(lazy_norms_reset)(coef, d, K, squares, absolute);
        }
        for (int64_t k = 0; k < K; ++k) step[k] = eta[k] / scale[k];
        // without L1 the penalty needs only the squared norm, kept up to date in the same pass
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row = a->order ? a->order[start + r] : start + r;
            const double* g = derivative + r * K;
            if (K == 1) {
                // a row whose loss is flat (hinge beyond the margin) moves nothing
                if (g[0] == 0.0) continue;
                const double factor = step[0] * g[0];
                double change = 0.0;
                for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                    REAL* w = coef + indices[p];
                    const double old = (double)*w;
                    const REAL updated = (REAL)(old - factor * (double)data[p]);
                    *w = updated;
                    if (with_penalty) change += ((double)updated - old) * ((double)updated + old);
                }
                squares[0] += change;
                continue;
            }
            for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                const double x = (double)data[p];
                REAL* w = coef + (int64_t)indices[p] * K;
                for (int64_t k = 0; k < K; ++k) {
                    const double old = (double)w[k];
                    const REAL updated = (REAL)(old - step[k] * g[k] * x);
                    squares[k] += (double)updated * (double)updated - old * old;
                    w[k] = updated;
                }
            }
        }
        FN(step_intercept)(cfg, intercept, column_sum, eta);
        FN(sparse_step_done)(cfg, a, rows, scale, squares, absolute);
    }
    FN(fold_scale)(coef, d, K, scale);
    free(decision); free(derivative); free(work);
    return 0;
}

// Sparse epoch with L1: the rows a batch touches get their pending L1 before they are used,
// through a table of the batch's distinct columns.
static int FN(epoch_sparse)(const SgdConfig* cfg, const SgdArrays* a) {
    if (cfg->l1 == 0.0) return FN(epoch_sparse_direct)(cfg, a);
    const int64_t n = cfg->n_samples, d = cfg->n_features, K = cfg->n_outputs;
    const int64_t B = cfg->batch_size;
    // a batch never has more rows than the data (the work buffers hold one batch)
    const int64_t batch_rows = B < n ? B : n;
    const REAL* data = (const REAL*)a->X_data;
    const int32_t* indices = (const int32_t*)a->X_indices;
    const int64_t* indptr = (const int64_t*)a->X_indptr;
    const REAL* targets = (const REAL*)a->targets;
    REAL* coef = (REAL*)a->coef;
    REAL* intercept = (REAL*)a->intercept;
    REAL* applied = (REAL*)a->l1_applied;
    // the largest number of non-zeros in one batch bounds its distinct columns
    int64_t widest = 1;
    for (int64_t start = 0; start < n; start += B) {
        const int64_t stop = start + B < n ? start + B : n;
        int64_t count = 0;
        for (int64_t r = start; r < stop; ++r) {
            const int64_t row = a->order ? a->order[r] : r;
            count += indptr[row + 1] - indptr[row];
        }
        if (count > widest) widest = count;
    }
    if (widest > d) widest = d;
    int32_t* slot = malloc(sizeof(int32_t) * (size_t)d);
    int32_t* columns = malloc(sizeof(int32_t) * (size_t)widest);
    double* weights = malloc(sizeof(double) * (size_t)(widest * K));
    double* grad = malloc(sizeof(double) * (size_t)(widest * K));
    double* decision = malloc(sizeof(double) * (size_t)(batch_rows * K));
    double* derivative = malloc(sizeof(double) * (size_t)(batch_rows * K));
    double* column_sum = malloc(sizeof(double) * (size_t)K);
    double* eta = malloc(sizeof(double) * (size_t)K);
    double* scale = malloc(sizeof(double) * (size_t)K);
    double* squares = malloc(sizeof(double) * (size_t)K);
    double* absolute = malloc(sizeof(double) * (size_t)K);
    if (!slot || !columns || !weights || !grad || !decision || !derivative || !column_sum || !eta ||
        !scale || !squares || !absolute) {
        free(slot); free(columns); free(weights); free(grad); free(decision); free(derivative);
        free(column_sum); free(eta); free(scale); free(squares); free(absolute);
        return 1;
    }
    for (int64_t j = 0; j < d; ++j) slot[j] = -1;
    for (int64_t k = 0; k < K; ++k) scale[k] = 1.0;
    if (cfg->with_penalty) FN(lazy_norms_reset)(coef, d, K, squares, absolute);
    // without momentum a coupled L2 is a shrink of every weight too: both live in the scale
    const double decay = cfg->decay + cfg->l2;
    const double l1 = cfg->l1;
    for (int64_t start = 0; start < n; start += B) {
        const int64_t stop = start + B < n ? start + B : n;
        const int64_t rows = stop - start;
        // One pass over the batch: each column, at its first appearance, gets a slot and its
        // true weight (scale times stored, pending L1 applied); each row its decision.
        int64_t n_columns = 0;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row = a->order ? a->order[start + r] : start + r;
            if (a->order && start + r + PREFETCH_ROWS < n)
                FN(prefetch_row)(data, indices, indptr, a->order[start + r + PREFETCH_ROWS]);
            double* out = decision + r * K;
            for (int64_t k = 0; k < K; ++k) out[k] = 0.0;
            double squared_norm = 0.0;
            for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                const int32_t j = indices[p];
                if (slot[j] < 0) {
                    slot[j] = (int32_t)n_columns;
                    columns[n_columns] = j;
                    double* w = weights + n_columns * K;
                    for (int64_t k = 0; k < K; ++k) {
                        w[k] = scale[k] * (double)coef[(int64_t)j * K + k];
                        if (l1 != 0.0)
                            w[k] = FN(l1_truncate_value)(w[k], applied + (int64_t)j * K + k, a->l1_total[k]);
                    }
                    ++n_columns;
                }
                const double x = (double)data[p];
                const double* w = weights + (int64_t)slot[j] * K;
                if (K == 1) {
                    out[0] += x * w[0];
                } else {
                    for (int64_t k = 0; k < K; ++k) out[k] += x * w[k];
                }
                squared_norm += x * x;
            }
            for (int64_t k = 0; k < K; ++k) out[k] += (double)intercept[k];
            FN(row_derivative)(cfg, a, row, targets + row * K, out, derivative + r * K, squared_norm);
        }
        if (cfg->with_penalty) add_lazy_penalty(cfg, a, rows, scale, squares, absolute);
        batch_mean(derivative, rows, K, column_sum);
        step_rates(cfg, a, rows, eta);
        clamp_earlier_rows(derivative, rows, K, eta, decay);
        memset(grad, 0, sizeof(double) * (size_t)(n_columns * K));
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t row = a->order ? a->order[start + r] : start + r;
            const double* g = derivative + r * K;
            for (int64_t p = indptr[row]; p < indptr[row + 1]; ++p) {
                const double x = (double)data[p];
                double* out = grad + (int64_t)slot[indices[p]] * K;
                if (K == 1) {
                    out[0] += x * g[0];
                } else {
                    for (int64_t k = 0; k < K; ++k) out[k] += x * g[k];
                }
            }
        }
        int renormalise = 0;
        for (int64_t k = 0; k < K; ++k) {
            const double shrink = shrink_factor(eta[k], decay);
            for (int64_t s = 0; s < n_columns; ++s) {
                double w = weights[s * K + k];
                if (decay != 0.0) w *= shrink;
                weights[s * K + k] = w - eta[k] * grad[s * K + k];
            }
            scale[k] *= shrink;
        }
        if (cfg->l1 != 0.0) {
            for (int64_t k = 0; k < K; ++k) a->l1_total[k] += eta[k] * cfg->l1;
            for (int64_t s = 0; s < n_columns; ++s)
                for (int64_t k = 0; k < K; ++k)
                    weights[s * K + k] = FN(l1_truncate_value)(weights[s * K + k],
                                                           applied + columns[s] * K + k, a->l1_total[k]);
        }
        FN(step_intercept)(cfg, intercept, column_sum, eta);
        for (int64_t k = 0; k < K; ++k) renormalise |= scale[k] < MIN_WEIGHT_SCALE;
        if (renormalise) {
            // also where the shrink was clamped to zero: every weight becomes 0, as in scikit-learn
            FN(fold_scale)(coef, d, K, scale);
            if (cfg->with_penalty) FN(lazy_norms_reset)(coef, d, K, squares, absolute);
        }
        for (int64_t s = 0; s < n_columns; ++s) {
            const int64_t j = columns[s];
            for (int64_t k = 0; k < K; ++k) {
                const double old = (double)coef[j * K + k];
                const REAL stored = (REAL)(weights[s * K + k] / scale[k]);
                if (cfg->with_penalty) {
                    squares[k] += (double)stored * (double)stored - old * old;
                    absolute[k] += fabs((double)stored) - fabs(old);
                }
                coef[j * K + k] = stored;
            }
            slot[j] = -1;
        }
        FN(sparse_step_done)(cfg, a, rows, scale, squares, absolute);
    }
    FN(fold_scale)(coef, d, K, scale);
    if (cfg->l1 != 0.0)
        for (int64_t j = 0; j < d; ++j)
            for (int64_t k = 0; k < K; ++k) FN(l1_truncate)(coef + j * K + k, applied + j * K + k, a->l1_total[k]);
    free(slot); free(columns); free(weights); free(grad); free(decision); free(derivative);
    free(column_sum); free(eta); free(scale); free(squares); free(absolute);
    return 0;
}

// The second moment of sampled CSR rows times a vector, for the batch-size statistics:
// image = mean over rows of x (x . v), x = [row, intercept] (v and image have d + 1
// entries), read in place from the CSR arrays; the rows' sum of squared values in *squares.
static void FN(sampled_second_moment)(const REAL* data, const int32_t* indices,
                                      const int64_t* starts, const int64_t* ends, int64_t rows,
                                      int64_t d, double intercept, const double* vector,
                                      double* image, double* squares) {
    for (int64_t j = 0; j <= d; ++j) image[j] = 0.0;
    double total = 0.0, projected_sum = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
        // the sampled rows are apart in memory: ask for one a few rows ahead
        if (r + PREFETCH_ROWS < rows)
            FN(prefetch_span)(data, indices, starts[r + PREFETCH_ROWS], ends[r + PREFETCH_ROWS]);
        double projected = intercept * vector[d];
        for (int64_t p = starts[r]; p < ends[r]; ++p) {
            const double x = (double)data[p];
            projected += x * vector[indices[p]];
            total += x * x;
        }
        for (int64_t p = starts[r]; p < ends[r]; ++p) image[indices[p]] += (double)data[p] * projected;
        projected_sum += projected;
    }
    image[d] = intercept * projected_sum;
    if (rows > 0)
        for (int64_t j = 0; j <= d; ++j) image[j] /= (double)rows;
    *squares = total;
}
