/* Building blocks composed from graph ops: activations, linear layers, MLPs.
 * They register parameters through their module, so names follow the module path. */
#include <stdio.h>
#include <string.h>

#include <mmfuse/nn.h>

static const char *const activation_names[] = {"none", "relu", "tanh", "sigmoid", "gelu"};
_Static_assert(sizeof activation_names / sizeof activation_names[0] == MF_ACT_COUNT,
               "one name per activation");

const char *mf_activation_name(mf_activation a)
{
    return (unsigned)a < MF_ACT_COUNT ? activation_names[a] : NULL;
}

int mf_activation_parse(const char *name)
{
    for (int i = 0; i < MF_ACT_COUNT; i++)
        if (strcmp(name, activation_names[i]) == 0)
            return i;
    return -1;
}

mf_node *mf_activate(mf_graph *g, mf_node *x, mf_activation a)
{
    switch (a) {
    case MF_ACT_RELU: return mf_relu(g, x);
    case MF_ACT_TANH: return mf_tanh(g, x);
    case MF_ACT_SIGMOID: return mf_sigmoid(g, x);
    default: return x;
    }
}

int mf_linear_init(mf_linear *l, mf_module *m, const char *name, int64_t in, int64_t out,
                   int bias)
{
    char key[256];
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    snprintf(key, sizeof key, "%s.weight", name);
    l->weight = mf_module_param(m, key, mf_shape2(out, in),
                                (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, 0});
    if (!l->weight)
        return -1;
    if (bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        l->bias = mf_module_param(m, key, mf_shape1(out),
                                  (mf_init){MF_INIT_FAN_IN_UNIFORM, 1.0f, in});
        if (!l->bias)
            return -1;
    }
    return 0;
}

mf_node *mf_linear_forward(mf_graph *g, const mf_linear *l, mf_node *x)
{
    // x is (B,in), weight is (out,in): y = x Wᵀ is (B,out)
    mf_node *y = mf_matmul(g, x, mf_param_node(g, l->weight), 0, 1);
    return l->bias ? mf_add(g, y, mf_param_node(g, l->bias)) : y;
}

int mf_mlp_init(mf_mlp *mlp, mf_module *m, const char *name, int n_sizes, const int64_t *sizes,
                mf_activation act)
{
    memset(mlp, 0, sizeof *mlp);
    if (n_sizes < 2 || n_sizes - 1 > MF_MLP_MAX_LAYERS)
        return -1;
    mlp->n_layers = n_sizes - 1;
    mlp->act = act;
    for (int i = 0; i < mlp->n_layers; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s%s%d", name, *name ? ".fc" : "fc", i);
        if (mf_linear_init(&mlp->layer[i], m, key, sizes[i], sizes[i + 1], 1))
            return -1;
    }
    return 0;
}

mf_node *mf_mlp_forward(mf_graph *g, const mf_mlp *mlp, mf_node *x)
{
    for (int i = 0; i < mlp->n_layers; i++) {
        x = mf_linear_forward(g, &mlp->layer[i], x);
        if (i + 1 < mlp->n_layers)
            x = mf_activate(g, x, mlp->act);
    }
    return x;
}
