"""Settings of the CNN's commands: the main job's defaults, ``--config`` and the options that
set single :class:`~problems.cnn.config.TrainingSettings` fields (shared by ``pdecontrol cnn
train`` and ``pdecontrol cnn paper``)."""

from __future__ import annotations

import argparse
from types import MappingProxyType

from pdecontrol.cli import NONE, SettingOption, UsageError, settings_from_args

from .config import LEVEL_FIELDS, LOSSES, TrainingSettings
from .network import KERNEL_BASES

__all__ = ["TRAIN_DEFAULTS", "MAIN_CONFIG", "SETTING_OPTIONS", "train_settings",
           "coarse_settings", "config_settings", "paper_settings"]

#: Defaults of ``pdecontrol cnn train`` that differ from :class:`TrainingSettings`: the main job,
#: a few minutes on 2 cores that show coarse-to-fine training working (docs/cli.md, "Measured":
#: 4,000 / 1,000 synthetic images, 16x16 -> 32x32, 6 outer iterations per level of 2 Gauss-Newton
#: steps on batches of 1,000; random start 77.6%, prolonged start 89.9%, final 95.6%). The network
#: and regularisation are those of ``pdecontrol cnn paper --config strong`` but for residual kernels
#: twice (not three times) the default scale: larger random kernels give richer starting features,
#: and the high-order penalty (orders >= 2) keeps them smooth enough to prolong. 4,000 training
#: images is the largest set with the cheap dual classifier solve (2,000 overfit the 8,192
#: classifier features per class: 99.8% training, 88.7% validation at kernel scale 3).
TRAIN_DEFAULTS = MappingProxyType(
    {
        "data": "synthetic",
        "n_train": 4000,
        "n_val": 1000,
        "mode": "multilevel",
        "levels": 2,
        "consistency_weight": 1.0,
        "settings": MappingProxyType(
            {
                "n_channels": 8,
                "kernel_scale": 2.0,
                "opening_scale": 3.0,
                "high_order_penalty": 1e-3,
                "high_order_min_order": 2,
                "outer_iterations": 6,
                "batch_size": 1000,
            }
        ),
    }
)
#: ``--config`` of ``pdecontrol cnn train``: the main job's settings, else a named configuration
#: of :data:`problems.cnn.paper.PAPER_CONFIGS`.
MAIN_CONFIG = "main"
_ACTIVATIONS = ("tanh", "relu", "smooth_relu")



def _setting_options() -> tuple:
    network, regularisation, schedule = "network", "regularisation", "schedule"
    return (
        SettingOption("--channels", "n_channels", int, "channels C of the residual layers",
                      network),
        SettingOption("--layers", "n_steps", int, "residual layers (time steps)", network),
        SettingOption("--final-time", "final_time", float, "time horizon T", network,
                      none_shown="the number of layers"),
        SettingOption("--activation", "activation", str, "activation of the residual layers",
                      network, choices=_ACTIVATIONS),
        SettingOption("--opening-activation", "opening_activation", str,
                      "activation after the opening convolution (none: linear, as the paper)",
                      network, choices=("none",) + _ACTIVATIONS, none_spelling="none"),
        SettingOption("--kernel-basis", "kernel_basis", str,
                      "kernel parameters: stencil weights or derivative-basis coefficients",
                      network, choices=KERNEL_BASES),
        SettingOption("--loss", "loss", str,
                      "least_squares (the paper) or softmax_cross_entropy", network,
                      choices=tuple(LOSSES)),
        SettingOption("--stepper", "stepper", str, "time integrator (euler: the ResNet)",
                      network, choices=("euler", "midpoint", "rk4")),
        SettingOption("--dtype", "dtype", str, "compute dtype", network,
                      choices=("float32", "float64")),
        SettingOption("--kernel-scale", "kernel_scale", float,
                      "scale of the random initial residual kernels", network),
        SettingOption("--opening-scale", "opening_scale", float,
                      "scale of the random initial opening kernels", network),
        SettingOption("--high-order-penalty", "high_order_penalty", float,
                      "weight of the penalty on high-order derivative parts of the kernels",
                      regularisation),
        SettingOption("--high-order-min-order", "high_order_min_order", int,
                      "lowest derivative order penalised", regularisation),
        SettingOption("--time-smoothness", "time_smoothness", float,
                      "weight of the smoothness-in-time penalty on K and b", regularisation),
        SettingOption("--classifier-tikhonov", "classifier_tikhonov", float,
                      "ridge weight on the classifier W", regularisation),
        SettingOption("--outer-iterations", "outer_iterations", int,
                      "outer iterations per level or layer stage (classifier solve + "
                      "Gauss-Newton steps)", schedule),
        SettingOption("--gauss-newton-steps", "gauss_newton_steps", int,
                      "sub-sampled Gauss-Newton-CG steps per outer iteration", schedule),
        SettingOption("--cg-iterations", "cg_iterations", int,
                      "CG iterations per Gauss-Newton step", schedule),
        SettingOption("--cg-rtol", "cg_rtol", float,
                      "relative CG residual that ends a step early", schedule),
        SettingOption("--batch", "batch_size", int,
                      "examples per Gauss-Newton step (the paper: 10000); 0 uses all", schedule,
                      none_spelling="0", none_shown="all"),
        SettingOption("--gauss-newton-batch", "gauss_newton_batch_size", int,
                      "examples of the Gauss-Newton products, drawn from the step's batch; "
                      "0 = the whole batch", schedule, none_spelling="0",
                      none_shown="the whole batch"),
        SettingOption("--classifier-batch", "classifier_batch_size", int,
                      "examples the classifier (W, c) is fitted on, drawn per solve; 0 = all",
                      schedule, none_spelling="0", none_shown="all"),
        SettingOption("--classifier-curvature-batch", "classifier_curvature_batch_size", int,
                      "cross-entropy: examples of the classifier solve's Hessian products, "
                      "drawn per solve from the examples it fits; 0 = all of them", schedule,
                      none_spelling="0", none_shown="all fitted"),
        SettingOption("--classifier-newton-steps", "classifier_newton_steps", int,
                      "cross-entropy: Newton-CG steps of the classifier block per outer "
                      "iteration (0: W and c take the Gauss-Newton steps with the kernels)",
                      schedule),
        SettingOption("--classifier-start-newton-steps", "classifier_start_newton_steps", int,
                      "cross-entropy: Newton-CG steps of the classifier solve at a level's "
                      "start (random or prolonged network); 0 = as --classifier-newton-steps",
                      schedule, none_spelling="0", none_shown="as per outer iteration"),
        SettingOption("--prolongation-fit", "prolongation_fit_examples", int,
                      "after a prolongation: training examples on which the finer network's "
                      "kernels are fitted to reproduce the coarser network (0: the kernel "
                      "transfer alone)", schedule),
        SettingOption("--prolongation-fit-ridge", "prolongation_fit_ridge", float,
                      "ridge weight of that fit towards the transferred kernels", schedule),
        SettingOption("--chunk-size", "chunk_size", int,
                      "examples per forward solve (bounds memory); 0 = all", schedule,
                      none_spelling="0", none_shown="all"),
    )


