// Fused minibatch-SGD kernels of sk_gpusgd's CUDA engine.
//
// One source for two compilers: NVRTC (through CuPy on a GPU, through cuda.core in the
// compile-check tests) and g++ with emulation/cuda_emulation.h (the CPU tests). Hence two
// rules: every shared array comes through SHARED_MEMORY, and CUDA headers are included only
// under __CUDACC_RTC__.
//
// Layout: X (n, d) row-major, targets Y (n, k), weights W (d, k), intercept b (k). T is the
// compute type (float or double); X may be stored narrower (TX = __half, __nv_bfloat16).
//
// A dense step is two launches, sgd_forward then sgd_update, whose arguments never change
// within a fit: every value that changes between steps lives in device memory (ctx), so the
// same two launches replay as a CUDA graph. The fixed settings of a fit are in cfg.
//
// `active` masks the loss derivative of converged one-vs-rest columns; the driver puts
// their weights and optimizer state back after every epoch, as the reference engine does.
//
// Who writes what (no atomics, no last-block counter, every reduction in a fixed order):
//   sgd_forward  reads the clock fields of ctx; its block 0 writes the STEP_* fields.
//   sgd_update   reads the STEP_* fields; its block 0 advances the clock fields.
//   sgd_end_epoch  writes the epoch summary, rewinds the cursor, bumps the epoch counter.
#ifdef __CUDACC_RTC__
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#endif

#ifndef SHARED_MEMORY  // the host emulation defines its own
#define SHARED_MEMORY(T, name)                                  \
    extern __shared__ __align__(16) unsigned char sk_smem_raw[]; \
    T* name = reinterpret_cast<T*>(sk_smem_raw)
#endif

// ---- cfg: fixed for one fit (doubles; integers stored exactly) --------------------------
#define CFG_LOSS 0            // LOSS_* below
#define CFG_LOSS_PARAM 1      // epsilon (huber, epsilon-insensitive) or hinge threshold
#define CFG_SCHEDULE 2        // SCHEDULE_* below
#define CFG_ETA0 3
#define CFG_ALPHA 4
#define CFG_POWER_T 5
#define CFG_OPTIMAL_OFFSET 6
#define CFG_L2 7              // coupled L2 (penalty and coupled weight decay)
#define CFG_DECAY 8           // decoupled weight decay
#define CFG_L1 9
#define CFG_MOMENTUM 10
#define CFG_DAMPENING 11
#define CFG_NESTEROV 12
#define CFG_VELOCITY_FORM 13  // 0: PyTorch buffer form, 1: velocity form
#define CFG_CLIP_VALUE 14     // 0: off
#define CFG_CLIP_NORM 15      // 0: off (needs a one-block update)
#define CFG_FIT_INTERCEPT 16
#define CFG_INTERCEPT_SCALE 17
#define CFG_AVERAGE_START 18  // 0: no averaging
#define CFG_BATCH_SIZE 19
#define CFG_N_SAMPLES 20
#define CFG_SHUFFLE 21        // SHUFFLE_* below
#define CFG_SEED 22           // key of the bijection (integer below 2^53)
#define CFG_GAIN_BETA 23      // batch scaling statistics (see step_rate); 0: no scaling
#define CFG_GAIN_LAMBDA 24
#define CFG_CURVATURE 25      // the loss' curvature bound (see step_rate)
#define CFG_CLIP_DLOSS 26     // bound on |dloss| per sample; 0: off
#define CFG_WITH_PENALTY 27   // 1: the epoch objective adds each step's penalty (per column)
#define CFG_MULTINOMIAL 28    // 1: softmax cross-entropy over the columns (dense X only)
#define CFG_AVERAGE_DECAY 29  // 0: uniform average; eta > 0: polynomial decay (average_rate)
#define CFG_GAIN_FLOOR 30     // 1: a batch steps at least gain(m) per-sample rates (sparse rows)
#define CFG_SIZE 32

// ---- ctx: device-resident loop state ----------------------------------------------------
#define CTX_CURSOR 0          // rows of this epoch already taken
#define CTX_STEPS 1           // optimizer steps so far
#define CTX_SAMPLES 2         // samples seen so far
#define CTX_EPOCH 3           // epochs started (keys the bijection)
#define CTX_N_AVERAGED 6      // samples averaged
#define CTX_MOMENTUM_STARTED 7
#define CTX_STEP_ETA 8        // ---- written by sgd_forward for the update of the same step
#define CTX_STEP_ROWS 9
#define CTX_STEP_AVERAGE_COUNT 10
#define CTX_STEP_AVERAGE_RATE 11
#define CTX_STEP_FIRST_MOMENTUM 12
#define CTX_SCALE 13          // sparse: W holds coef / scale (lazy L2 and decay)
#define CTX_STEP_SCALE 14     // sparse: scale after this step, before renormalisation
#define CTX_STEP_INDEX 15     // this step's number (its parity picks the L1 totals' row)
#define CTX_STEP_OLD_SCALE 16 // sparse: the scale before this step
#define CTX_STEP_FOLD_SCALE 18  // sparse with averaging: the scale W is multiplied by
#define CTX_NORMS_STALE 19    // sparse: 1 when every weight changed (recompute the norms)
#define CTX_SIZE 24

// ---- per output column state (doubles), column_state[FIELD * k + c] ---------------------
#define COLUMN_ADAPTIVE_ETA 0 // learning rate of the 'adaptive' schedule (host-set)
#define COLUMN_L1_TOTAL 1     // cumulative L1 penalty u (Tsuruoka et al.): two rows, read
                              // [step parity], written [next parity] (no read-write race)
#define COLUMN_LOSS 3         // the epoch's summed loss
#define COLUMN_PENALTY 4      // the epoch's summed n_rows * penalty(weights before the step)
#define COLUMN_NORM_SQUARES 5 // sparse: sum of stored W^2 and |W| per column, kept up to date
#define COLUMN_NORM_ABSOLUTE 6  // by the touched columns' changes (CTX_NORMS_STALE: recompute)
#define COLUMN_FIELDS 7

// summary written by sgd_end_epoch: per column loss, penalty, L1 total; probe and clock
#define SUMMARY_LOSS 0
#define SUMMARY_PENALTY 1
#define SUMMARY_L1_TOTAL 2
#define SUMMARY_COLUMN_FIELDS 3
#define SUMMARY_PROBE 0       // offsets after the 3k column fields
#define SUMMARY_STEPS 1
#define SUMMARY_SAMPLES 2
#define SUMMARY_N_AVERAGED 3
#define SUMMARY_TAIL 4

#define LOSS_HINGE 0
#define LOSS_LOG 1
#define LOSS_MODIFIED_HUBER 2
#define LOSS_SQUARED_HINGE 3
#define LOSS_SQUARED_ERROR 4
#define LOSS_HUBER 5
#define LOSS_EPSILON_INSENSITIVE 6
#define LOSS_SQUARED_EPSILON_INSENSITIVE 7

#define SCHEDULE_CONSTANT 0
#define SCHEDULE_OPTIMAL 1
#define SCHEDULE_INVSCALING 2
#define SCHEDULE_ADAPTIVE 3
#define SCHEDULE_PA1 4
#define SCHEDULE_PA2 5

