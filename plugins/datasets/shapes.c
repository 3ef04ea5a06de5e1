/* shapes — rendered scenes of one or two coloured shapes, each with a caption that names
 * them and how they are placed: image–text pairs for retrieval, and a classification task.
 *
 * A scene holds one object, or (probability `pair`) two: each a shape (circle, square,
 * triangle, cross), a colour (red, green, blue, yellow, purple, white) and a size (small,
 * large), drawn on a plain dark background with 2×2-supersampled edges and Gaussian pixel
 * noise. Its caption reads "<size> <colour> <shape>", and for two objects
 * "<size> <colour> <shape> <relation> <size> <colour> <shape>" with the relation of the
 * first object to the second: "left of", "right of", "above", "below". The two objects
 * never overlap, and their centres are at least twice as far apart along the relation's
 * axis as across it, so exactly one relation holds from the first object's point of view.
 *
 * Bindings and order matter: "small red circle left of large blue square", "small blue
 * circle left of large red square" and "large blue square left of small red circle" share
 * their words but describe different images — a bag of words cannot tell them apart.
 *
 * Modalities: `image` (3,size,size) RGB floats in [0,1], and `caption` (max_tokens) token
 * ids into the exported vocabulary: 3 words for one object, 7 or 8 for two, then "<pad>"
 * (id 0, declared as info->pad_token, so the host gives encoders a padding mask). Label
 * (`label`): the first object's shape (default), its colour, or the relation ("alone" for
 * one object).
 * Scene i draws from its own seeded stream, so sample i is the same whatever the sample
 * count; images are rendered when read, so memory stays small.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mmfuse/mmfuse.h>

enum { N_SIZES = 2, N_COLORS = 6, N_SHAPES = 4 };
enum { REL_LEFT, REL_RIGHT, REL_ABOVE, REL_BELOW, REL_NONE, N_RELATIONS };
enum { LABEL_SHAPE, LABEL_COLOR, LABEL_RELATION };

/* Token ids: the vocabulary below, in this order. */
enum {
    TOK_PAD = 0,
    TOK_SIZE = 1,
    TOK_COLOR = TOK_SIZE + N_SIZES,
    TOK_SHAPE = TOK_COLOR + N_COLORS,
    TOK_LEFT = TOK_SHAPE + N_SHAPES,
    TOK_RIGHT,
    TOK_OF,
    TOK_ABOVE,
    TOK_BELOW,
    VOCAB_SIZE
};
enum { MAX_CAPTION = 8 }; /* 3 + 2 ("left of") + 3 */

static const char *const shapes_vocabulary[] = {
    "<pad>", "small", "large", "red", "green", "blue", "yellow", "purple", "white",
    "circle", "square", "triangle", "cross", "left", "right", "of", "above", "below",
};
_Static_assert(sizeof shapes_vocabulary / sizeof shapes_vocabulary[0] == VOCAB_SIZE,
               "one word per token id");

static const float shapes_rgb[N_COLORS][3] = {
    {0.90f, 0.10f, 0.10f}, {0.10f, 0.80f, 0.20f}, {0.15f, 0.30f, 0.95f},
    {0.95f, 0.90f, 0.10f}, {0.70f, 0.20f, 0.85f}, {0.95f, 0.95f, 0.95f},
};
static const float shapes_background = 0.12f;
/* Half-extent of a shape as a fraction of the image side, per size word. */
static const double shapes_radius[N_SIZES] = {0.11, 0.20};
static const char *const relation_names[N_RELATIONS] = {"left of", "right of", "above", "below",
                                                        "alone"};

typedef struct shapes_object {
    int shape, color, size;
    double cx, cy, r; /* centre and half-extent in pixels; pixel (x,y) covers [x,x+1)×[y,y+1) */
} shapes_object;

typedef struct shapes_scene {
    int n;        /* 1 or 2 objects */
    int relation; /* of obj[0] to obj[1]; REL_NONE for one object */
    shapes_object obj[2];
} shapes_scene;

typedef struct shapes_state {
    int64_t n, size, max_tokens;
    uint64_t seed;
    double noise;
    int label, hide_relation;
    shapes_scene *scene;
    uint8_t *split;
    mf_modality_info modality[2];
} shapes_state;

