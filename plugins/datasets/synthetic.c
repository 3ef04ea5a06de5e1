/* synthetic — multimodal classification data whose label information is, by construction,
 * redundant across modalities, unique to one, or synergistic (only in their combination).
 *
 * Each sample draws a label y ∈ {0…K-1} uniformly and one *interaction type*:
 *   redundant   (probability r):   every modality m shows R_m[y]
 *   unique to m (probability u_m): modality m shows U_m[y]; every other modality j shows
 *                                  D_j[c_j] with c_j uniform (a distractor)
 *   synergistic (probability s):   modality m < M-1 shows S_m[c_m], c_m uniform; the last
 *                                  shows S_{M-1}[(y - Σ c_m) mod K]: any M-1 of them are
 *                                  independent of y, all M together determine it
 *   uninformative (1 - r - Σu - s): every modality shows D_m[c_m], c_m uniform
 * R_m, U_m, S_m, D_m are K×d_m prototype tables with N(0,1) entries (distinct per modality
 * and role), and x_m = prototype + noise·ε, ε ~ N(0, I). So, up to confusion from noise, the
 * best accuracy from modality m alone is r + u_m + (1 - r - u_m)/K, and from all modalities
 * together r + Σu + s + (1 - r - Σu - s)/K.
 *
 * `task: parity` replaces all that with a task that is synergy only and that no sum of
 * per-modality functions fits (redundancy, unique and synergy are then unused):
 *   z_m ~ N(0, I_{d_m}), p_m = u_m·z_m with u_m a seeded unit vector, so p_m ~ N(0,1)
 *   q_m = floor(K·Φ(p_m)) ∈ {0…K-1}   (K equiprobable bins of p_m; Φ the normal CDF)
 *   y   = (Σ_m q_m) mod K,   x_m = z_m + noise·ε
 * For K = 2, q_m = [p_m > 0] and y = 1 exactly when sign(p_1)·sign(p_2) < 0 (XOR). The q_m
 * are independent and uniform, so any M-1 modalities say nothing about y; all M determine
 * it up to noise. A model additive over modalities, f_1(x_1) + … + f_M(x_M), reaches at most
 * 3/4 for K = 2, M = 2 (a threshold function of two binary variables agrees with XOR on at
 * most 3 of 4 cells).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

#define MAX_MODALITIES 8

typedef struct synthetic_state {
    int n_modalities;
    mf_modality_info modality[MAX_MODALITIES];
    char name[MAX_MODALITIES][64];
    float *x[MAX_MODALITIES]; /* n × d_m */
    int32_t *label;
    uint8_t *split;
    int64_t n;
} synthetic_state;

enum { ROLE_REDUNDANT, ROLE_UNIQUE, ROLE_SYNERGY, ROLE_DISTRACTOR, N_ROLES };