#define SHUFFLE_NONE 0
#define SHUFFLE_ORDER 1       // row order read from an index array (refreshed per epoch)
#define SHUFFLE_BIJECTION 2   // keyed Feistel bijection: no memory, no per-epoch work

#define FEISTEL_ROUNDS 10
#define SPARSE_MIN_SCALE 1e-9  // renormalise the sparse weight scale below this

typedef long long index_t;

// ---- small helpers ----------------------------------------------------------------------
__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }
__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T larger(T a, T b) { return a > b ? a : b; }
template <typename T> __device__ __forceinline__ T smaller(T a, T b) { return a < b ? a : b; }
template <typename T> __device__ __forceinline__ T absolute(T a) { return a < T(0) ? -a : a; }

__device__ __forceinline__ unsigned long long splitmix64(unsigned long long x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Key of one epoch's order: a hash of the fit's seed and the epoch counter.
__device__ __forceinline__ unsigned long long epoch_key(double seed, double epoch) {
    return splitmix64((unsigned long long)seed ^ splitmix64((unsigned long long)epoch));
}

// A bijection of [0, n): a balanced Feistel network on the smallest even number of bits
// covering n, with cycle walking for values past n. Every round has its own key.
__device__ index_t permute_index(index_t i, index_t n, unsigned long long key) {
    int bits = 2;
    while (bits < 62 && (1LL << bits) < n) bits += 2;
    const int half = bits / 2;
    const unsigned long long mask = (1ull << half) - 1ull;
    unsigned long long x = (unsigned long long)i;
    do {
        unsigned long long left = x >> half, right = x & mask;
        for (int round = 0; round < FEISTEL_ROUNDS; ++round) {
            const unsigned long long f = splitmix64(right ^ (key + 0x632BE59BD9B4E019ull * round)) & mask;
            const unsigned long long next = left ^ f;
            left = right;
            right = next;
        }
        x = (left << half) | right;
    } while ((index_t)x >= n);
    return (index_t)x;
}

// The sample at position `position` of the current epoch.
__device__ __forceinline__ index_t sample_at(index_t position, const index_t* order,
                                             const double* cfg, const double* ctx) {
    const int mode = (int)cfg[CFG_SHUFFLE];
    if (mode == SHUFFLE_ORDER) return order[position];
    if (mode == SHUFFLE_BIJECTION)
        return permute_index(position, (index_t)cfg[CFG_N_SAMPLES],
                             epoch_key(cfg[CFG_SEED], ctx[CTX_EPOCH]));
    return position;
}

// Per-sample learning rate of the schedule at clock t = samples seen + 1; the 'adaptive'
// rate is one per output column (host-set between epochs).
__device__ double schedule_rate(const double* cfg, const double* column_state, int k, int c,
                                double t) {
    switch ((int)cfg[CFG_SCHEDULE]) {
        case SCHEDULE_OPTIMAL: return 1.0 / (cfg[CFG_ALPHA] * (cfg[CFG_OPTIMAL_OFFSET] + t - 1.0));
        case SCHEDULE_INVSCALING: return cfg[CFG_ETA0] / pow(t, cfg[CFG_POWER_T]);
        case SCHEDULE_ADAPTIVE: return column_state[COLUMN_ADAPTIVE_ETA * k + c];
        default: return cfg[CFG_ETA0];
    }
}

// The rate of a step over m rows from the per-sample rate eta: the linear scaling rule
// m * eta, capped at the largest step the batch's curvature allows,
// gain(m) / (curvature * beta) with gain(m) = m beta / (beta + lambda (m - 1)), never below
// eta (beta: mean squared row norm, lambda: top eigenvalue of the second moment, both fixed
// per fit). The one place the formula lives; beta = 0 or one row: eta itself.
__device__ __forceinline__ double step_rate(double eta, double m, const double* cfg) {
    const double beta = cfg[CFG_GAIN_BETA], lam = cfg[CFG_GAIN_LAMBDA];
    if (!(beta > 0.0) || m <= 1.0) return eta;
    const double gain = m * beta / (beta + lam * (m - 1.0));
    const double best = gain / (cfg[CFG_CURVATURE] * beta);
    const double floor = cfg[CFG_GAIN_FLOOR] != 0.0 ? gain * eta : eta;
    const double capped = best > floor ? best : floor;
    return m * eta < capped ? m * eta : capped;
}

// The rate of column c for this step (per column only with diverged 'adaptive' rates).
__device__ __forceinline__ double column_rate(const double* cfg, const double* ctx,
                                              const double* column_state, int k, int c) {
    if ((int)cfg[CFG_SCHEDULE] != SCHEDULE_ADAPTIVE) return ctx[CTX_STEP_ETA];
    return step_rate(column_state[COLUMN_ADAPTIVE_ETA * k + c], ctx[CTX_STEP_ROWS], cfg);
}

// Block 0 of an update: the next parity's L1 totals, u + eta_c * l1 per column.
__device__ __forceinline__ void advance_l1_totals(const double* cfg, const double* ctx,
                                                  double* column_state, int k, int step) {
    double* now = column_state + (COLUMN_L1_TOTAL + (step & 1)) * k;
    double* next = column_state + (COLUMN_L1_TOTAL + ((step + 1) & 1)) * k;
    for (int c = threadIdx.x; c < k; c += blockDim.x)
        next[c] = now[c] + column_rate(cfg, ctx, column_state, k, c) * cfg[CFG_L1];
}

// The step's scalars, written by the first thread of a forward kernel for the update.
__device__ void begin_step(const double* cfg, double* ctx, const double* column_state, int k,
                           int n_rows) {
    const double eta = step_rate(schedule_rate(cfg, column_state, k, 0, ctx[CTX_SAMPLES] + 1.0),
                                 (double)n_rows, cfg);
    ctx[CTX_STEP_ETA] = n_rows > 0 ? eta : 0.0;
    ctx[CTX_STEP_ROWS] = (double)n_rows;
    ctx[CTX_STEP_INDEX] = ctx[CTX_STEPS];
    ctx[CTX_STEP_FIRST_MOMENTUM] = ctx[CTX_MOMENTUM_STARTED] == 0.0 ? 1.0 : 0.0;
    // averaging counts samples: the rows of this step at or after average_start
    const double seen = ctx[CTX_SAMPLES] + n_rows, start = cfg[CFG_AVERAGE_START];
    double counted = 0.0;
    if (n_rows > 0 && start > 0.0 && seen >= start)
        counted = seen - start + 1.0 < n_rows ? seen - start + 1.0 : (double)n_rows;
    ctx[CTX_STEP_AVERAGE_COUNT] = counted;
    // uniform, or Shamir and Zhang's polynomial decay (the reference engine's average_rate)
    const double averaged = ctx[CTX_N_AVERAGED] + counted, decay = cfg[CFG_AVERAGE_DECAY];
    double rate = counted > 0.0 ? counted / averaged : 0.0;
    if (counted > 0.0 && decay != 0.0) {
        rate = (decay + 1.0) * counted / (averaged + decay * counted);
        if (rate > 1.0) rate = 1.0;
    }
    ctx[CTX_STEP_AVERAGE_RATE] = rate;
}

// Sum over the block (fixed order), result broadcast to every thread.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
    const int tid = threadIdx.x;
    scratch[tid] = v;
    __syncthreads();
    for (int width = 1; width < (int)blockDim.x; width *= 2) {
        T other = T(0);
        const bool takes = (tid % (2 * width)) == 0 && tid + width < (int)blockDim.x;
        if (takes) other = scratch[tid + width];
        __syncthreads();
        if (takes) scratch[tid] += other;
        __syncthreads();
    }
    const T total = scratch[0];
    __syncthreads();
    return total;
}

