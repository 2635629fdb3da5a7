"""Regenerate neural_tangents_0.6.5_layers.npz (run OUTSIDE the project, in a separate environment).

    python3.11 -m venv /tmp/ref-nt
    /tmp/ref-nt/bin/pip install neural-tangents==0.6.5 jax==0.4.23 jaxlib==0.4.23 "numpy<2" "scipy<1.13"
    /tmp/ref-nt/bin/python make_neural_tangents_layers_reference.py   # reads/writes next to this file

(the stax kernels need no tensorflow). Everything runs in float64 (``jax_enable_x64``) on CPU.

Inputs, drawn with numpy default_rng(0) in this order, stored NCHW (the networks see them as NHWC):
``img8`` (4x3x8x8), ``img_a`` (3x3x6x6), ``img_b`` (2x3x6x6).

Entries (each ``<name>_nngp`` and ``<name>_ntk``):

* ``stride2_{same,circular}``: Conv(8, 3x3, stride 2) + Relu + Flatten + Dense(1) on ``img8`` (x2 = x1);
* ``<layer>``: Conv(8, 3x3, SAME, b_std=0.2) + Relu + Conv(8, 3x3, SAME, W_std=1.2, b_std=0.1) + the layer
  (+ Relu after linear layers) + Flatten + Dense(1, b_std=0.1) on ``img_a`` vs ``img_b``; Dropout sits after the
  first Relu (its kernel rule needs no Gaussian input; the Relu after it needs one) and is computed on ``img_a``
  against itself (``x2=None``) and against ``img_b``. Tanh/Sigmoid/Softplus have no closed form in
  neural-tangents: ``ElementwiseNumerical(fn, deg=64)``. ``attention_<mechanism>``: the first Conv,
  ``GlobalSelfAttention(8, 8, 8, 2, linear_scaling=True, W_key_std=1.1, W_query_std=0.9, W_value_std=1.2,
  W_out_std=0.8, b_std=0.1)``, Relu and the readout (covariances of raw inputs take both signs, so the
  mechanisms differ);
* ``attention_apply``: the finite ``GlobalSelfAttention(5, 4, 3, 2, ...)`` (same stds) applied to ``img_a`` with
  the parameters of ``init_fn(PRNGKey(0))``, stored as ``attention_{key,value,out,bias}``;
* ``wrn_b{1,2}``: the WideResNet of neural-tangents' README (``WideResnet(block_size, k=1, num_classes=1)``) on
  ``img8``; the README's final ``AvgPool((8, 8))`` (for 32x32 CIFAR images, whose last feature map is 8x8) is
  ``AvgPool((2, 2))`` here, the size of the last feature map of 8x8 inputs;
* ``cnn_gap``: 3 x (Conv(3x3, SAME, W_std=√2, b_std=0.1) + Relu) + GlobalAvgPool + Dense(W_std=√2, b_std=0.1) on
  ``img8``.
"""
# ruff: noqa
import os

import numpy as np
import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import neural_tangents as nt
from neural_tangents import stax

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
img8 = rng.normal(size=(4, 3, 8, 8))
img_a, img_b = rng.normal(size=(3, 3, 6, 6)), rng.normal(size=(2, 3, 6, 6))
nhwc = lambda x: x.transpose(0, 2, 3, 1)
out = {}


def store(name, kernel_fn, x1, x2=None):
    k = kernel_fn(nhwc(x1), None if x2 is None else nhwc(x2), ("nngp", "ntk"))
    out[f"{name}_nngp"], out[f"{name}_ntk"] = np.asarray(k.nngp), np.asarray(k.ntk)


for pad in ("SAME", "CIRCULAR"):
    _, _, kfn = stax.serial(stax.Conv(8, (3, 3), strides=(2, 2), padding=pad), stax.Relu(), stax.Flatten(),
                            stax.Dense(1))
    store(f"stride2_{pad.lower()}", kfn, img8)

HEAD = [stax.Conv(8, (3, 3), padding="SAME", b_std=0.2), stax.Relu(),
        stax.Conv(8, (3, 3), padding="SAME", W_std=1.2, b_std=0.1)]
TAIL = [stax.Flatten(), stax.Dense(1, b_std=0.1)]
LINEAR = {
    "avgpool_valid": stax.AvgPool((2, 2), strides=(2, 2), padding="VALID"),
    "avgpool_same": stax.AvgPool((3, 3), strides=(2, 2), padding="SAME"),
    "avgpool_circular": stax.AvgPool((3, 3), strides=(2, 2), padding="CIRCULAR"),
    "avgpool_stride1": stax.AvgPool((3, 3), padding="SAME"),
    "layernorm": stax.LayerNorm(),
}
for name, layer in LINEAR.items():
    store(name, stax.serial(*HEAD, layer, stax.Relu(), *TAIL)[2], img_a, img_b)
