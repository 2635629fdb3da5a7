"""Regenerate neural_tangents_0.6.5_reference.npz (run OUTSIDE the project, in a separate environment).

    python -m venv /tmp/ref-nt
    /tmp/ref-nt/bin/pip install neural-tangents==0.6.5 jax==0.4.23 jaxlib==0.4.23 "numpy<2" "scipy<1.13" \
        tensorflow==2.15.1 tensorflow-cpu==2.15.1
    /tmp/ref-nt/bin/python make_neural_tangents_reference.py   # reads/writes next to this file

Inputs x1 (7x5), x2 (4x5), img1 (3x2x5x6), img2 (2x2x5x6) were drawn with numpy default_rng(0) in that order.
"""
# ruff: noqa
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
import neural_tangents as nt
from neural_tangents import stax

import os
HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
x1, x2 = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
img1, img2 = rng.normal(size=(3, 2, 5, 6)), rng.normal(size=(2, 2, 5, 6))  # NCHW
out = {}
acts = {"relu": stax.Relu(), "erf": stax.Erf(), "identity": stax.Identity()}
for act, a in acts.items():
    for param in ("ntk", "standard"):
        layers = []
        for w in (16, 32, 8):
            layers += [stax.Dense(w, W_std=1.3, b_std=0.1, parameterization=param), a]
        layers += [stax.Dense(1, W_std=1.3, b_std=0.1, parameterization=param)]
        _, _, kfn = stax.serial(*layers)
        k = kfn(x1, x2, ("nngp", "ntk"))
        out[f"fc_{act}_{param}_nngp"] = np.asarray(k.nngp); out[f"fc_{act}_{param}_ntk"] = np.asarray(k.ntk)
nhwc1, nhwc2 = img1.transpose(0, 2, 3, 1), img2.transpose(0, 2, 3, 1)
for pad in ("SAME", "VALID", "CIRCULAR"):
    for ro, readout in (("flatten", stax.Flatten()), ("gap", stax.GlobalAvgPool())):
        _, _, kfn = stax.serial(stax.Conv(8, (3, 3), padding=pad, b_std=0.2), stax.Relu(),
                                stax.Conv(8, (3, 3), strides=(1, 1), padding=pad, W_std=1.2), stax.Erf(), readout,
                                stax.Dense(1, b_std=0.1))
        k = kfn(nhwc1, nhwc2, ("nngp", "ntk"))
        out[f"conv_{pad.lower()}_{ro}_nngp"] = np.asarray(k.nngp); out[f"conv_{pad.lower()}_{ro}_ntk"] = np.asarray(k.ntk)
np.savez_compressed(os.path.join(HERE, "neural_tangents_0.6.5_reference.npz"), x1=x1, x2=x2, img1=img1, img2=img2, **out)