// Per column, sum of w^2 and |w| over the d weights w = scale * W[j] * factor[j], into the
// COLUMN_NORM_* rows of column_state, in one pass: `lanes` threads per column, then thread c
// adds its column's lanes in order (deterministic). scratch holds 2 * blockDim doubles.
template <typename T>
__device__ void weight_norms(const T* W, const T* factor, double scale, int d, int k,
                             double* scratch, double* column_state) {
    const int tid = threadIdx.x, threads = blockDim.x;
    for (int first = 0; first < k; first += threads) {  // more columns than threads: groups
        const int group = k - first < threads ? k - first : threads;
        const int lanes = threads / group, c = first + tid % group, lane = tid / group;
        double squares = 0.0, sum_abs = 0.0;
        if (lane < lanes) {
            for (int j = lane; j < d; j += lanes) {
                const double w = scale * (double)W[(index_t)j * k + c] *
                                 (factor != nullptr ? (double)factor[j] : 1.0);
                squares += w * w;
                sum_abs += w < 0.0 ? -w : w;
            }
        }
        scratch[tid] = squares;
        scratch[threads + tid] = sum_abs;
        __syncthreads();
        if (tid < group) {
            double total_squares = 0.0, total_abs = 0.0;
            for (int l = 0; l < lanes; ++l) {
                total_squares += scratch[l * group + tid];
                total_abs += scratch[threads + l * group + tid];
            }
            column_state[COLUMN_NORM_SQUARES * k + first + tid] = total_squares;
            column_state[COLUMN_NORM_ABSOLUTE * k + first + tid] = total_abs;
        }
        __syncthreads();
    }
}

// Each column's penalty of the model's weights before the step (W * inv_scale with
// preconditioning), times the step's rows, added to the epoch's total (one extra block of
// a dense forward launch).
template <typename T>
__device__ void add_step_penalty(const T* W, const T* factor, int d, int k, int n_rows,
                                 const double* cfg, double* column_state, double* scratch) {
    weight_norms(W, factor, 1.0, d, k, scratch, column_state);
    const double l2 = cfg[CFG_L2], l1 = cfg[CFG_L1];
    for (int c = threadIdx.x; n_rows > 0 && c < k; c += blockDim.x)
        column_state[COLUMN_PENALTY * k + c] +=
            n_rows * (0.5 * l2 * column_state[COLUMN_NORM_SQUARES * k + c] +
                      l1 * column_state[COLUMN_NORM_ABSOLUTE * k + c]);
}

// Sparse: each column's penalty of scale * W before the step, times the step's rows, from
// norms of the stored W kept up to date by sgd_sparse_update (O(k) a step); recomputed,
// O(d k), only when every weight changed (epoch start, renormalisation, averaging).
template <typename T>
__device__ void sparse_step_penalty(const T* W, double* ctx, int d, int k, int n_rows,
                                    const double* cfg, double* column_state, double* scratch) {
    if (ctx[CTX_NORMS_STALE] != 0.0) {
        weight_norms(W, (const T*)nullptr, 1.0, d, k, scratch, column_state);
        if (threadIdx.x == 0) ctx[CTX_NORMS_STALE] = 0.0;
    }
    const double scale = ctx[CTX_SCALE], l2 = cfg[CFG_L2], l1 = cfg[CFG_L1];
    for (int c = threadIdx.x; n_rows > 0 && c < k; c += blockDim.x)
        column_state[COLUMN_PENALTY * k + c] +=
            n_rows * (0.5 * l2 * scale * scale * column_state[COLUMN_NORM_SQUARES * k + c] +
                      l1 * scale * column_state[COLUMN_NORM_ABSOLUTE * k + c]);
}

// Loss value and derivative with respect to the decision p, for target y.
template <typename T>
__device__ __forceinline__ T loss_and_derivative(int loss, T param, T p, T y, T* dloss) {
    switch (loss) {
        case LOSS_HINGE: {  // max(0, threshold - y p); threshold 0 is the perceptron
            const T margin = param - y * p;
            *dloss = margin >= T(0) ? -y : T(0);
            return larger(margin, T(0));
        }
        case LOSS_LOG: {
            const T z = y * p, e = exp(-absolute(z));
            *dloss = -y * (z >= T(0) ? e / (T(1) + e) : T(1) / (T(1) + e));
            return larger(-z, T(0)) + log1p(e);
        }
        case LOSS_MODIFIED_HUBER: {
            const T z = y * p;
            if (z >= T(1)) { *dloss = T(0); return T(0); }
            if (z >= T(-1)) { *dloss = T(-2) * y * (T(1) - z); return (T(1) - z) * (T(1) - z); }
            *dloss = T(-4) * y;
            return T(-4) * z;
        }
        case LOSS_SQUARED_HINGE: {
            const T margin = larger(T(1) - y * p, T(0));
            *dloss = T(-2) * y * margin;
            return margin * margin;
        }
        case LOSS_SQUARED_ERROR: {
            const T r = p - y;
            *dloss = r;
            return T(0.5) * r * r;
        }
        case LOSS_HUBER: {
            const T r = p - y, a = absolute(r);
            *dloss = smaller(larger(r, -param), param);
            return a <= param ? T(0.5) * r * r : param * a - T(0.5) * param * param;
        }
        case LOSS_EPSILON_INSENSITIVE: {
            const T r = y - p;
            *dloss = T(r < -param ? 1 : 0) - T(r > param ? 1 : 0);
            return larger(absolute(r) - param, T(0));
        }
        default: {  // LOSS_SQUARED_EPSILON_INSENSITIVE
            const T r = y - p, excess = larger(absolute(r) - param, T(0));
            *dloss = r > param ? T(-2) * (r - param) : (r < -param ? T(-2) * (r + param) : T(0));
            return excess * excess;
        }
    }
}

