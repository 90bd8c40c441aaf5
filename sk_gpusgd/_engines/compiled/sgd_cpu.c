// Compiled epochs of the CPU engine: the NumPy engine's minibatch step, one call per epoch.
//
// A Python extension module only so that setuptools builds and installs it; Python calls
// sgd_epoch() through ctypes (__init__.py beside it), which also documents the structs.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// Loss and schedule codes: LOSS_CODES and SCHEDULE_CODES in __init__.py.
enum {
    LOSS_HINGE = 0,
    LOSS_SQUARED_HINGE = 1,
    LOSS_LOG = 2,
    LOSS_MODIFIED_HUBER = 3,
    LOSS_SQUARED_ERROR = 4,
    LOSS_HUBER = 5,
    LOSS_EPSILON_INSENSITIVE = 6,
    LOSS_SQUARED_EPSILON_INSENSITIVE = 7
};
enum {
    SCHEDULE_CONSTANT = 0,
    SCHEDULE_OPTIMAL = 1,
    SCHEDULE_INVSCALING = 2,
    SCHEDULE_ADAPTIVE = 3,
    SCHEDULE_PA1 = 4,
    SCHEDULE_PA2 = 5
};
enum { COUNTER_SAMPLES = 0, COUNTER_STEPS = 1, COUNTER_AVERAGED = 2 };

// scikit-learn clips each sample's loss derivative to this magnitude
#define MAX_DLOSS 1e12
// renormalise the sparse weight scale before it underflows
#define MIN_WEIGHT_SCALE 1e-9
// how far ahead a shuffled sparse epoch prefetches rows
#define PREFETCH_ROWS 8
// log(2), spelled out: M_LN2 is POSIX, not C
#define LN2 0.693147180559945309417232121458

typedef struct {
    int64_t n_samples, n_features, n_outputs, batch_size, average_start;
    int64_t loss, schedule, fit_intercept, scaled, with_penalty, bounded;
    int64_t pa_sign_from_target;
    double loss_parameter, eta0, alpha, power_t, optimal_offset;
    double mean_squared_norm, top_eigenvalue, curvature;
    double l2, l1, decay, intercept_scale;
    double average_decay, gain_floor;
} SgdConfig;

typedef struct {
    // CSR: X_indices int32, X_indptr int64
    const void *X_data, *X_indices, *X_indptr;
    const int64_t* order;
    const void *targets, *sample_weight, *positive_weight, *negative_weight, *mask;
    void *coef, *intercept;
    const double* adaptive_eta;
    const void *mean, *inv_scale;
    void *average_coef, *average_intercept, *l1_applied;
    double *l1_total, *loss_total, *penalty_total;
    int64_t* counters;
    // log loss: per output, the product of the rows' 1 + exp(-|z|), whose log the
    // caller adds to loss_total (one log per epoch instead of one per row)
    double* loss_product;
} SgdArrays;

// d/dp log(1 + exp(-y p)) at z = y p, from e = exp(-|z|) (no overflow either side).
static double log_loss_slope(double y, double z, double e) {
    return -y * (z >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e));
}

// The log-loss part of a row without log1p: max(-z, 0) is added to *total and 1 + e
// multiplied into *product, kept below 2**512 by moving its exponent into *total. A row
// far on the right side (e < 2**-20, where 1 + e would round e away) adds log1p(e)'s
// series, e - e^2 / 2, to *total directly.
static double log_loss_accumulated(double y, double p, double* total, double* product) {
    const double z = y * p;
    const double e = exp(-fabs(z));
    *total += -z < 0 ? 0.0 : -z;
    if (e < 0x1p-20) {
        *total += e * (1.0 - 0.5 * e);
    } else {
        double factor = *product * (1.0 + e);
        if (factor > 0x1p512) {
            int exponent;
            factor = frexp(factor, &exponent);
            *total += (double)exponent * LN2;
        }
        *product = factor;
    }
    return log_loss_slope(y, z, e);
}