ACTS = {
    "gelu": stax.Gelu(),
    "tanh": stax.ElementwiseNumerical(jnp.tanh, deg=64),
    "sigmoid": stax.ElementwiseNumerical(jax.nn.sigmoid, deg=64),
    "softplus": stax.ElementwiseNumerical(jax.nn.softplus, deg=64),
}
for name, layer in ACTS.items():
    store(name, stax.serial(*HEAD, layer, *TAIL)[2], img_a, img_b)
for mech in ("SOFTMAX", "IDENTITY", "ABS", "RELU"):
    attn = stax.GlobalSelfAttention(8, 8, 8, 2, linear_scaling=True, W_key_std=1.1, W_query_std=0.9,
                                    W_value_std=1.2, W_out_std=0.8, b_std=0.1, attention_mechanism=mech)
    store(f"attention_{mech.lower()}", stax.serial(HEAD[0], attn, stax.Relu(), *TAIL)[2], img_a, img_b)
# the finite layer: output of NT's apply_fn for stored parameters (keys, values, out, bias) on img_a
init_fn, apply_fn, _ = stax.GlobalSelfAttention(5, 4, 3, 2, linear_scaling=True, W_key_std=1.1, W_query_std=0.9,
                                                W_value_std=1.2, W_out_std=0.8, b_std=0.1)
_, (_, attn_key, attn_value, attn_out, attn_bias, _) = init_fn(jax.random.PRNGKey(0), nhwc(img_a).shape)
out["attention_apply"] = np.asarray(apply_fn((None, attn_key, attn_value, attn_out, attn_bias, None),
                                             nhwc(img_a))).transpose(0, 3, 1, 2)
out.update(attention_key=np.asarray(attn_key), attention_value=np.asarray(attn_value),
           attention_out=np.asarray(attn_out), attention_bias=np.asarray(attn_bias).reshape(-1))
_, _, kfn = stax.serial(*HEAD[:2], stax.Dropout(0.8, mode="train"), HEAD[2], stax.Relu(), *TAIL)
store("dropout_self", kfn, img_a)
store("dropout", kfn, img_a, img_b)


# ------------------------------------------------------------------ neural-tangents README WideResNet
def WideResnetBlock(channels, strides=(1, 1), channel_mismatch=False):
    Main = stax.serial(
        stax.Relu(), stax.Conv(channels, (3, 3), strides, padding="SAME"),
        stax.Relu(), stax.Conv(channels, (3, 3), padding="SAME"))
    Shortcut = stax.Identity() if not channel_mismatch else stax.Conv(
        channels, (3, 3), strides, padding="SAME")
    return stax.serial(stax.FanOut(2), stax.parallel(Main, Shortcut), stax.FanInSum())


def WideResnetGroup(n, channels, strides=(1, 1)):
    blocks = [WideResnetBlock(channels, strides, channel_mismatch=True)]
    for _ in range(n - 1):
        blocks += [WideResnetBlock(channels, (1, 1))]
    return stax.serial(*blocks)


def WideResnet(block_size, k, num_classes, pool=8):
    return stax.serial(
        stax.Conv(16, (3, 3), padding="SAME"),
        WideResnetGroup(block_size, int(16 * k)),
        WideResnetGroup(block_size, int(32 * k), (2, 2)),
        WideResnetGroup(block_size, int(64 * k), (2, 2)),
        stax.AvgPool((pool, pool)),
        stax.Flatten(),
        stax.Dense(num_classes, 1., 0.))


for b in (1, 2):
    store(f"wrn_b{b}", WideResnet(block_size=b, k=1, num_classes=1, pool=2)[2], img8)
_, _, kfn = stax.serial(*[stax.serial(stax.Conv(1, (3, 3), padding="SAME", W_std=2**0.5, b_std=0.1), stax.Relu())
                          for _ in range(3)], stax.GlobalAvgPool(), stax.Dense(1, W_std=2**0.5, b_std=0.1))
store("cnn_gap", kfn, img8)

np.savez_compressed(os.path.join(HERE, "neural_tangents_0.6.5_layers.npz"), img8=img8, img_a=img_a, img_b=img_b,
                    **out)
for key, v in out.items():
    print(key, v.shape, float(np.abs(v).max()))