// One row and column: the loss (unweighted, as the stopping rule sums it) and, in *dl, the
// derivative: replaced by the passive-aggressive step over eta0, or clipped to
// +-CFG_CLIP_DLOSS; then times the sample and class weights.
template <typename T>
__device__ __forceinline__ T row_derivative(const double* cfg, T p, T y, T norm2, int c,
                                            index_t row, const T* sample_weight,
                                            const T* positive_weight, const T* negative_weight,
                                            T* dl) {
    const int loss = (int)cfg[CFG_LOSS], schedule = (int)cfg[CFG_SCHEDULE];
    const T v = loss_and_derivative<T>(loss, (T)cfg[CFG_LOSS_PARAM], p, y, dl);
    if (schedule == SCHEDULE_PA1 || schedule == SCHEDULE_PA2) {
        const T eta0 = (T)cfg[CFG_ETA0];
        T step;
        if (schedule == SCHEDULE_PA1) step = norm2 > T(0) ? smaller(v / norm2, eta0) : T(0);
        else step = v / (norm2 + (T)(0.5 / cfg[CFG_ETA0]));
        const T sign = loss == LOSS_HINGE ? y : (y - p < T(0) ? T(-1) : T(1));
        *dl = -(step * sign) / eta0;
    } else if (cfg[CFG_CLIP_DLOSS] > 0.0) {
        const T bound = (T)cfg[CFG_CLIP_DLOSS];
        *dl = smaller(larger(*dl, -bound), bound);
    }
    if (positive_weight != nullptr) *dl = *dl * (y > T(0) ? positive_weight[c] : negative_weight[c]);
    if (sample_weight != nullptr) *dl = *dl * sample_weight[row];
    return v;
}

// One row of the multinomial (softmax cross-entropy) loss, in place: decisions p in, the
// row's loss out in its true class's column (zeros elsewhere); g = (softmax(p) - onehot),
// bounded like every derivative, times the true class's weight and the batch mean.
template <typename T>
__device__ void softmax_row(const double* cfg, T* p, const T* y, T* g, int k, index_t row,
                            const T* sample_weight, const T* positive_weight,
                            const T* negative_weight, const T* active, T inv_rows) {
    T top = p[0];
    for (int c = 1; c < k; ++c) top = larger(top, p[c]);
    T total = T(0), true_shifted = T(0), weight = T(1);
    for (int c = 0; c < k; ++c) {
        total += exp(p[c] - top);
        if (y[c] > T(0)) {
            true_shifted = p[c] - top;
            if (positive_weight != nullptr) weight = positive_weight[c];
        }
    }
    if (sample_weight != nullptr) weight = weight * sample_weight[row];
    const T log_total = log(total), bound = (T)cfg[CFG_CLIP_DLOSS];
    for (int c = 0; c < k; ++c) {
        const T onehot = y[c] > T(0) ? T(1) : T(0);
        T dl = exp(p[c] - top) / total - onehot;
        if (bound > T(0)) dl = smaller(larger(dl, -bound), bound);
        g[c] = active[c] != T(0) ? dl * weight * inv_rows : T(0);
        p[c] = (log_total - true_shifted) * onehot;
    }
}

// ---- kernels ------------------------------------------------------------------------------

// One block per `rows` rows of the batch: gather the rows (in epoch order; centred and
// scaled when preconditioned), decisions, loss per column and the weighted derivative (batch
// mean folded in), and the block's partial gradient rows^T g into partial[block]. No float
// atomics: sgd_update sums the partials in order. With CFG_WITH_PENALTY one more block adds
// the step's penalty to the epoch's objective.
template <typename TX, typename T>
__global__ void sgd_forward(const TX* __restrict__ X, const T* __restrict__ Y,
                            const T* __restrict__ sample_weight, const T* __restrict__ positive_weight,
                            const T* __restrict__ negative_weight, const index_t* __restrict__ order,
                            const T* __restrict__ mean, const T* __restrict__ inv_scale,
                            const T* __restrict__ W, const T* __restrict__ b,
                            const T* __restrict__ active, T* __restrict__ partial,
                            T* __restrict__ partial_b, T* __restrict__ loss_part,
                            const double* __restrict__ cfg, double* ctx,
                            double* __restrict__ column_state, int d, int k, int rows, int blocks) {
    SHARED_MEMORY(unsigned char, smem);
    const int threads = blockDim.x, tid = threadIdx.x;
    const index_t n = (index_t)cfg[CFG_N_SAMPLES];
    const index_t cursor = (index_t)ctx[CTX_CURSOR];
    const index_t batch = (index_t)cfg[CFG_BATCH_SIZE];
    const int n_rows = (int)(cursor >= n ? 0 : (n - cursor < batch ? n - cursor : batch));
    if ((int)blockIdx.x == blocks) {  // the penalty block
        add_step_penalty(W, inv_scale, d, k, n_rows, cfg, column_state,
                         reinterpret_cast<double*>(smem));
        return;
    }
    const int pairs_max = rows * k;
    index_t* sample = reinterpret_cast<index_t*>(smem);
    T* x = reinterpret_cast<T*>(smem + sizeof(index_t) * rows);   // rows x d
    T* dot = x + (size_t)rows * d;                                 // pairs x slices
    T* g = dot + (pairs_max > threads ? pairs_max : threads);      // rows x k
    T* value = g + pairs_max;                                      // rows x k
    T* target = value + pairs_max;                                 // rows x k
    T* norm2 = target + pairs_max;                                 // rows
    const int first = blockIdx.x * rows;
    const int mine = n_rows - first < 0 ? 0 : (n_rows - first < rows ? n_rows - first : rows);
    if (blockIdx.x == 0 && tid == 0) begin_step(cfg, ctx, column_state, k, n_rows);

    for (int r = tid; r < mine; r += threads) sample[r] = sample_at(cursor + first + r, order, cfg, ctx);
    __syncthreads();
    for (int e = tid; e < mine * d; e += threads) {
        const int r = e / d, j = e - r * d;
        T v = (T)widen(X[sample[r] * (index_t)d + j]);
        if (mean != nullptr) v = (v - mean[j]) * inv_scale[j];
        x[e] = v;
    }
    for (int e = tid; e < mine * k; e += threads) {
        const int r = e / k, c = e - r * k;
        target[e] = Y[sample[r] * (index_t)k + c];
    }
    __syncthreads();

    // decisions: each (row, column) pair is summed by `slices` threads, then in slice order
    const int pairs = mine * k;
    const int slices = pairs > 0 && pairs < threads ? threads / pairs : 1;
    for (int e = tid; e < pairs * slices; e += threads) {
        const int pair = e / slices, slice = e - pair * slices;
        const int r = pair / k, c = pair - r * k;
        T acc = T(0);
        for (int j = slice; j < d; j += slices) acc += x[r * d + j] * W[(index_t)j * k + c];
        dot[e] = acc;
    }
    const int schedule = (int)cfg[CFG_SCHEDULE];
    const bool passive_aggressive = schedule == SCHEDULE_PA1 || schedule == SCHEDULE_PA2;
    if (passive_aggressive) {
        for (int r = tid; r < mine; r += threads) {
            T s = T(0);
            for (int j = 0; j < d; ++j) s += x[r * d + j] * x[r * d + j];
            norm2[r] = s;
        }
    }
    __syncthreads();

    const T inv_rows = n_rows > 0 ? (T)(1.0 / n_rows) : T(0);
    const bool multinomial = cfg[CFG_MULTINOMIAL] != 0.0;
    for (int pair = tid; pair < pairs; pair += threads) {
        const int r = pair / k, c = pair - r * k;
        T p = T(0);
        for (int s = 0; s < slices; ++s) p += dot[pair * slices + s];
        p += b[c];
        if (multinomial) {  // the row's softmax needs every column's decision first
            value[pair] = p;
            continue;
        }
        T dl;
        value[pair] = row_derivative(cfg, p, target[pair], norm2[r], c, sample[r], sample_weight,
                                     positive_weight, negative_weight, &dl);
        g[pair] = active[c] != T(0) ? dl * inv_rows : T(0);
    }
    if (multinomial) {
        __syncthreads();
        for (int r = tid; r < mine; r += threads)
            softmax_row(cfg, value + r * k, target + r * k, g + r * k, k, sample[r],
                        sample_weight, positive_weight, negative_weight, active, inv_rows);
    }
    __syncthreads();

    // partial gradient of this block, partial[block] = x^T g, and its column sums. Without
    // momentum, where the shrink max(0, 1 - lr decay) is clamped, the batch's last row's share
    // alone (the reference engine's within_batch_gradient)
    T* out = partial + (size_t)blockIdx.x * d * k;
    const double l2 = cfg[CFG_L2], decay = cfg[CFG_DECAY];
    const bool within = cfg[CFG_MOMENTUM] == 0.0 && (l2 != 0.0 || decay != 0.0) && n_rows > 1;
    const bool holds_last = mine > 0 && first + mine == n_rows;
    const double t = ctx[CTX_SAMPLES] + 1.0;
    for (int e = tid; e < d * k; e += threads) {
        const int j = e / k, c = e - j * k;
        T acc = T(0);
        for (int r = 0; r < mine; ++r) acc += x[r * d + j] * g[r * k + c];
        if (within) {
            const double factor = inv_scale != nullptr ? (double)inv_scale[j] : 1.0;
            const double lr = step_rate(schedule_rate(cfg, column_state, k, c, t), n_rows, cfg);
            if (1.0 - lr * (l2 * factor * factor + decay) <= 0.0)
                acc = holds_last ? x[(mine - 1) * d + j] * g[(mine - 1) * k + c] : T(0);
        }
        out[e] = acc;
    }
    for (int c = tid; c < k; c += threads) {
        T acc = T(0), lost = T(0);
        for (int r = 0; r < mine; ++r) {
            acc += g[r * k + c];
            lost += value[r * k + c];
        }
        partial_b[(size_t)blockIdx.x * k + c] = acc;
        loss_part[(size_t)blockIdx.x * k + c] = lost;
    }
}