static const mf_param_spec shapes_params[] = {
    {"seed", MF_TYPE_INT, "0", 0, 0, 0, NULL, "Seed of the scenes (independent of the run's seed)."},
    {"samples", MF_TYPE_INT, "5000", MF_PARAM_MIN | MF_PARAM_MAX, 10, 1e8, NULL,
     "Number of samples, all splits together."},
    {"size", MF_TYPE_INT, "32", MF_PARAM_MIN | MF_PARAM_MAX, 16, 512, NULL,
     "Side of the square images in pixels."},
    {"max_tokens", MF_TYPE_INT, "12", MF_PARAM_MIN | MF_PARAM_MAX, MAX_CAPTION, 1024, NULL,
     "Length of the caption modality: the caption, then <pad> (id 0)."},
    {"noise", MF_TYPE_FLOAT, "0.05", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Standard deviation of the Gaussian noise added to every pixel (then clipped to [0,1])."},
    {"pair", MF_TYPE_FLOAT, "0.75", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Probability that a scene holds two objects rather than one."},
    {"label", MF_TYPE_ENUM, "shape", 0, 0, 0, "shape|color|relation",
     "The class: the first object's shape or colour, or the relation of the two."},
    {"split", MF_TYPE_FLOAT_LIST, "[0.7, 0.15, 0.15]", MF_PARAM_MIN | MF_PARAM_MAX, 0, 1, NULL,
     "Fractions of samples for train, validation and test."},
    {"hide_relation", MF_TYPE_BOOL, "false", 0, 0, 0, NULL,
     "Leave the relation's words out of the caption: with label relation, the image shows "
     "where the objects are and only the caption says which is named first (a task that "
     "needs both)."},
    MF_PARAM_END,
};

/* ---------------------------------------------------------------- scenes */
static double uniform_in(mf_rng *rng, double lo, double hi)
{
    return hi > lo ? lo + (hi - lo) * mf_rng_uniform(rng) : lo;
}

/* Place obj[0] and obj[1] so that `relation` holds: along the relation's axis the later one
 * starts past the earlier one's extent (no overlap); across it, the offset is at most half
 * the distance along it (so no other relation holds). */
static void place_pair(shapes_scene *sc, double side, mf_rng *rng)
{
    const int axis = sc->relation == REL_ABOVE || sc->relation == REL_BELOW; /* 0: x, 1: y */
    const int first = sc->relation == REL_LEFT || sc->relation == REL_ABOVE ? 0 : 1;
    shapes_object *lo = &sc->obj[first], *hi = &sc->obj[1 - first];
    double along[2], across[2];
    const double gap = lo->r + hi->r + 1;
    along[0] = uniform_in(rng, lo->r + 1, fmin(side - 1 - lo->r, side - 1 - hi->r - gap));
    along[1] = uniform_in(rng, along[0] + gap, side - 1 - hi->r);
    const double d = along[1] - along[0];
    across[0] = uniform_in(rng, lo->r + 1, side - 1 - lo->r);
    across[1] = uniform_in(rng, fmax(hi->r + 1, across[0] - d / 2),
                           fmin(side - 1 - hi->r, across[0] + d / 2));
    lo->cx = axis ? across[0] : along[0];
    lo->cy = axis ? along[0] : across[0];
    hi->cx = axis ? across[1] : along[1];
    hi->cy = axis ? along[1] : across[1];
}

/* Scene i of the data seeded `seed`: from its own stream (2i; 2i+1 is its pixel noise). */
static void shapes_scene_make(uint64_t seed, int64_t i, double pair, int64_t size,
                              shapes_scene *sc)
{
    mf_rng rng;
    mf_rng_seed_stream(&rng, seed, 2 * (uint64_t)i);
    memset(sc, 0, sizeof *sc);
    sc->n = mf_rng_uniform(&rng) < pair ? 2 : 1;
    for (int k = 0; k < sc->n; k++) {
        shapes_object *o = &sc->obj[k];
        o->shape = (int)mf_rng_below(&rng, N_SHAPES);
        o->color = (int)mf_rng_below(&rng, N_COLORS);
        o->size = (int)mf_rng_below(&rng, N_SIZES);
        o->r = shapes_radius[o->size] * (double)size;
    }
    if (sc->n == 1) {
        sc->relation = REL_NONE;
        shapes_object *o = &sc->obj[0];
        o->cx = uniform_in(&rng, o->r + 1, (double)size - 1 - o->r);
        o->cy = uniform_in(&rng, o->r + 1, (double)size - 1 - o->r);
    } else {
        sc->relation = (int)mf_rng_below(&rng, REL_NONE);
        place_pair(sc, (double)size, &rng);
    }
}

/* The caption's tokens into tok (room for MAX_CAPTION); returns their count. */
static int shapes_caption(const shapes_scene *sc, int hide_relation, int32_t *tok)
{
    int n = 0;
    for (int k = 0; k < sc->n; k++) {
        if (k == 1 && !hide_relation) {
            static const int32_t words[REL_NONE][2] = {
                {TOK_LEFT, TOK_OF}, {TOK_RIGHT, TOK_OF}, {TOK_ABOVE, 0}, {TOK_BELOW, 0}};
            for (int w = 0; w < 2 && words[sc->relation][w]; w++)
                tok[n++] = words[sc->relation][w];
        }
        tok[n++] = TOK_SIZE + sc->obj[k].size;
        tok[n++] = TOK_COLOR + sc->obj[k].color;
        tok[n++] = TOK_SHAPE + sc->obj[k].shape;
    }
    return n;
}

/* Whether offset (dx,dy) from the centre lies in the shape of half-extent r. */
static int inside(int shape, double dx, double dy, double r)
{
    const double ax = fabs(dx), ay = fabs(dy);
    switch (shape) {
    case 0: return dx * dx + dy * dy <= r * r;                       /* circle */
    case 1: return ax <= 0.85 * r && ay <= 0.85 * r;                 /* square */
    case 2: return dy >= -r && dy <= 0.8 * r && ax <= (dy + r) / 1.8; /* triangle, apex up */
    default: return (ax <= r / 3 && ay <= r) || (ay <= r / 3 && ax <= r); /* cross */
    }
}

/* Render scene i into x, (3,size,size). */
static void shapes_render(const shapes_scene *sc, uint64_t seed, int64_t i, int64_t size,
                          double noise, float *x)
{
    const int64_t plane = size * size;
    for (int64_t p = 0; p < 3 * plane; p++)
        x[p] = shapes_background;
    for (int k = 0; k < sc->n; k++) {
        const shapes_object *o = &sc->obj[k];
        const int64_t x0 = (int64_t)fmax(0, floor(o->cx - o->r - 1)),
                      x1 = (int64_t)fmin((double)size - 1, ceil(o->cx + o->r + 1)),
                      y0 = (int64_t)fmax(0, floor(o->cy - o->r - 1)),
                      y1 = (int64_t)fmin((double)size - 1, ceil(o->cy + o->r + 1));
        for (int64_t py = y0; py <= y1; py++)
            for (int64_t px = x0; px <= x1; px++) {
                int hits = 0; /* 2×2 subsamples: smooth edges, so sizes vary continuously */
                for (int s = 0; s < 4; s++)
                    hits += inside(o->shape, (double)px + 0.25 + 0.5 * (s & 1) - o->cx,
                                   (double)py + 0.25 + 0.5 * (s >> 1) - o->cy, o->r);
                if (!hits)
                    continue;
                const float cover = 0.25f * (float)hits;
                for (int c = 0; c < 3; c++) {
                    float *v = &x[c * plane + py * size + px];
                    *v = *v * (1 - cover) + shapes_rgb[o->color][c] * cover;
                }
            }
    }
    if (noise > 0) {
        mf_rng rng;
        mf_rng_seed_stream(&rng, seed, 2 * (uint64_t)i + 1);
        for (int64_t p = 0; p < 3 * plane; p++) {
            float v = x[p] + (float)noise * mf_rng_normal(&rng);
            x[p] = v < 0 ? 0 : v > 1 ? 1 : v;
        }
    }
}

/* ---------------------------------------------------------------- the reader */
static void shapes_close(mf_dataset *self)
{
    shapes_state *s = mf_dataset_state(self);
    free(s->scene);
    free(s->split);
}

static int shapes_open(mf_dataset *self, const mf_config *cfg, mf_dataset_info *info,
                       mf_error *err)
{
    shapes_state *s = mf_dataset_state(self);
    int64_t seed;
    double pair, split[3];
    int n_split;
    if (mf_config_int(cfg, "seed", &seed, err) || mf_config_int(cfg, "samples", &s->n, err) ||
        mf_config_int(cfg, "size", &s->size, err) ||
        mf_config_int(cfg, "max_tokens", &s->max_tokens, err) ||
        mf_config_float(cfg, "noise", &s->noise, err) || mf_config_float(cfg, "pair", &pair, err) ||
        mf_config_enum(cfg, "label", "shape|color|relation", &s->label, err) ||
        mf_config_bool(cfg, "hide_relation", &s->hide_relation, err) ||
        mf_config_float_list(cfg, "split", split, 3, &n_split, err))
        return -1;
    if (n_split != 3 || split[0] + split[1] + split[2] > 1 + 1e-9 || split[0] <= 0) {
        mf_config_error(err, mf_config_get(cfg, "split"),
                        "expected [train, val, test] fractions with train > 0 and a sum of at "
                        "most 1");
        return -1;
    }
    s->seed = (uint64_t)seed;
    s->scene = malloc((size_t)s->n * sizeof *s->scene);
    s->split = malloc((size_t)s->n);
    if (!s->scene || !s->split) {
        mf_error_set(err, "shapes: out of memory for %lld samples", (long long)s->n);
        shapes_close(self);
        return -1;
    }
    for (int64_t i = 0; i < s->n; i++) {
        shapes_scene_make(s->seed, i, pair, s->size, &s->scene[i]);
        /* Scenes are i.i.d., so contiguous blocks make unbiased splits. */
        double f = (double)i / (double)s->n;
        s->split[i] = f < split[0]              ? MF_SPLIT_TRAIN
                      : f < split[0] + split[1] ? MF_SPLIT_VAL
                                                : MF_SPLIT_TEST;
    }
    s->modality[0] = (mf_modality_info){"image", mf_shape3(3, s->size, s->size), MF_DTYPE_F32};
    s->modality[1] = (mf_modality_info){"caption", mf_shape1(s->max_tokens), MF_DTYPE_TOKEN};
    static const int n_classes[] = {N_SHAPES, N_COLORS, N_RELATIONS};
    info->n_modalities = 2;
    info->modalities = s->modality;
    info->n_samples = s->n;
    info->label_kind = MF_LABELS_CLASSES;
    info->n_classes = n_classes[s->label];
    /* the class names are the vocabulary's shape or colour words, or the relations */
    info->class_names = s->label == LABEL_SHAPE   ? shapes_vocabulary + TOK_SHAPE
                        : s->label == LABEL_COLOR ? shapes_vocabulary + TOK_COLOR
                                                  : relation_names;
    info->split = s->split;
    info->vocab_size = VOCAB_SIZE;
    info->vocabulary = shapes_vocabulary;
    /* captions run 3, 7 or 8 words, then <pad>: the host masks the padding for encoders */
    if (info->struct_size >= offsetof(mf_dataset_info, has_padding) + sizeof info->has_padding) {
        info->pad_token = TOK_PAD;
        info->has_padding = 1;
    }
    return 0;
}

static int shapes_read(mf_dataset *self, int64_t n, const int64_t *idx,
                       const mf_batch_buffers *out, mf_error *err)
{
    shapes_state *s = mf_dataset_state(self);
    const int64_t pixels = 3 * s->size * s->size;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= s->n) {
            mf_error_set(err, "shapes: sample %lld requested, but there are %lld samples",
                         (long long)idx[i], (long long)s->n);
            return -1;
        }
        const shapes_scene *sc = &s->scene[idx[i]];
        shapes_render(sc, s->seed, idx[i], s->size, s->noise, out->modality[0] + i * pixels);
        int32_t tok[MAX_CAPTION];
        const int len = shapes_caption(sc, s->hide_relation, tok);
        float *caption = out->modality[1] + i * s->max_tokens;
        for (int64_t t = 0; t < s->max_tokens; t++)
            caption[t] = t < len ? (float)tok[t] : (float)TOK_PAD;
        out->labels[i] = s->label == LABEL_SHAPE   ? sc->obj[0].shape
                         : s->label == LABEL_COLOR ? sc->obj[0].color
                                                   : sc->relation;
    }
    return 0;
}

static const mf_dataset_ops shapes_ops = {
    .struct_size = sizeof(mf_dataset_ops),
    .state_size = sizeof(shapes_state),
    .open = shapes_open,
    .read = shapes_read,
    .close = shapes_close,
};

static const mf_plugin shapes_plugin = {
    MF_PLUGIN_HEADER,
    .kind = MF_KIND_DATASET,
    .name = "shapes",
    .version = "1.0.0",
    .license = "MIT",
    .summary = "Rendered scenes of coloured shapes with captions whose word order and bindings "
               "matter (image-text retrieval, classification)",
    .params = shapes_params,
    .ops = &shapes_ops,
};

MF_PLUGIN_DEFINE(&shapes_plugin)
