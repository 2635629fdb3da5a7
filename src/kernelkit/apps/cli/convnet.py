"""``kernelkit convnet``: the ConvNet systems' commands.

unireplknet (:mod:`kernelkit.apps.cli.unireplknet`): ``erf``, ``train``, ``modality``;
mixconv (:mod:`kernelkit.apps.cli.mixconv`): ``mixconv-ablation``, ``mixnet-info``.
Their configs are in :mod:`kernelkit.apps.configs.convnet`.
"""

from __future__ import annotations

import typer

from kernelkit.apps.cli import mixconv as cli_mixconv
from kernelkit.apps.cli import unireplknet as cli_unireplknet

app = typer.Typer(no_args_is_help=True)
cli_unireplknet.add_commands(app)
cli_mixconv.add_commands(app)