static void loss_value_and_derivative(int64_t loss, double parameter, double p, double y,
                                      double* value, double* slope) {
    switch (loss) {
        case LOSS_HINGE: {
            const double margin = parameter - y * p;
            *value = margin < 0 ? 0.0 : margin;
            *slope = margin >= 0.0 ? -y : 0.0;
            return;
        }
        case LOSS_SQUARED_HINGE: {
            double margin = 1.0 - y * p;
            if (margin < 0) margin = 0.0;
            *value = margin * margin;
            *slope = -2.0 * y * margin;
            return;
        }
        case LOSS_LOG: {
            const double z = y * p;
            const double e = exp(-fabs(z));
            *value = (-z < 0 ? 0.0 : -z) + log1p(e);
            *slope = log_loss_slope(y, z, e);
            return;
        }
        case LOSS_MODIFIED_HUBER: {
            const double z = y * p;
            if (z >= 1.0) {
                *value = 0.0;
                *slope = 0.0;
            } else if (z >= -1.0) {
                *value = (1.0 - z) * (1.0 - z);
                *slope = -2.0 * y * (1.0 - z);
            } else {
                *value = -4.0 * z;
                *slope = -4.0 * y;
            }
            return;
        }
        case LOSS_SQUARED_ERROR: {
            const double residual = p - y;
            *value = 0.5 * residual * residual;
            *slope = residual;
            return;
        }
        case LOSS_HUBER: {
            const double residual = p - y;
            const double absolute = fabs(residual);
            *value = absolute <= parameter ? 0.5 * residual * residual
                                           : parameter * absolute - 0.5 * parameter * parameter;
            *slope = residual > parameter ? parameter : (residual < -parameter ? -parameter : residual);
            return;
        }
        case LOSS_EPSILON_INSENSITIVE: {
            const double residual = y - p;
            const double excess = fabs(residual) - parameter;
            *value = excess < 0 ? 0.0 : excess;
            *slope = (double)(residual < -parameter) - (double)(residual > parameter);
            return;
        }
        default: {  // LOSS_SQUARED_EPSILON_INSENSITIVE
            const double residual = y - p;
            double excess = fabs(residual) - parameter;
            if (excess < 0) excess = 0.0;
            *value = excess * excess;
            *slope = residual > parameter    ? -2.0 * (residual - parameter)
                     : residual < -parameter ? -2.0 * (residual + parameter)
                                             : 0.0;
            return;
        }
    }
}

static double clip_derivative(double slope) {
    // comparisons, not fmin/fmax: a NaN stays NaN and the divergence check sees it
    return slope > MAX_DLOSS ? MAX_DLOSS : (slope < -MAX_DLOSS ? -MAX_DLOSS : slope);
}

// The passive-aggressive step of one row, divided by eta0 (the step is eta0 times it).
static double passive_aggressive_derivative(const SgdConfig* cfg, double loss, double p, double y,
                                            double squared_norm) {
    double step;
    if (cfg->schedule == SCHEDULE_PA1) {
        step = 0.0;
        if (squared_norm > 0) {
            step = loss / squared_norm;
            if (step > cfg->eta0) step = cfg->eta0;
        }
    } else {
        step = loss / (squared_norm + 0.5 / cfg->eta0);
    }
    const double sign = cfg->pa_sign_from_target ? y : 1.0 - 2.0 * (double)(y - p < 0);
    return -(step * sign) / cfg->eta0;
}

// The batch mean, folded into the derivative as in the NumPy step, and each column's sum.
static void batch_mean(double* derivative, int64_t rows, int64_t K, double* column_sum) {
    const double inv_rows = 1.0 / (double)rows;
    for (int64_t k = 0; k < K; ++k) column_sum[k] = 0.0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < K; ++k) {
            derivative[r * K + k] *= inv_rows;
            column_sum[k] += derivative[r * K + k];
        }
}

// The penalty of the true weights (scale times stored) before a sparse step, once per row.
static void add_lazy_penalty(const SgdConfig* cfg, const SgdArrays* a, int64_t rows,
                             const double* scale, const double* squares, const double* absolute) {
    for (int64_t k = 0; k < cfg->n_outputs; ++k)
        a->penalty_total[k] += (double)rows * (0.5 * cfg->l2 * scale[k] * scale[k] * squares[k] +
                                               cfg->l1 * scale[k] * absolute[k]);
}

static double shrink_factor(double eta, double decay) {
    const double factor = 1.0 - eta * decay;
    return factor < 0 ? 0.0 : factor;
}

// Without momentum a step's decays are a shrink, clamped at zero; once it is clamped only the
// batch's last row moves the weights (the earlier rows' updates are wiped by the shrinks of the
// rows after them; _core/optim.py, within_batch_gradient). In place on the batch-mean derivative.
static void clamp_earlier_rows(double* derivative, int64_t rows, int64_t K, const double* eta,
                               double decay) {
    if (decay == 0.0 || rows <= 1) return;
    for (int64_t k = 0; k < K; ++k) {
        if (shrink_factor(eta[k], decay) > 0.0) continue;
        for (int64_t r = 0; r + 1 < rows; ++r) derivative[r * K + k] = 0.0;
    }
}