#: The options of :class:`~problems.cnn.config.TrainingSettings`.
SETTING_OPTIONS = _setting_options()


def train_settings(args, base: dict) -> TrainingSettings:
    """:class:`TrainingSettings` from ``base`` and the options given (seed included)."""
    base = dict(base)
    base["seed"] = args.seed if args.seed is not None else base.get("seed", 0)
    return settings_from_args(args, SETTING_OPTIONS, base, TrainingSettings)


def coarse_settings(texts, settings: TrainingSettings) -> dict:
    """``--coarse NAME=VALUE ...`` of ``pdecontrol cnn train``: ``{field: value}`` for the
    coarser levels of a multilevel run. ``NAME`` is a setting option of a
    :data:`~problems.cnn.config.LEVEL_FIELDS` field without its dashes (``classifier-batch``),
    the value read as that option reads it (``0``: all); a bad entry is a :class:`UsageError`."""
    options = {option.flag[2:]: option for option in SETTING_OPTIONS
               if option.field in LEVEL_FIELDS}
    changes = {}
    for text in texts:
        name, equals, value = text.partition("=")
        if name not in options or not equals:
            raise UsageError(f"--coarse takes NAME=VALUE with NAME one of "
                             f"{', '.join(options)}, got {text!r}")
        try:
            parsed = options[name].parse(value)
        except argparse.ArgumentTypeError as error:
            raise UsageError(f"--coarse {name}: {error}") from None
        changes[options[name].field] = None if parsed is NONE else parsed
    try:
        on_level = settings.on_level(changes, "--coarse")
    except (TypeError, ValueError) as error:
        message = str(error)
        for name, option in options.items():
            message = message.replace(f"TrainingSettings.{option.field}", name)
        raise UsageError(f"--coarse: {message}") from None
    return {field: getattr(on_level, field) for field in changes}


def config_settings(name: str) -> dict:
    """The settings (a dict) of ``--config name`` of ``pdecontrol cnn train``."""
    from .paper import PAPER_CONFIGS

    if name == MAIN_CONFIG:
        return dict(TRAIN_DEFAULTS["settings"])
    return PAPER_CONFIGS[name].to_dict()


def paper_settings(args):
    """``(settings, config_name)`` of ``pdecontrol cnn paper``: the ``--config`` with the options
    given on the command line applied; the name lists every setting changed from the config."""
    from .paper import PAPER_CONFIGS

    base = PAPER_CONFIGS[args.config].to_dict()
    settings = train_settings(args, base)
    changed = [f"{field}={value}" for field, value in settings.to_dict().items()
               if field != "seed" and value != base[field]]
    return settings, args.config + (f" with {', '.join(changed)}" if changed else "")
