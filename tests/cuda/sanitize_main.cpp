// Runs every kernel of kernels.cu on the host emulation under a sanitizer: two epochs of
// steps for each (X storage, compute) pair, with options on and off (null pointers where the
// driver passes none), ragged shapes and several blocks. Exits non-zero on a wrong count or
// a non-finite weight; the sanitizers report out-of-bounds accesses, undefined behaviour
// and data races. Built by tests/cuda/test_sanitizers.py:
//   g++ -std=c++20 -O1 -g -fsanitize=address -DEMULATION_OS_THREADS \
//       -I sk_gpusgd/_cuda/emulation -DKERNELS='"sk_gpusgd/_cuda/kernels.cu"' \
//       tests/cuda/sanitize_main.cpp -o sanitize && ./sanitize
#include "cuda_emulation.h"
#include KERNELS

#include <cstdio>
#include <vector>

namespace {

struct Case {
    const char* name;
    int n, d, k, batch, rows, threads;
    std::vector<std::pair<int, double>> settings;
    bool momentum, l1, average, weights, order;
};

template <typename TX> TX store(float v);
template <> float store<float>(float v) { return v; }
template <> double store<double>(float v) { return v; }
template <> __half store<__half>(float v) { return static_cast<__half>(v); }
template <> __nv_bfloat16 store<__nv_bfloat16>(float v) {
    std::uint32_t word;
    std::memcpy(&word, &v, sizeof word);
    return __nv_bfloat16{static_cast<std::uint16_t>(word >> 16)};
}

template <typename T> T* data_or_null(std::vector<T>& v, bool on) { return on ? v.data() : nullptr; }

template <typename TX, typename T>
int run_case(const Case& c) {
    const int n = c.n, d = c.d, k = c.k;
    const int blocks = (std::min(c.batch, n) + c.rows - 1) / c.rows;
    std::vector<TX> X(static_cast<size_t>(n) * d);
    std::vector<T> Y(static_cast<size_t>(n) * k), sw(n), pos(k, T(2)), neg(k, T(0.5));
    for (size_t i = 0; i < X.size(); ++i) X[i] = store<TX>(float((i * 7919) % 23) / 23.f - 0.5f);
    for (size_t i = 0; i < Y.size(); ++i) Y[i] = (i * 31) % 3 ? T(1) : T(-1);
    for (int i = 0; i < n; ++i) sw[i] = T(0.5 + (i % 4) * 0.25);
    std::vector<long long> order(n);
    for (int i = 0; i < n; ++i) order[i] = (7LL * i) % n;
    std::vector<T> W(static_cast<size_t>(d) * k, T(0)), b(k, T(0)), active(k, T(1));
    std::vector<T> buffer(W.size(), T(0)), buffer_b(k, T(0)), l1q(W.size(), T(0));
    std::vector<T> average(W.size(), T(0)), average_b(k, T(0));
    std::vector<T> partial(static_cast<size_t>(blocks) * d * k), partial_b(blocks * k), loss(blocks * k);
    std::vector<double> columns(COLUMN_FIELDS * k, 0.0);
    std::vector<double> summary(SUMMARY_COLUMN_FIELDS * k + SUMMARY_TAIL);
    std::vector<double> cfg(CFG_SIZE, 0.0), ctx(CTX_SIZE, 0.0);
    std::vector<T> mean(d), inv_scale(d);
    for (int j = 0; j < d; ++j) {
        mean[j] = T(0.01 * j);
        inv_scale[j] = T(1.0 + 0.1 * (j % 3));
    }
    cfg[CFG_LOSS] = LOSS_HINGE;
    cfg[CFG_LOSS_PARAM] = 1.0;
    cfg[CFG_SCHEDULE] = SCHEDULE_INVSCALING;
    cfg[CFG_ETA0] = 0.05;
    cfg[CFG_POWER_T] = 0.5;
    cfg[CFG_FIT_INTERCEPT] = 1;
    cfg[CFG_INTERCEPT_SCALE] = 1;
    cfg[CFG_BATCH_SIZE] = c.batch;
    cfg[CFG_N_SAMPLES] = n;
    cfg[CFG_SEED] = 1234;
    cfg[CFG_SHUFFLE] = c.order ? SHUFFLE_ORDER : SHUFFLE_BIJECTION;
    cfg[CFG_GAIN_BETA] = 3.0;
    cfg[CFG_GAIN_LAMBDA] = 0.5;
    cfg[CFG_CURVATURE] = 1.0;
    cfg[CFG_CLIP_DLOSS] = 1e12;
    cfg[CFG_WITH_PENALTY] = 1;
    for (const auto& [index, value] : c.settings) cfg[index] = value;
    const bool clip_norm = cfg[CFG_CLIP_NORM] > 0;
    const bool precondition = c.weights;  // the cases with weights also precondition
    const int pairs = c.rows * k;
    const size_t shared = std::max(2 * sizeof(double) * c.threads, sizeof(long long) * c.rows +
        sizeof(T) * (static_cast<size_t>(c.rows) * d + std::max(pairs, c.threads) + 3 * pairs + c.rows));
    const int steps = (n + c.batch - 1) / c.batch;
    for (int epoch = 0; epoch < 2; ++epoch) {
        for (int s = 0; s < steps; ++s) {
            emulated_launch(sgd_forward<TX, T>, blocks + 1, c.threads, shared, X.data(), Y.data(),
                            data_or_null(sw, c.weights), data_or_null(pos, c.weights),
                            data_or_null(neg, c.weights), data_or_null(order, c.order),
                            data_or_null(mean, precondition), data_or_null(inv_scale, precondition),
                            W.data(), b.data(), active.data(), partial.data(), partial_b.data(),
                            loss.data(), cfg.data(), ctx.data(), columns.data(), d, k, c.rows,
                            blocks);
            emulated_launch(sgd_update<T>, clip_norm ? 1u : 2u, c.threads,
                            clip_norm ? c.threads * sizeof(T) : 0, W.data(), b.data(),
                            data_or_null(buffer, c.momentum), data_or_null(buffer_b, c.momentum),
                            data_or_null(l1q, c.l1), data_or_null(average, c.average),
                            data_or_null(average_b, c.average),
                            data_or_null(inv_scale, precondition), partial.data(),
                            partial_b.data(), loss.data(), active.data(), cfg.data(), ctx.data(),
                            columns.data(), d, k, blocks);
        }
        emulated_launch(sgd_end_epoch<T>, 1, c.threads, c.threads * sizeof(double), W.data(),
                        b.data(), columns.data(), summary.data(), ctx.data(), d, k);
    }
    std::vector<long long> epoch_order(n);
    cfg[CFG_SHUFFLE] = SHUFFLE_BIJECTION;  // the order kernel computes the bijection only
    emulated_launch(sgd_epoch_order, 2, 32, 0, epoch_order.data(), cfg.data(), ctx.data(),
                    static_cast<long long>(n));
    bool ok = ctx[CTX_STEPS] == 2.0 * steps && ctx[CTX_SAMPLES] == 2.0 * n;
    for (T w : W) ok = ok && std::isfinite(static_cast<double>(w));
    ok = ok && std::isfinite(summary[SUMMARY_COLUMN_FIELDS * k + SUMMARY_PROBE]);
    std::printf("%-28s %s\n", c.name, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

// Sparse CSR: 2 epochs of lazy steps (momentum, L1, decay strong enough to renormalise).
template <typename T>
int run_sparse_case(const char* name, int n, int d, int k, int batch, int rows, int threads,
                    double average_start, double clip_norm) {
    std::vector<int> indptr(n + 1, 0), indices;
    std::vector<T> values;
    for (int i = 0; i < n; ++i) {
        for (int j = 0; j < d; ++j)
            if ((i * 7 + j * 3) % 5 == 0) {
                indices.push_back(j);
                values.push_back(T(0.1 * ((i + j) % 7) - 0.3));
            }
        indptr[i + 1] = static_cast<int>(indices.size());
    }
    const int blocks = (std::min(batch, n) + rows - 1) / rows;
    std::vector<T> Y(static_cast<size_t>(n) * k), W(static_cast<size_t>(d) * k, T(0)), b(k, T(0));
    for (size_t i = 0; i < Y.size(); ++i) Y[i] = i % 3 ? T(1) : T(-1);
    std::vector<T> active(k, T(1)), buffer(W.size(), T(0)), buffer_b(k, T(0)), l1q(W.size(), T(0));
    std::vector<T> gradient(W.size(), T(0)), g_rows(static_cast<size_t>(batch) * k), loss(blocks * k);
    std::vector<T> average(W.size(), T(0)), average_b(k, T(0));
    std::vector<int> stamp(d, -1), touched(d, 0), counters(2, 0);
    std::vector<double> columns(COLUMN_FIELDS * k, 0.0);
    std::vector<double> summary(SUMMARY_COLUMN_FIELDS * k + SUMMARY_TAIL);
    std::vector<double> cfg(CFG_SIZE, 0.0), ctx(CTX_SIZE, 0.0);
    cfg[CFG_LOSS] = LOSS_LOG;
    cfg[CFG_WITH_PENALTY] = 1;
    cfg[CFG_L2] = 1e-3;
    cfg[CFG_SCHEDULE] = SCHEDULE_CONSTANT;
    cfg[CFG_ETA0] = 0.1;
    cfg[CFG_MOMENTUM] = 0.9;
    cfg[CFG_L1] = 1e-3;
    cfg[CFG_DECAY] = 9.0;
    cfg[CFG_FIT_INTERCEPT] = 1;
    cfg[CFG_INTERCEPT_SCALE] = 0.01;
    cfg[CFG_BATCH_SIZE] = batch;
    cfg[CFG_N_SAMPLES] = n;
    cfg[CFG_SEED] = 99;
    cfg[CFG_SHUFFLE] = SHUFFLE_BIJECTION;
    cfg[CFG_AVERAGE_START] = average_start;
    cfg[CFG_CLIP_NORM] = clip_norm;
    ctx[CTX_SCALE] = 1.0;
    const size_t shared =
        std::max(2 * sizeof(double) * threads, sizeof(long long) * rows + 2 * sizeof(T) * rows * k);
    const unsigned grid = 3;
    const int steps = (n + batch - 1) / batch;
    for (int epoch = 0; epoch < 2; ++epoch) {
        for (int s = 0; s < steps; ++s) {
            emulated_launch(sgd_sparse_forward<T, T>, blocks + 1, threads, shared, indptr.data(),
                            indices.data(), values.data(), Y.data(), (const T*)nullptr,
                            (const T*)nullptr, (const T*)nullptr, (const long long*)nullptr,
                            W.data(), b.data(), l1q.data(), active.data(), g_rows.data(),
                            loss.data(), gradient.data(), stamp.data(), touched.data(),
                            counters.data(), cfg.data(), ctx.data(), columns.data(), d, k, rows,
                            blocks);
            emulated_launch(sgd_sparse_update<T>, clip_norm > 0 ? 1u : grid, threads,
                            clip_norm > 0 ? threads * sizeof(T) : 0, W.data(), b.data(),
                            buffer.data(), buffer_b.data(), l1q.data(), gradient.data(),
                            g_rows.data(), touched.data(), stamp.data(), counters.data(),
                            loss.data(), active.data(), cfg.data(), ctx.data(), columns.data(), d,
                            k, blocks);
            if (average_start > 0)
                emulated_launch(sgd_sparse_average<T>, grid, threads, 0, W.data(), b.data(),
                                l1q.data(), average.data(), average_b.data(), ctx.data(),
                                columns.data(), d, k);
        }
        emulated_launch(sgd_sparse_fold<T>, grid, threads, 0, W.data(), l1q.data(), ctx.data(),
                        columns.data(), d, k);
        emulated_launch(sgd_end_epoch<T>, 1, threads, threads * sizeof(double), W.data(),
                        b.data(), columns.data(), summary.data(), ctx.data(), d, k);
    }
    bool ok = ctx[CTX_STEPS] == 2.0 * steps;
    for (T w : W) ok = ok && std::isfinite(static_cast<double>(w));
    for (T g : gradient) ok = ok && g == T(0);  // every touched column cleaned its scratch
    std::printf("%-28s %s\n", name, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

}  // namespace

int main() {
    int failures = 0;
    failures += run_case<float, float>(
        {"float: hinge momentum l1 avg", 37, 20, 3, 8, 3, 32,
         {{CFG_MOMENTUM, 0.9}, {CFG_L1, 1e-3}, {CFG_L2, 1e-3}, {CFG_AVERAGE_START, 10}},
         true, true, true, true, false});
    failures += run_case<double, double>(
        {"double: log clip-norm nesterov", 29, 9, 10, 7, 2, 64,
         {{CFG_LOSS, LOSS_LOG}, {CFG_CLIP_NORM, 0.5}, {CFG_MOMENTUM, 0.9}, {CFG_NESTEROV, 1},
          {CFG_VELOCITY_FORM, 1}, {CFG_SCHEDULE, SCHEDULE_OPTIMAL}, {CFG_ALPHA, 1e-2},
          {CFG_OPTIMAL_OFFSET, 10}},
         true, false, false, false, true});
    failures += run_case<__half, float>(
        {"half: pa1 epsilon decay", 40, 33, 1, 16, 5, 32,
         {{CFG_LOSS, LOSS_EPSILON_INSENSITIVE}, {CFG_LOSS_PARAM, 0.1}, {CFG_SCHEDULE, SCHEDULE_PA1},
          {CFG_DECAY, 1e-2}, {CFG_FIT_INTERCEPT, 0}, {CFG_CLIP_VALUE, 0.1}},
         false, false, false, false, false});
    failures += run_case<__nv_bfloat16, float>(
        {"bfloat16: modified huber", 19, 4, 3, 19, 4, 32,
         {{CFG_LOSS, LOSS_MODIFIED_HUBER}, {CFG_SHUFFLE, SHUFFLE_NONE}, {CFG_DAMPENING, 0.5},
          {CFG_MOMENTUM, 0.5}},
         true, false, true, true, false});
    failures += run_sparse_case<float>("sparse float: lazy momentum", 41, 30, 3, 8, 3, 32, 0, 0);
    failures += run_sparse_case<double>("sparse double: clip-norm avg", 23, 50, 1, 23, 8, 64, 5, 0.5);
    return failures;
}