static const mf_param_spec synthetic_params[] = {
    {"seed", MF_TYPE_INT, "0", 0, 0, 0, NULL, "Seed of the data (independent of the run's seed)."},
    {"samples", MF_TYPE_INT, "6000", MF_PARAM_MIN | MF_PARAM_MAX, 10, 1e8, NULL,
     "Number of samples, all splits together."},
    {"classes", MF_TYPE_INT, "4", MF_PARAM_MIN | MF_PARAM_MAX, 2, 1000, NULL, "Number of classes K."},
    {"names", MF_TYPE_STRING_LIST, "[a, b]", 0, 0, 0, NULL,
     "Names of the modalities (2 to 8)."},
    {"dims", MF_TYPE_INT_LIST, "[16, 16]", MF_PARAM_MIN | MF_PARAM_MAX, 1, 65536, NULL,
     "Features per modality, one entry per modality."},
    {"redundancy", MF_TYPE_FLOAT, "0.4", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability r that every modality shows the label."},
    {"unique", MF_TYPE_FLOAT_LIST, "[0.2, 0.2]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Per modality, the probability u_m that only that modality shows the label."},
    {"synergy", MF_TYPE_FLOAT, "0.2", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability s that the label is the sum mod K of what the modalities show."},
    {"noise", MF_TYPE_FLOAT, "1.0", MF_PARAM_MIN, 0, 0, NULL,
     "Standard deviation of the Gaussian noise added to every feature."},
    {"split", MF_TYPE_FLOAT_LIST, "[0.7, 0.15, 0.15]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Fractions of samples for train, validation and test."},
    {"task", MF_TYPE_ENUM, "mixture", 0, 0, 0, "mixture|parity",
     "mixture: redundant, unique and synergistic samples as set; parity: the label is the sum "
     "mod K of binned projections of every modality (synergy only)."},
    MF_PARAM_END,
};

static void synthetic_close(mf_dataset *self)
{
    synthetic_state *s = mf_dataset_state(self);
    for (int m = 0; m < s->n_modalities; m++)
        free(s->x[m]);
    free(s->label);
    free(s->split);
}

/* Read every parameter and check what the declared ranges cannot: list lengths and sums. */
typedef struct settings {
    int64_t seed, n, k, dims[MAX_MODALITIES];
    int m, parity;
    double r, u[MAX_MODALITIES], s, noise, split[3];
} settings;

static int read_settings(const mf_config *cfg, synthetic_state *st, settings *p, mf_error *err)
{
    int n_dims, n_unique, n_split;
    if (mf_config_int(cfg, "seed", &p->seed, err) || mf_config_int(cfg, "samples", &p->n, err) ||
        mf_config_int(cfg, "classes", &p->k, err) ||
        mf_config_int_list(cfg, "dims", p->dims, MAX_MODALITIES, &n_dims, err) ||
        mf_config_float(cfg, "redundancy", &p->r, err) ||
        mf_config_float_list(cfg, "unique", p->u, MAX_MODALITIES, &n_unique, err) ||
        mf_config_float(cfg, "synergy", &p->s, err) ||
        mf_config_float(cfg, "noise", &p->noise, err) ||
        mf_config_float_list(cfg, "split", p->split, 3, &n_split, err) ||
        mf_config_enum(cfg, "task", "mixture|parity", &p->parity, err))
        return -1;
    const mf_config *names = mf_config_get(cfg, "names");
    p->m = mf_config_length(names);
    if (p->m < 2 || p->m > MAX_MODALITIES) {
        mf_config_error(err, names, "expected 2 to %d modality names, got %d", MAX_MODALITIES, p->m);
        return -1;
    }
    for (int m = 0; m < p->m; m++) {
        const char *name = mf_config_scalar(mf_config_at(names, m));
        for (int j = 0; j < m; j++)
            if (strcmp(st->name[j], name) == 0) {
                mf_config_error(err, mf_config_at(names, m), "modality '%s' is named twice", name);
                return -1;
            }
        snprintf(st->name[m], sizeof st->name[m], "%s", name);
    }
    if (n_dims != p->m) {
        mf_config_error(err, mf_config_get(cfg, "dims"),
                        "expected %d entries, one per modality, got %d", p->m, n_dims);
        return -1;
    }
    if (n_unique != p->m) {
        mf_config_error(err, mf_config_get(cfg, "unique"),
                        "expected %d entries, one per modality, got %d", p->m, n_unique);
        return -1;
    }
    double total = p->r + p->s;
    for (int m = 0; m < p->m; m++)
        total += p->u[m];
    if (total > 1 + 1e-9) {
        mf_config_error(err, cfg, "redundancy + unique + synergy must be at most 1, got %g", total);
        return -1;
    }
    if (n_split != 3 || p->split[0] + p->split[1] + p->split[2] > 1 + 1e-9 || p->split[0] <= 0) {
        mf_config_error(err, mf_config_get(cfg, "split"),
                        "expected [train, val, test] fractions with train > 0 and a sum of at "
                        "most 1");
        return -1;
    }
    return 0;
}

/* The mixture task (see the top of the file): labels and features of every sample. */
static void mixture_fill(synthetic_state *st, const settings *p,
                         float *proto[MAX_MODALITIES][N_ROLES])
{
    const int K = (int)p->k, M = p->m;
    /* Each sample from its own stream: sample i is the same whatever the sample count. */
    for (int64_t i = 0; i < p->n; i++) {
        mf_rng rng;
        mf_rng_seed_stream(&rng, (uint64_t)p->seed, (uint64_t)i);
        int y = (int)mf_rng_below(&rng, (uint64_t)K), role[MAX_MODALITIES], cls[MAX_MODALITIES];
        double t = mf_rng_uniform(&rng), acc = p->r;
        int kind = -1; /* -1 redundant, 0…M-1 unique to m, M synergy, M+1 uninformative */
        if (t >= acc) {
            kind = M + 1;
            for (int m = 0; m < M; m++)
                if (t < (acc += p->u[m])) {
                    kind = m;
                    break;
                }
            if (kind == M + 1 && t < acc + p->s)
                kind = M;
        }
        int sum = 0;
        for (int m = 0; m < M; m++) {
            int c = (int)mf_rng_below(&rng, (uint64_t)K);
            if (kind == -1) {
                role[m] = ROLE_REDUNDANT, cls[m] = y;
            } else if (kind == m) {
                role[m] = ROLE_UNIQUE, cls[m] = y;
            } else if (kind == M) {
                role[m] = ROLE_SYNERGY;
                cls[m] = m < M - 1 ? c : ((y - sum) % K + K) % K;
                sum = (sum + cls[m]) % K;
            } else {
                role[m] = ROLE_DISTRACTOR, cls[m] = c;
            }
        }
        for (int m = 0; m < M; m++) {
            const float *pr = proto[m][role[m]] + (int64_t)cls[m] * p->dims[m];
            float *x = st->x[m] + i * p->dims[m];
            for (int64_t d = 0; d < p->dims[m]; d++)
                x[d] = pr[d] + (float)p->noise * mf_rng_normal(&rng);
        }
        st->label[i] = y;
    }
}

/* The parity task (see the top of the file): labels and features of every sample. */
static int parity_fill(synthetic_state *st, const settings *p)
{
    float *u[MAX_MODALITIES] = {0};
    int ok = 1;
    for (int m = 0; m < p->m && ok; m++) { /* u_m: a seeded direction, normalised */
        mf_rng rng;
        mf_rng_seed_stream(&rng, (uint64_t)p->seed, 2000000011ull + (uint64_t)m);
        ok = (u[m] = malloc((size_t)p->dims[m] * sizeof(float))) != NULL;
        double norm = 0;
        for (int64_t d = 0; ok && d < p->dims[m]; d++) {
            u[m][d] = mf_rng_normal(&rng);
            norm += (double)u[m][d] * u[m][d];
        }
        for (int64_t d = 0; ok && d < p->dims[m]; d++)
            u[m][d] = (float)(u[m][d] / sqrt(norm));
    }
    for (int64_t i = 0; ok && i < p->n; i++) {
        mf_rng rng; /* one stream per sample, as in the mixture task */
        mf_rng_seed_stream(&rng, (uint64_t)p->seed, (uint64_t)i);
        int64_t sum = 0;
        for (int m = 0; m < p->m; m++) {
            float *x = st->x[m] + i * p->dims[m];
            double proj = 0;
            for (int64_t d = 0; d < p->dims[m]; d++) {
                float z = mf_rng_normal(&rng);
                proj += (double)u[m][d] * z;
                x[d] = z + (float)p->noise * mf_rng_normal(&rng);
            }
            int64_t q = (int64_t)((double)p->k * 0.5 * erfc(-proj / sqrt(2.0))); // K·Φ(p_m)
            sum += q < p->k ? q : p->k - 1;
        }
        st->label[i] = (int32_t)(sum % p->k);
    }
    for (int m = 0; m < p->m; m++)
        free(u[m]);
    return ok ? 0 : -1;
}

static int synthetic_open(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info,
                          mf_error *err)
{
    synthetic_state *st = mf_dataset_state(self);
    settings p;
    if (read_settings(cfg, st, &p, err))
        return -1;
    const int K = (int)p.k, M = p.m;

    /* Prototype tables: proto[m][role] is K×d_m, one seeded stream per (modality, role). */
    float *proto[MAX_MODALITIES][N_ROLES] = {{0}};
    int ok = 1;
    st->n_modalities = M;
    st->label = malloc((size_t)p.n * sizeof *st->label);
    st->split = malloc((size_t)p.n);
    ok = st->label && st->split;
    for (int m = 0; ok && m < M; m++) {
        st->x[m] = malloc((size_t)(p.n * p.dims[m]) * sizeof(float));
        ok = st->x[m] != NULL;
        for (int role = 0; ok && role < N_ROLES; role++) {
            mf_rng rng;
            mf_rng_seed_stream(&rng, (uint64_t)p.seed, 1000000007ull + (uint64_t)(m * N_ROLES + role));
            proto[m][role] = malloc((size_t)(K * p.dims[m]) * sizeof(float));
            ok = proto[m][role] != NULL;
            for (int64_t i = 0; ok && i < K * p.dims[m]; i++)
                proto[m][role][i] = mf_rng_normal(&rng);
        }
    }
    if (!ok) {
        mf_error_set(err, "synthetic: out of memory for %lld samples", (long long)p.n);
        goto done;
    }

    if (p.parity ? parity_fill(st, &p) : (mixture_fill(st, &p, proto), 0)) {
        ok = 0;
        mf_error_set(err, "synthetic: out of memory for %lld samples", (long long)p.n);
        goto done;
    }
    for (int64_t i = 0; i < p.n; i++) { /* samples are i.i.d.: contiguous blocks are fair splits */
        double f = (double)i / (double)p.n;
        st->split[i] = f < p.split[0]                  ? MF_SPLIT_TRAIN
                       : f < p.split[0] + p.split[1]   ? MF_SPLIT_VAL
                                                       : MF_SPLIT_TEST;
    }
    for (int m = 0; m < M; m++) {
        st->modality[m].name = st->name[m];
        st->modality[m].shape = mf_shape1(p.dims[m]);
        st->modality[m].dtype = MF_DTYPE_F32;
    }
    info->n_modalities = M;
    info->modalities = st->modality;
    info->n_samples = st->n = p.n;
    info->n_classes = K;
    info->class_names = NULL;
    info->split = st->split;

done:
    for (int m = 0; m < M; m++)
        for (int role = 0; role < N_ROLES; role++)
            free(proto[m][role]);
    if (!ok)
        synthetic_close(self);
    return ok ? 0 : -1;
}

static int synthetic_read(mf_dataset *self, int64_t n, const int64_t *idx,
                          const mf_batch_buffers *out, mf_error *err)
{
    synthetic_state *st = mf_dataset_state(self);
    for (int64_t i = 0; i < n; i++) /* as every reader: an index outside is named, not read */
        if (idx[i] < 0 || idx[i] >= st->n) {
            mf_error_set(err, "synthetic: sample %lld is outside 0 to %lld", (long long)idx[i],
                         (long long)st->n - 1);
            return -1;
        }
    for (int m = 0; m < st->n_modalities; m++) {
        int64_t d = st->modality[m].shape.dim[0];
        for (int64_t i = 0; i < n; i++)
            memcpy(out->modality[m] + i * d, st->x[m] + idx[i] * d, (size_t)d * sizeof(float));
    }
    for (int64_t i = 0; i < n; i++)
        out->labels[i] = st->label[idx[i]];
    return 0;
}

static const mf_dataset_ops synthetic_ops = {
    .struct_size = sizeof(mf_dataset_ops),
    .state_size = sizeof(synthetic_state),
    .open = synthetic_open,
    .read = synthetic_read,
    .close = synthetic_close,
};

static const mf_plugin synthetic_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_DATASET,
    .name = "synthetic",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Seeded multimodal data with redundant, unique and synergistic label information",
    .params = synthetic_params,
    .ops = &synthetic_ops,
};

MF_PLUGIN_DEFINE(&synthetic_plugin)