// Sum of the partial gradients of element i (fixed order: deterministic).
template <typename T>
__device__ __forceinline__ T summed_gradient(const T* partial, const T* partial_b, int i, int dk,
                                             int k, int parts) {
    const bool intercept = i >= dk;
    const T* src = intercept ? partial_b + (i - dk) : partial + i;
    const size_t stride = intercept ? (size_t)k : (size_t)dk;
    T acc = T(0);
    for (int p = 0; p < parts; ++p) acc += src[p * stride];
    return acc;
}

// Sum the partials and apply the step: clip, coupled L2, decoupled decay, momentum or
// Nesterov in either form, the step, cumulative L1, the running average. Element-wise,
// so any grid works, except with clip_norm, which needs the whole gradient's norm first:
// the launcher then uses one block (and SHARED_MEMORY holds one T per thread). With
// preconditioning the penalties act on the model's weights W * inv_scale: per feature, L2
// is l2 * inv_scale^2 and the L1 threshold u * inv_scale.
template <typename T>
__global__ void sgd_update(T* __restrict__ W, T* __restrict__ b, T* __restrict__ buffer,
                           T* __restrict__ buffer_b, T* __restrict__ l1_applied,
                           T* __restrict__ average, T* __restrict__ average_b,
                           const T* __restrict__ inv_scale, const T* __restrict__ partial,
                           const T* __restrict__ partial_b, const T* __restrict__ loss_part,
                           const T* __restrict__ active, const double* __restrict__ cfg,
                           double* ctx, double* __restrict__ column_state, int d, int k,
                           int parts) {
    // only STEP_* fields of ctx are read: block 0 advances the clock while others run
    const int dk = d * k, total = dk + k;
    const bool valid = ctx[CTX_STEP_ROWS] > 0.0;
    const int step = (int)ctx[CTX_STEP_INDEX];
    const double clip_norm = cfg[CFG_CLIP_NORM], clip_value = cfg[CFG_CLIP_VALUE];
    T scale = T(1);
    if (clip_norm > 0.0) {  // one block: the joint norm of (coef, intercept) gradients
        SHARED_MEMORY(T, scratch);
        T squares = T(0);
        for (int i = threadIdx.x; i < total; i += blockDim.x) {
            const T gi = summed_gradient(partial, partial_b, i, dk, k, parts);
            squares += gi * gi;
        }
        const T norm = sqrt(block_sum(squares, scratch));
        scale = (T)clip_norm / larger(norm, (T)clip_norm);
    }
    const double mu = cfg[CFG_MOMENTUM], l1 = cfg[CFG_L1];
    const bool first = ctx[CTX_STEP_FIRST_MOMENTUM] != 0.0;
    const bool nesterov = cfg[CFG_NESTEROV] != 0.0, velocity = cfg[CFG_VELOCITY_FORM] != 0.0;
    const bool fit_intercept = cfg[CFG_FIT_INTERCEPT] != 0.0;
    const double average_rate = ctx[CTX_STEP_AVERAGE_RATE];
    const double* l1_now = column_state + (COLUMN_L1_TOTAL + (step & 1)) * k;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; valid && i < total;
         i += gridDim.x * blockDim.x) {
        const bool intercept = i >= dk;
        const int c = intercept ? i - dk : i % k;
        if (intercept && !fit_intercept) continue;
        T grad = summed_gradient(partial, partial_b, i, dk, k, parts);
        if (clip_norm > 0.0) grad = grad * scale;
        if (clip_value > 0.0) grad = smaller(larger(grad, (T)-clip_value), (T)clip_value);
        const double eta = column_rate(cfg, ctx, column_state, k, c);
        const double lr = intercept ? eta * cfg[CFG_INTERCEPT_SCALE] : eta;
        const double factor = (!intercept && inv_scale != nullptr) ? (double)inv_scale[i / k] : 1.0;
        const double l2 = intercept ? 0.0 : cfg[CFG_L2] * factor * factor;
        const double decay = intercept ? 0.0 : cfg[CFG_DECAY];
        T w = intercept ? b[i - dk] : W[i];
        if (mu == 0.0) {
            // both decays fold into one rescaling, clamped at zero (never a sign flip)
            if (l2 != 0.0 || decay != 0.0) w = w * (T)larger(1.0 - lr * (l2 + decay), 0.0);
            w = w - (T)lr * grad;
        } else {
            if (l2 != 0.0) grad = grad + (T)l2 * w;
            if (decay != 0.0) w = w * (T)larger(1.0 - lr * decay, 0.0);
            T* slot = intercept ? buffer_b + (i - dk) : buffer + i;
            if (!velocity) {
                const T m = first ? grad : (T)mu * *slot + (T)(1.0 - cfg[CFG_DAMPENING]) * grad;
                *slot = m;
                w = w - (T)lr * (nesterov ? grad + (T)mu * m : m);
            } else {
                const T v = first ? -(T)lr * grad : (T)mu * *slot - (T)lr * grad;
                *slot = v;
                w = nesterov ? w + (T)mu * v - (T)lr * grad : w + v;
            }
        }
        if (!intercept && l1 != 0.0) {  // cumulative truncated L1: toward 0, never across
            const T u = (T)((l1_now[c] + eta * l1) * factor), q = l1_applied[i], before = w;
            if (w > T(0)) w = larger(w - (u + q), T(0));
            else if (w < T(0)) w = smaller(w + (u - q), T(0));
            l1_applied[i] = q + (w - before);
        }
        if (intercept) b[i - dk] = w;
        else W[i] = w;
        if (average_rate > 0.0) {
            T* a = intercept ? average_b + (i - dk) : average + i;
            *a = *a + (T)average_rate * (w - *a);
        }
    }
    if (blockIdx.x == 0) {
        for (int c = threadIdx.x; c < k; c += blockDim.x) {  // epoch loss, in block order
            double acc = column_state[COLUMN_LOSS * k + c];
            for (int p = 0; p < parts; ++p) acc += (double)loss_part[(size_t)p * k + c];
            column_state[COLUMN_LOSS * k + c] = acc;
        }
        if (valid) advance_l1_totals(cfg, ctx, column_state, k, step);
        if (threadIdx.x == 0 && valid) {  // advance the clock for the next step
            const double rows = ctx[CTX_STEP_ROWS];
            ctx[CTX_CURSOR] += rows;
            ctx[CTX_STEPS] += 1.0;
            ctx[CTX_SAMPLES] += rows;
            ctx[CTX_N_AVERAGED] += ctx[CTX_STEP_AVERAGE_COUNT];
            if (mu != 0.0) ctx[CTX_MOMENTUM_STARTED] = 1.0;
        }
    }
}

