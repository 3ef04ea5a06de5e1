#!/usr/bin/python3
"""torch_ref.py (../shared/bench) at other sizes, to see how cost grows beside `mmfuse bench`
(issue 11 item 5). Same models, timing loop, fair set-up (the allocator kept, at import of
torch_ref) and JSON fields as torch_ref.py, plus batch / width / seq / layers:

  /usr/bin/python3 torch_scale.py --model mlp-concat --width 512 --batch 128 --threads 1
  /usr/bin/python3 torch_scale.py --model xattn-fusion --seq 64 --batch 32 --json out.jsonl

  --batch N  samples per step (default torch_ref.py's: 128, clip-dual 256)
  --width N  mlp-concat: every hidden layer N wide, enc1 784-N-N, enc2 64-N-N, head 2N-N-10
  --seq N    xattn-fusion: N patches and N tokens, the image 28 x (7N/4) cut into 7x7 patches
             (4 rows of N/4), learned position tables of N rows; N a multiple of 4
  --count-products  also count one training forward's matrix products with the profiler
             and print them beside the FLOP formula (as mmfuse bench prints its own)
Every other option goes to torch_ref.py's main() unchanged.
"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.environ.get("TORCH_REF_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "bench"))
import torch_ref  # noqa: E402  (its mallopt lines run here, unless --default-malloc)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

lin, D = torch_ref.lin, 128


class MLPConcatW(torch_ref.MLPConcat):
    """torch_ref's MLPConcat with every hidden layer W wide (its forward unchanged)."""

    def __init__(self, W):
        nn.Module.__init__(self)
        self.enc1 = torch_ref.mlp([784, W, W])
        self.enc2 = torch_ref.mlp([64, W, W])
        self.head = torch_ref.mlp([2 * W, W, 10])


class XAttnFusionT(torch_ref.XAttnFusion):
    """torch_ref's XAttnFusion at T positions a side: image (1,28,7T/4) cut into T patches."""

    def __init__(self, T):
        super().__init__()
        self.T = T
        self.pos_a = nn.Parameter(0.02 * torch.randn(T, D))
        self.pos_b = nn.Parameter(0.02 * torch.randn(T, D))

    def forward(self, img, tok):
        B, T = img.shape[0], self.T
        p = img.reshape(B, 1, 4, 7, T // 4, 7).permute(0, 2, 4, 1, 3, 5).reshape(B, T, 49)
        a = self.enc_a(self.patch(p) + self.pos_a)
        b = self.enc_b(self.emb(tok) + self.pos_b)
        a2, b2 = self.a_from_b(a, b), self.b_from_a(b, a)
        return self.head(torch.cat([a2.mean(dim=1), b2.mean(dim=1)], dim=1))


def macs_per_sample(name, W, T):
    """torch_ref.py's count (matrix products only) at width W / T positions."""
    if name == "mlp-concat" and W:
        return lin(784, W) + lin(W, W) + lin(64, W) + lin(W, W) + lin(2 * W, W) + lin(W, 10)
    if name == "xattn-fusion":
        attn = 2 * T * T * D
        block = T * (lin(D, 3 * D) + lin(D, D) + lin(D, 256) + lin(256, D)) + attn
        cross = T * (lin(D, D) + lin(D, 2 * D) + lin(D, D)) + attn
        return T * lin(49, D) + 2 * block + 2 * cross + lin(2 * D, 10)
    return torch_ref.MACS_PER_SAMPLE[name]


def layers(name, W, T):
    if name == "mlp-concat":
        w = (W, W, W, W, 2 * W, 2 * W, W) if W else (256, 128, 128, 128, 256, 256, 128)
        return "enc1 784-%d-%d, enc2 64-%d-%d, concat %d, head %d-%d-10" % w
    if name == "xattn-fusion":
        return "image 1x28x%d, %d patches 7x7, %d tokens, positions %dx128" % (7 * T // 4, T, T, T)
    return "reference"


def xattn_batches(B, T, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [((torch.randn(B, 1, 28, 7 * T // 4, generator=g),
              torch.randint(0, 1000, (B, T), generator=g)),
             torch.randint(0, 10, (B,), generator=g)) for _ in range(n)]


def count_products(model, batch):
    """One training forward under the profiler: FLOPs and calls of mm, addmm, bmm, conv."""
    from torch.profiler import profile, ProfilerActivity
    model.train()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        model(*batch[0][0])
    ev = [e for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm", "aten::bmm",
                                                      "aten::baddbmm", "aten::conv2d")]
    return sum(e.flops for e in ev), sum(e.count for e in ev)


def main():
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # --mode is not --model
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--width", type=int, default=0)
    ap.add_argument("--seq", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("--count-products", action="store_true")
    a, rest = ap.parse_known_args()
    if a.width and a.model != "mlp-concat" or a.seq and a.model != "xattn-fusion":
        sys.exit("torch_scale.py: --width is for mlp-concat, --seq for xattn-fusion")
    if a.seq % 4 or a.seq < 0 or a.width < 0 or a.batch < 0:
        sys.exit("torch_scale.py: --seq must be a multiple of 4, sizes positive")
    name, W = a.model, a.width
    T = (a.seq or 16) if name == "xattn-fusion" else 0
    B = a.batch or torch_ref.BATCH[name]

    # torch_ref's main() at these sizes: its lookups, rebound
    base_build, base_batches = torch_ref.build, torch_ref.make_batches
    torch_ref.BATCH = dict(torch_ref.BATCH, **{name: B})
    torch_ref.build = lambda n: (MLPConcatW(W) if W else XAttnFusionT(T) if T != 16 and T
                                 else base_build(n))
    torch_ref.make_batches = lambda n, B, seed=0: (xattn_batches(B, T, seed=seed) if T and T != 16
                                                   else base_batches(n, B, seed=seed))
    torch_ref.fwd_flops = lambda n, B: 2 * (macs_per_sample(n, W, T) * B +
                                            (B * B * 128 if n == "clip-dual" else 0))
    if a.count_products:
        torch.manual_seed(0)
        m = torch_ref.build(name)
        flops, calls = count_products(m, torch_ref.make_batches(name, B))
        print(f"{name}: {sum(p.numel() for p in m.parameters())} parameters; one forward's matrix "
              f"products {flops * 1e-6:.1f} MFLOP in {calls} calls (formula: "
              f"{torch_ref.fwd_flops(name, B) * 1e-6:.1f})", file=sys.stderr)

    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as tmp:
        sys.argv = [sys.argv[0], "--model", name, "--json", tmp.name] + rest
        torch_ref.main()
        res = json.loads(tmp.readline())
    res.update(width=W or None, seq=T or None, layers=layers(name, W, T))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