// The rate of every output column for a step over `rows` rows (sample clock t = seen + 1).
static void step_rates(const SgdConfig* cfg, const SgdArrays* a, int64_t rows, double* eta) {
    const double t = (double)(a->counters[COUNTER_SAMPLES] + 1);
    double rate = cfg->eta0;
    if (cfg->schedule == SCHEDULE_OPTIMAL) rate = 1.0 / (cfg->alpha * (cfg->optimal_offset + t - 1.0));
    if (cfg->schedule == SCHEDULE_INVSCALING) rate = cfg->eta0 / pow(t, cfg->power_t);
    double best = 0.0, floor_gain = 1.0;
    const int scaled = cfg->scaled && rows > 1;
    if (scaled) {
        const double beta = cfg->mean_squared_norm, lam = cfg->top_eigenvalue;
        const double gain = beta > 0 ? (double)rows * beta / (beta + lam * (double)(rows - 1)) : 1.0;
        best = gain / (cfg->curvature * beta);
        // sparse rows: at least gain(m) per-sample steps (BatchScaling.step_rate)
        if (cfg->gain_floor != 0.0) floor_gain = gain;
    }
    for (int64_t k = 0; k < cfg->n_outputs; ++k) {
        double eta_k = rate;
        if (cfg->schedule == SCHEDULE_ADAPTIVE && a->adaptive_eta) eta_k = a->adaptive_eta[k];
        if (scaled) {
            // min(rows * eta, max(eta, best)): linear scaling, capped by the batch's curvature
            const double floor = floor_gain * eta_k > best ? floor_gain * eta_k : best;
            const double linear = (double)rows * eta_k;
            eta_k = linear < floor ? linear : floor;
        }
        eta[k] = eta_k;
    }
}

// what ctypes calls: visible from the shared library
#if defined(_WIN32)
#define SGD_EXPORT __declspec(dllexport)
#else
#define SGD_EXPORT __attribute__((visibility("default")))
#endif

#define FN(name) name##_f64
#define REAL double
#include "sgd_epoch.h"
#undef REAL
#undef FN

#define FN(name) name##_f32
#define REAL float
#include "sgd_epoch.h"
#undef REAL
#undef FN

// One epoch; returns 0, or 1 when a work buffer could not be allocated.
SGD_EXPORT
int sgd_epoch(const SgdConfig* cfg, const SgdArrays* arrays, int64_t single_precision, int64_t sparse) {
    // ctypes.CDLL releases the GIL around this call: other Python threads run meanwhile
    if (single_precision) return sparse ? epoch_sparse_f32(cfg, arrays) : epoch_dense_f32(cfg, arrays);
    return sparse ? epoch_sparse_f64(cfg, arrays) : epoch_dense_f64(cfg, arrays);
}

// The batch-size statistics' product over sampled CSR rows (see sampled_second_moment).
SGD_EXPORT
void sgd_sampled_second_moment(const void* data, const int32_t* indices, const int64_t* starts,
                               const int64_t* ends, int64_t rows, int64_t n_features,
                               int64_t single_precision, double intercept, const double* vector,
                               double* image, double* squares) {
    if (single_precision)
        sampled_second_moment_f32((const float*)data, indices, starts, ends, rows, n_features,
                                  intercept, vector, image, squares);
    else
        sampled_second_moment_f64((const double*)data, indices, starts, ends, rows, n_features,
                                  intercept, vector, image, squares);
}

// SplitMix64 (Steele, Lea and Flood 2014): a fast generator with a 64-bit state.
static uint64_t splitmix64(uint64_t* state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// A uniform integer in [0, bound): Lemire's multiply-shift with rejection (2019), unbiased.
static uint64_t uniform_below(uint64_t* state, uint64_t bound) {
    __uint128_t product = (__uint128_t)splitmix64(state) * bound;
    uint64_t low = (uint64_t)product;
    if (low < bound) {
        const uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            product = (__uint128_t)splitmix64(state) * bound;
            low = (uint64_t)product;
        }
    }
    return (uint64_t)(product >> 64);
}

// A uniformly random permutation of 0..n-1 into `out` (Fisher-Yates); advances `state`.
SGD_EXPORT
void sgd_permutation(uint64_t* state, int64_t n, int64_t* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = i;
    for (int64_t i = n - 1; i > 0; --i) {
        const int64_t j = (int64_t)uniform_below(state, (uint64_t)i + 1);
        const int64_t kept = out[i];
        out[i] = out[j];
        out[j] = kept;
    }
}

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_sgd_cpu",
    .m_doc = "Compiled epochs of the CPU engine (called through ctypes).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__sgd_cpu(void) { return PyModule_Create(&module); }