// End of an epoch (one block): per column loss, penalty and L1 total; a finiteness probe
// (sum of W and b in T, so an overflow shows); the clock. Then rewind for the next epoch.
template <typename T>
__global__ void sgd_end_epoch(const T* __restrict__ W, const T* __restrict__ b,
                              double* __restrict__ column_state, double* __restrict__ summary,
                              double* ctx, int d, int k) {
    SHARED_MEMORY(double, scratch);
    T probe = T(0);
    for (int i = threadIdx.x; i < d * k; i += blockDim.x) probe += W[i];
    for (int c = threadIdx.x; c < k; c += blockDim.x) probe += b[c];
    const double probe_total = block_sum((double)probe, scratch);
    if (threadIdx.x != 0) return;
    const int parity = (int)ctx[CTX_STEPS] & 1;
    for (int c = 0; c < k; ++c) {
        double* out = summary + SUMMARY_COLUMN_FIELDS * c;
        out[SUMMARY_LOSS] = column_state[COLUMN_LOSS * k + c];
        out[SUMMARY_PENALTY] = column_state[COLUMN_PENALTY * k + c];
        out[SUMMARY_L1_TOTAL] = column_state[(COLUMN_L1_TOTAL + parity) * k + c];
        column_state[COLUMN_LOSS * k + c] = 0.0;
        column_state[COLUMN_PENALTY * k + c] = 0.0;
    }
    double* tail = summary + SUMMARY_COLUMN_FIELDS * k;
    tail[SUMMARY_PROBE] = probe_total;
    tail[SUMMARY_STEPS] = ctx[CTX_STEPS];
    tail[SUMMARY_SAMPLES] = ctx[CTX_SAMPLES];
    tail[SUMMARY_N_AVERAGED] = ctx[CTX_N_AVERAGED];
    ctx[CTX_CURSOR] = 0.0;
    ctx[CTX_EPOCH] += 1.0;
    ctx[CTX_SCALE] = 1.0;  // sgd_sparse_fold has folded it into W
    ctx[CTX_NORMS_STALE] = 1.0;
}

// The epoch's row order as the kernels see it (tests, and the reference engine's twin).
__global__ void sgd_epoch_order(index_t* __restrict__ out, const double* __restrict__ cfg,
                                const double* __restrict__ ctx, index_t n) {
    for (index_t i = blockIdx.x * (index_t)blockDim.x + threadIdx.x; i < n;
         i += (index_t)gridDim.x * blockDim.x)
        out[i] = sample_at(i, nullptr, cfg, ctx);
}

// ---- sparse CSR ---------------------------------------------------------------------------
// Lazy updates, as the reference engine's sparse path: W holds coef / scale (coupled L2
// without momentum and decoupled decay only change the scale), the cumulative L1 penalty
// reaches a column when it next appears, momentum moves only the columns a batch touches.
// A step is two launches and no host work: sgd_sparse_forward (decisions, derivative, the
// gradient scattered into a dense scratch, the touched columns listed) and sgd_sparse_update
// (the touched columns, the intercept, and the scale's renormalisation when it is due);
// once averaging has begun, sgd_sparse_average folds the scale and every pending L1 into W
// and updates the averages (a full pass, as the reference engine does). The scatter uses
// float atomics: the sum over the rows of a batch that share a column is in launch order
// on the CPU emulation, in any order on a GPU.

// Pending cumulative L1 of one weight: toward 0 by (total - applied), never across.
template <typename T>
__device__ __forceinline__ T l1_caught_up(T w, T total, T* applied) {
    const T before = w, q = *applied;
    if (w > T(0)) w = larger(w - (total + q), T(0));
    else if (w < T(0)) w = smaller(w + (total - q), T(0));
    *applied = q + (w - before);
    return w;
}

// The weight the model has now: scale * stored, pending L1 applied (not stored).
template <typename T>
__device__ __forceinline__ T current_weight(const T* W, const T* l1_applied, size_t i, T scale,
                                           T total) {
    T w = scale * W[i];
    if (l1_applied != nullptr) {
        T q = l1_applied[i];
        w = l1_caught_up(w, total, &q);
    }
    return w;
}

