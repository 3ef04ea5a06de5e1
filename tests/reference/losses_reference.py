#!/usr/bin/env python3
"""Reference numbers for tests/test-losses.c, computed with PyTorch (float64).

Run:  /usr/bin/python3 tests/reference/losses_reference.py
The C test hard-codes what this prints. CLIP follows open_clip's ClipLoss, SigLIP its
SigLipLoss (sum over all pairs / B), the others torch.nn.functional.
"""
import math

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# B=3, D=4 embeddings of two modalities
A = [[0.5, -1.2, 0.3, 0.8], [1.1, 0.4, -0.7, 0.2], [-0.3, 0.9, 1.5, -0.6]]
B = [[0.7, -0.8, 0.1, 1.0], [0.2, 1.3, -0.5, -0.4], [-1.0, 0.6, 0.9, 0.3]]

# (B=4, K=3) logits and class targets
LOGITS = [[1.2, -0.4, 0.3], [0.1, 0.8, -1.1], [-0.6, 0.2, 0.9], [2.0, -1.5, 0.4]]
CLASSES = [0, 2, 1, 2]
SMOOTHING = 0.1
CLASS_WEIGHTS = [0.5, 2.0, 1.0]

# (B=3, K=2) regression
MSE_X = [[0.3, -1.2], [1.5, 0.4], [-0.7, 0.9]]
MSE_Y = [[0.0, -1.0], [2.0, 0.5], [0.1, -0.3]]

# (B=3, K=3) multilabel
BCE_X = [[0.8, -1.3, 2.1], [-0.4, 0.6, -2.5], [1.7, 0.2, -0.9]]
BCE_Y = [[1, 0, 1], [0, 1, 0], [1, 1, 0]]
POS_WEIGHT = [1.0, 3.0, 0.5]


def c_array(name, t):
    """One C array, wrapped at 100 columns."""
    flat = t.detach().reshape(-1).tolist()
    line = "static const double %s[%d] = {" % (name, len(flat))
    for i, v in enumerate(flat):
        item = "%.9g" % v + ("," if i + 1 < len(flat) else "};")
        if len(line) + 1 + len(item) > 100:
            print(line)
            line = "   "
        line += ("" if line.endswith("{") else " ") + item
    print(line)


def leaf(v):
    return torch.tensor(v, requires_grad=True)


def clip_loss(a, b, s):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = s.exp() * a @ b.T
    y = torch.arange(a.shape[0])
    return (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2


def siglip_loss(a, b, t, bias):
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = t.exp() * a @ b.T + bias
    z = 2 * torch.eye(a.shape[0]) - 1
    return -F.logsigmoid(z * logits).sum() / a.shape[0]


def contrastive():
    a, b, s = leaf(A), leaf(B), leaf([1.0])
    loss = clip_loss(a, b, s)
    loss.backward()
    print("/* clip, s = 1 */")
    c_array("clip_loss", loss.reshape(1))
    c_array("clip_grad_a", a.grad)
    c_array("clip_grad_b", b.grad)
    c_array("clip_grad_s", s.grad)
    loss = clip_loss(torch.tensor(A), torch.tensor(B), torch.tensor([math.log(1 / 0.07)]))
    print("/* clip at its initial s = ln(1/0.07) */")
    c_array("clip_init_loss", loss.reshape(1))
    a, b, t, bias = leaf(A), leaf(B), leaf([1.5]), leaf([-2.0])
    loss = siglip_loss(a, b, t, bias)
    loss.backward()
    print("/* siglip, t = 1.5, bias = -2 */")
    c_array("siglip_loss", loss.reshape(1))
    c_array("siglip_grad_a", a.grad)
    c_array("siglip_grad_b", b.grad)
    c_array("siglip_grad_t", t.grad)
    c_array("siglip_grad_bias", bias.grad)
    a, b = leaf(A), leaf(B)
    loss = siglip_loss(a, b, torch.tensor([math.log(10)]), torch.tensor([-10.0]))
    print("/* siglip at its initial t = ln 10, bias = -10 */")
    c_array("siglip_init_loss", loss.reshape(1))


def classification():
    y = torch.tensor(CLASSES)
    w = torch.tensor(CLASS_WEIGHTS)
    cases = [("ce_plain", {}), ("ce_smooth", {"label_smoothing": SMOOTHING}),
             ("ce_weighted", {"weight": w}),
             ("ce_both", {"weight": w, "label_smoothing": SMOOTHING})]
    for name, kw in cases:
        x = leaf(LOGITS)
        loss = F.cross_entropy(x, y, **kw)
        loss.backward()
        c_array(name + "_loss", loss.reshape(1))
        c_array(name + "_grad", x.grad)


def regression():
    x = leaf(MSE_X)
    loss = F.mse_loss(x, torch.tensor(MSE_Y))
    loss.backward()
    c_array("mse_loss", loss.reshape(1))
    c_array("mse_grad", x.grad)
    for name, kw in [("bce_plain", {}), ("bce_pos", {"pos_weight": torch.tensor(POS_WEIGHT)})]:
        x = leaf(BCE_X)
        loss = F.binary_cross_entropy_with_logits(x, torch.tensor(BCE_Y, dtype=torch.float64), **kw)
        loss.backward()
        c_array(name + "_loss", loss.reshape(1))
        c_array(name + "_grad", x.grad)


if __name__ == "__main__":
    print("/* tests/reference/losses_reference.py, torch %s */" % torch.__version__)
    contrastive()
    classification()
    regression()