template <typename TX, typename T>
__global__ void sgd_sparse_forward(const int* __restrict__ indptr, const int* __restrict__ indices,
                                   const TX* __restrict__ values, const T* __restrict__ Y,
                                   const T* __restrict__ sample_weight,
                                   const T* __restrict__ positive_weight,
                                   const T* __restrict__ negative_weight,
                                   const index_t* __restrict__ order, const T* __restrict__ W,
                                   const T* __restrict__ b, const T* __restrict__ l1_applied,
                                   const T* __restrict__ active, T* __restrict__ g_out,
                                   T* __restrict__ loss_part, T* __restrict__ gradient,
                                   int* __restrict__ stamp, int* __restrict__ touched,
                                   int* __restrict__ counters, const double* __restrict__ cfg,
                                   double* ctx, double* __restrict__ column_state, int d, int k,
                                   int rows, int blocks) {
    SHARED_MEMORY(unsigned char, smem);
    const int threads = blockDim.x, tid = threadIdx.x;
    const index_t n = (index_t)cfg[CFG_N_SAMPLES];
    const index_t cursor = (index_t)ctx[CTX_CURSOR];
    const index_t batch = (index_t)cfg[CFG_BATCH_SIZE];
    const int n_rows = (int)(cursor >= n ? 0 : (n - cursor < batch ? n - cursor : batch));
    if ((int)blockIdx.x == blocks) {  // the penalty block: the stored weights times the scale
        sparse_step_penalty(W, ctx, d, k, n_rows, cfg, column_state,
                            reinterpret_cast<double*>(smem));
        return;
    }
    index_t* sample = reinterpret_cast<index_t*>(smem);
    T* g = reinterpret_cast<T*>(smem + sizeof(index_t) * rows);  // rows x k
    T* value = g + rows * k;                                       // rows x k
    const int first = blockIdx.x * rows;
    const int mine = n_rows - first < 0 ? 0 : (n_rows - first < rows ? n_rows - first : rows);
    const int step = (int)ctx[CTX_STEPS];
    const double lazy_decay = cfg[CFG_DECAY] + (cfg[CFG_MOMENTUM] != 0.0 ? 0.0 : cfg[CFG_L2]);
    if (blockIdx.x == 0 && tid == 0) {
        begin_step(cfg, ctx, column_state, k, n_rows);
        const double shrink = larger(1.0 - ctx[CTX_STEP_ETA] * lazy_decay, 0.0);
        ctx[CTX_STEP_SCALE] = n_rows > 0 ? ctx[CTX_SCALE] * shrink : ctx[CTX_SCALE];
        ctx[CTX_STEP_OLD_SCALE] = ctx[CTX_SCALE];
    }
    for (int r = tid; r < mine; r += threads) sample[r] = sample_at(cursor + first + r, order, cfg, ctx);
    __syncthreads();
    const T scale = (T)ctx[CTX_SCALE];
    const double* l1_now = column_state + (COLUMN_L1_TOTAL + (step & 1)) * k;
    const T inv_rows = n_rows > 0 ? (T)(1.0 / n_rows) : T(0);
    for (int pair = tid; pair < mine * k; pair += threads) {
        const int r = pair / k, c = pair - r * k;
        const index_t row = sample[r];
        const T total = (T)l1_now[c];
        T p = T(0), norm2 = T(0);
        for (int e = indptr[row]; e < indptr[row + 1]; ++e) {
            const T x = (T)widen(values[e]);
            p += x * current_weight(W, l1_applied, (size_t)indices[e] * k + c, scale, total);
            norm2 += x * x;
        }
        p += b[c];
        T dl;
        value[pair] = row_derivative(cfg, p, Y[row * (index_t)k + c], norm2, c, row,
                                     sample_weight, positive_weight, negative_weight, &dl);
        g[pair] = active[c] != T(0) ? dl * inv_rows : T(0);
        g_out[(size_t)(first + r) * k + c] = g[pair];
    }
    __syncthreads();
    int* count = counters + (step & 1);
    // without momentum, where the shrink is clamped, the last row's share alone (sgd_forward)
    const bool within = cfg[CFG_MOMENTUM] == 0.0 && lazy_decay != 0.0 && n_rows > 1;
    for (int pair = tid; pair < mine * k; pair += threads) {
        const int r = pair / k, c = pair - r * k;
        const index_t row = sample[r];
        T share = g[pair];
        if (within && first + r + 1 < n_rows) {
            const double lr = step_rate(
                schedule_rate(cfg, column_state, k, c, ctx[CTX_SAMPLES] + 1.0), n_rows, cfg);
            if (1.0 - lr * lazy_decay <= 0.0) share = T(0);
        }
        for (int e = indptr[row]; e < indptr[row + 1]; ++e) {
            const int col = indices[e];
            atomicAdd(&gradient[(size_t)col * k + c], (T)widen(values[e]) * share);
            if (c == 0 && atomicExch(&stamp[col], step) != step) touched[atomicAdd(count, 1)] = col;
        }
    }
    for (int c = tid; c < k; c += threads) {
        T lost = T(0);
        for (int r = 0; r < mine; ++r) lost += value[r * k + c];
        loss_part[(size_t)blockIdx.x * k + c] = lost;
    }
}

// The touched columns (every output) and the intercept take their step.
template <typename T>
__global__ void sgd_sparse_update(T* __restrict__ W, T* __restrict__ b, T* __restrict__ buffer,
                                  T* __restrict__ buffer_b, T* __restrict__ l1_applied,
                                  T* __restrict__ gradient, const T* __restrict__ g_rows,
                                  const int* __restrict__ touched, const int* __restrict__ stamp,
                                  int* __restrict__ counters,
                                  const T* __restrict__ loss_part, const T* __restrict__ active,
                                  const double* __restrict__ cfg, double* ctx,
                                  double* __restrict__ column_state, int d, int k, int parts) {
    // only STEP_* fields are read: block 0 advances the clock fields while others run
    const int step = (int)ctx[CTX_STEP_INDEX];
    const int count = counters[step & 1];
    const double eta = ctx[CTX_STEP_ETA];
    const int n_rows = (int)ctx[CTX_STEP_ROWS];
    const bool valid = n_rows > 0;
    const double clip_value = cfg[CFG_CLIP_VALUE], mu = cfg[CFG_MOMENTUM];
    const bool momentum = mu != 0.0, velocity = cfg[CFG_VELOCITY_FORM] != 0.0;
    const bool nesterov = cfg[CFG_NESTEROV] != 0.0;
    const double lazy_decay = cfg[CFG_DECAY] + (momentum ? 0.0 : cfg[CFG_L2]);
    const double coupled = momentum ? cfg[CFG_L2] : 0.0;
    const T scale = (T)ctx[CTX_STEP_OLD_SCALE];
    const double new_scale = ctx[CTX_STEP_SCALE];
    const double stored_scale = new_scale < SPARSE_MIN_SCALE ? 1.0 : new_scale;
    const double* l1_now = column_state + (COLUMN_L1_TOTAL + (step & 1)) * k;
    const bool l1 = cfg[CFG_L1] != 0.0;
    const bool track_norms = cfg[CFG_WITH_PENALTY] != 0.0;
    const double clip_norm = cfg[CFG_CLIP_NORM];
    T norm_scale = T(1);
    if (clip_norm > 0.0) {  // one block: the joint norm of the touched and intercept gradients
        SHARED_MEMORY(T, scratch);
        T squares = T(0);
        for (int i = threadIdx.x; i < count * k; i += blockDim.x) {
            const T gi = gradient[(size_t)touched[i / k] * k + i % k];
            squares += gi * gi;
        }
        for (int c = threadIdx.x; c < k; c += blockDim.x) {
            T gi = T(0);
            for (int r = 0; r < n_rows; ++r) gi += g_rows[(size_t)r * k + c];
            squares += gi * gi;
        }
        const T norm = sqrt(block_sum(squares, scratch));
        norm_scale = (T)clip_norm / larger(norm, (T)clip_norm);
    }
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; valid && i < count * k;
         i += gridDim.x * blockDim.x) {
        const int c = i % k;
        const size_t at = (size_t)touched[i / k] * k + c;
        T grad = gradient[at];
        gradient[at] = T(0);  // the scratch is clean for the next step
        if (clip_norm > 0.0) grad = grad * norm_scale;
        if (clip_value > 0.0) grad = smaller(larger(grad, (T)-clip_value), (T)clip_value);
        const T old_total = (T)l1_now[c], new_total = (T)(l1_now[c] + eta * cfg[CFG_L1]);
        T w = scale * W[at];
        if (l1) w = l1_caught_up(w, old_total, &l1_applied[at]);
        if (!momentum) {
            if (lazy_decay != 0.0) w = w * (T)larger(1.0 - eta * lazy_decay, 0.0);
            w = w - (T)eta * grad;
        } else {
            if (coupled != 0.0) grad = grad + (T)coupled * w;
            if (lazy_decay != 0.0) w = w * (T)larger(1.0 - eta * lazy_decay, 0.0);
            if (!velocity) {  // lazy buffers start at zero: no first-step special case
                const T m = (T)mu * buffer[at] + (T)(1.0 - cfg[CFG_DAMPENING]) * grad;
                buffer[at] = m;
                w = w - (T)eta * (nesterov ? grad + (T)mu * m : m);
            } else {
                const T v = (T)mu * buffer[at] - (T)eta * grad;
                buffer[at] = v;
                w = nesterov ? w + (T)mu * v - (T)eta * grad : w + v;
            }
        }
        if (l1) w = l1_caught_up(w, new_total, &l1_applied[at]);
        const T stored = w / (T)stored_scale;
        if (track_norms) {  // the column's norms follow its change (atomics: any order)
            const T before = W[at];
            atomicAdd(&column_state[COLUMN_NORM_SQUARES * k + c],
                      (double)stored * (double)stored - (double)before * (double)before);
            atomicAdd(&column_state[COLUMN_NORM_ABSOLUTE * k + c],
                      (double)absolute(stored) - (double)absolute(before));
        }
        W[at] = stored;
    }
    if (valid && new_scale < SPARSE_MIN_SCALE) {
        // renormalise: the untouched columns take the scale into their stored weights (the
        // touched ones, disjoint from them, were just stored at scale one)
        for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)d * k;
             i += (size_t)gridDim.x * blockDim.x)
            if (stamp[i / k] != step) W[i] = W[i] * (T)new_scale;
    }
    if (blockIdx.x != 0) return;
    if (valid) advance_l1_totals(cfg, ctx, column_state, k, step);
    for (int c = threadIdx.x; c < k; c += blockDim.x) {
        double lost = column_state[COLUMN_LOSS * k + c];
        for (int p = 0; p < parts; ++p) lost += (double)loss_part[(size_t)p * k + c];
        column_state[COLUMN_LOSS * k + c] = lost;
        if (!valid || cfg[CFG_FIT_INTERCEPT] == 0.0) continue;
        T grad = T(0);
        for (int r = 0; r < n_rows; ++r) grad += g_rows[(size_t)r * k + c];
        if (clip_norm > 0.0) grad = grad * norm_scale;
        if (clip_value > 0.0) grad = smaller(larger(grad, (T)-clip_value), (T)clip_value);
        const double lr = eta * cfg[CFG_INTERCEPT_SCALE];
        T w = b[c];
        if (!momentum) {
            w = w - (T)lr * grad;
        } else if (!velocity) {  // the intercept's buffer starts at its first gradient
            const bool first = ctx[CTX_STEP_FIRST_MOMENTUM] != 0.0;
            const T m = first ? grad : (T)mu * buffer_b[c] + (T)(1.0 - cfg[CFG_DAMPENING]) * grad;
            buffer_b[c] = m;
            w = w - (T)lr * (nesterov ? grad + (T)mu * m : m);
        } else {
            const bool first = ctx[CTX_STEP_FIRST_MOMENTUM] != 0.0;
            const T v = first ? -(T)lr * grad : (T)mu * buffer_b[c] - (T)lr * grad;
            buffer_b[c] = v;
            w = nesterov ? w + (T)mu * v - (T)lr * grad : w + v;
        }
        b[c] = w;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        counters[(step + 1) & 1] = 0;  // the next step's list (the previous step's is done)
        if (valid) {
            ctx[CTX_CURSOR] += n_rows;
            ctx[CTX_STEPS] += 1.0;
            ctx[CTX_SAMPLES] += n_rows;
            const bool averaging = ctx[CTX_STEP_AVERAGE_RATE] > 0.0;
            ctx[CTX_STEP_FOLD_SCALE] = stored_scale;  // sgd_sparse_average folds it in
            // every weight changes when renormalised or averaged (folded): norms afresh
            if (new_scale < SPARSE_MIN_SCALE || averaging) ctx[CTX_NORMS_STALE] = 1.0;
            ctx[CTX_SCALE] = averaging ? 1.0 : stored_scale;
            ctx[CTX_N_AVERAGED] += ctx[CTX_STEP_AVERAGE_COUNT];
            if (momentum) ctx[CTX_MOMENTUM_STARTED] = 1.0;
        }
    }
}

// Once averaging has begun: the step's scale and every column's pending L1 into W (the
// average needs every true weight), then the running averages. A no-op before.
template <typename T>
__global__ void sgd_sparse_average(T* __restrict__ W, const T* __restrict__ b,
                                   T* __restrict__ l1_applied, T* __restrict__ average,
                                   T* __restrict__ average_b, const double* __restrict__ ctx,
                                   const double* __restrict__ column_state, int d, int k) {
    const double rate = ctx[CTX_STEP_AVERAGE_RATE];
    if (!(rate > 0.0) || ctx[CTX_STEP_ROWS] <= 0.0) return;
    const T scale = (T)ctx[CTX_STEP_FOLD_SCALE];
    const double* l1_next = column_state + (COLUMN_L1_TOTAL + (((int)ctx[CTX_STEP_INDEX] + 1) & 1)) * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)d * k;
         i += (size_t)gridDim.x * blockDim.x) {
        T w = W[i] * scale;
        if (l1_applied != nullptr) w = l1_caught_up(w, (T)l1_next[i % k], &l1_applied[i]);
        W[i] = w;
        average[i] = average[i] + (T)rate * (w - average[i]);
    }
    if (blockIdx.x == 0)
        for (int c = threadIdx.x; c < k; c += blockDim.x)
            average_b[c] = average_b[c] + (T)rate * (b[c] - average_b[c]);
}

// End of a sparse epoch: the scale and every column's pending L1 into W (sgd_end_epoch,
// launched next, resets the scale to one).
template <typename T>
__global__ void sgd_sparse_fold(T* __restrict__ W, T* __restrict__ l1_applied,
                                const double* __restrict__ ctx,
                                const double* __restrict__ column_state, int d, int k) {
    const T scale = (T)ctx[CTX_SCALE];
    const double* l1_now = column_state + (COLUMN_L1_TOTAL + ((int)ctx[CTX_STEPS] & 1)) * k;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)d * k;
         i += (size_t)gridDim.x * blockDim.x) {
        T w = W[i] * scale;
        if (l1_applied != nullptr) w = l1_caught_up(w, (T)l1_now[i % k], &l1_applied[i]);
        W[i] = w;
    }
}
