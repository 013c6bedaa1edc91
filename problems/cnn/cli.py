"""The CNN's commands: ``pdecontrol cnn train | evaluate | paper | plot``.

* ``train``: train the CNN (``--mode single|multilevel|time|consistent``) on the embedded
  synthetic set (default, no download), the embedded synthetic volumes (3D) or MNIST, and write
  a run directory
  (:mod:`problems.cnn.run_outputs`);
* ``evaluate NETWORK --resolution N``: accuracy of a trained network moved to another
  resolution (restricted, classifier-only, re-solved, prolonged, interpolated input);
* ``paper``: the MNIST experiments of Haber, Ruthotto & Holtham (section 5), next to their numbers;
* ``plot RUN_DIR``: redraw the figures of a run directory (``train`` or ``paper``).

Registered with the framework's command line (:mod:`pdecontrol.cli`) as the entry point
``cnn`` of the group ``pdecontrol.problems``; the framework owns run directories, resume, logging
and exit statuses, this module only the CNN's options and what its commands do. ``train`` is in
:mod:`problems.cnn.cli_train`, the options and checks the commands share in
:mod:`problems.cnn.cli_shared`.
"""

from __future__ import annotations

from pathlib import Path

from pdecontrol.cli import Command, ProblemCommands, UsageError, add_setting_options
from pdecontrol.io import make_folder, remove_partial_files, write_json, write_netcdf
from pdecontrol.memory import check_memory
from pdecontrol.mesh import Mesh
from pdecontrol.transfer import restrict_image

from .cli_settings import SETTING_OPTIONS, TRAIN_DEFAULTS, paper_settings, train_settings
from .cli_shared import (
    add_data_options,
    add_transfer_options,
    load_from_config,
    network_paths,
    transfer_config,
)
from .cli_train import MODES, TrainCommand
from .data.sets import MNIST_RESOLUTION, check_resolution, load_image_sets
from .memory import evaluation_memory, training_memory
from .report import train_report
from .run_outputs import run_transfers

__all__ = [
    "COMMANDS",
    "TRAIN_DEFAULTS",
    "MODES",
    "CLI_VARIANTS",
    "SETTING_OPTIONS",
    "train_settings",
    "paper_settings",
    "train_report",
]

#: Evaluation variants of the command line and the column of
#: :func:`problems.cnn.evaluation.evaluate_across_scales` each reads.
CLI_VARIANTS = {
    "restricted": "galerkin",
    "prolonged": "galerkin",
    "native": "galerkin",
    "classifier-only": "classifier_only",
    "resolved": "galerkin_refit_classifier",
    "interpolated": "interpolated_input",
    "rediscretized": "rediscretized",
    "rediscretized-resolved": "rediscretized_refit_classifier",
}
# Variants that re-solve ``(W, c)`` on the training images (they need them loaded).
_REFIT_VARIANTS = frozenset({"resolved", "rediscretized-resolved"})
# Variants run only when named with ``--variant`` (or when the run trained with rediscretized
# transfers); they apply to coarser and finer meshes.
_OPT_IN_VARIANTS = frozenset({"rediscretized", "rediscretized-resolved"})


# ---------------------------------------------------------------------- evaluate
class EvaluateCommand(Command):
    """``pdecontrol cnn evaluate NETWORK --resolution N``."""

    name = "evaluate"
    help = "accuracy of a trained network at any resolution"
    description = ("Move a trained network to another resolution (Galerkin restriction or "
                   "prolongation) and measure its accuracy on the validation images of its run "
                   "at that resolution. Prints a table; writes evaluation_<n>.json and .nc.")

    def add_arguments(self, parser):
        parser.add_argument("network", metavar="NETWORK", help="a run directory or its network.nc")
        parser.add_argument("--resolution", type=int, required=True,
                            help="image resolution n to evaluate at (the network's n times a "
                                 "power of 2)")
        parser.add_argument(
            "--variant", action="append", choices=tuple(CLI_VARIANTS), default=None,
            help="repeatable; restricted/prolonged: Galerkin kernels, W moved, no data; "
                 "classifier-only: only W restricted; resolved: kernels moved, W re-solved on "
                 "the training images at n; interpolated: coarse images interpolated to the "
                 "network's mesh; rediscretized, rediscretized-resolved: as restricted/prolonged "
                 "and resolved with rediscretized kernels (only when named, or when the "
                 "network's run trained with --kernel-transfer rediscretize). Default: all "
                 "others that apply")
        group = add_data_options(parser, training=False)
        group.description = "default: the data of the network's run"
        parser.add_argument("--out", default=None,
                            help="output directory (default: the run directory of the "
                                 "network file)")

    def run(self, args) -> int:
        from .evaluation import (
            EVALUATION_FORMAT,
            as_labelled_images,
            evaluate_across_scales,
            levels_between,
        )
        from .network_file import read_network_file

        network_path, run_dir = network_paths(args.network)
        if not network_path.is_file():
            raise UsageError(
                f"no network file at {network_path}; give a run directory or its network.nc")
        network_file = read_network_file(network_path)
        network = network_file.network
        run = dict(network_file.metadata.get("run", {}))
        for key, value in (("data", args.data), ("n_train", args.n_train),
                           ("n_val", args.n_val), ("data_dir", args.data_dir)):
            if value is not None:
                run[key] = value
        missing = [k for k in ("data", "n_train", "n_val", "seed") if k not in run]
        if missing:
            raise UsageError(f"{network_path} does not record its data ({missing}); give "
                             "--data, --n-train and --n-val")
        run.setdefault("data_dir", None)
        resolution = check_resolution(args.resolution)
        network_resolution = network.mesh.shape[0]
        check_memory(evaluation_memory(network.settings, resolution=resolution,
                                       network_resolution=network_resolution,
                                       n_train=run["n_train"], n_val=run["n_val"],
                                       refit=args.variant is None
                                       or not _REFIT_VARIANTS.isdisjoint(args.variant),
                                       n_classes=network.problem.n_classes,
                                       dim=network.problem.dim),
                     what=f"evaluating at {resolution}x{resolution}")
        centring = network.mesh.centring
        target = Mesh((resolution,) * network.problem.dim, extent=network.mesh.extent,
                      origin=network.mesh.origin, centring=centring)
        try:
            levels = levels_between(network.mesh, target)
        except ValueError:
            raise UsageError(
                f"--resolution {resolution} is not on the mesh hierarchy of the network "
                f"({'x'.join(map(str, network.mesh.shape))}): use its size times or divided by "
                "a power of 2") from None
        applicable = ({"restricted", "classifier-only", "resolved", "interpolated"} if levels > 0
                      else {"prolonged", "resolved"} if levels < 0 else {"native", "resolved"})
        if levels:
            applicable |= _OPT_IN_VARIANTS
        requested = args.variant or sorted(applicable - {"resolved"} - _OPT_IN_VARIANTS) + [
            "resolved"]
        if (args.variant is None and levels
                and run_transfers(run)["kernel_transfer"] == "rediscretize"):
            # a network trained with rediscretized transfers: show them too
            requested += ["rediscretized", "rediscretized-resolved"]
        wrong = [v for v in requested if v not in applicable]
        if wrong:
            raise UsageError(
                f"--variant {wrong[0]} does not apply at {resolution}x{resolution} for a network "
                f"on {'x'.join(map(str, network.mesh.shape))}; use one of {sorted(applicable)}")
        needs_refit = not _REFIT_VARIANTS.isdisjoint(requested)
        # images at the finer of the two resolutions, restricted to the coarser (as in training)
        source_resolution = max(network_resolution, resolution)
        if run["data"] == "mnist" and source_resolution > MNIST_RESOLUTION:
            raise UsageError(
                f"MNIST images are 28x28: --resolution {resolution} cannot be evaluated")
        train, validation = load_from_config(run, source_resolution, centring=centring)
        dim = network.problem.dim
        down = levels_between(Mesh((source_resolution,) * dim), Mesh((resolution,) * dim))
        sigma = run_transfers(run)["smoothing_sigma"]

        def at_resolution(dataset):
            # restricted as in the network's training: its centring's R, its smoothing
            images, labels = as_labelled_images(dataset)
            return (restrict_image(images, dim, down, sigma, centring) if down else images,
                    labels)

        columns = sorted({CLI_VARIANTS[v] for v in requested})
        table = evaluate_across_scales(
            network, [at_resolution(validation)],
            refit_sets=[at_resolution(train)] if needs_refit else None, variants=columns)
        accuracy = {v: float(table["accuracy"].sel(resolution=resolution,
                                                   variant=CLI_VARIANTS[v]))
                    for v in requested}
        out = Path(args.out) if args.out is not None else run_dir
        make_folder(out)
        renamed = table.assign_coords(variant=[
            next(v for v in requested if CLI_VARIANTS[v] == c) for c in table["variant"].values])
        renamed.attrs.update({"network": str(network_path), "data": run["data"],
                              "n_validation": int(validation.sizes["example"])})
        write_netcdf(out / f"evaluation_{resolution}.nc", renamed, format=EVALUATION_FORMAT)
        result = {
            "network": str(network_path),
            "network_resolution": network_resolution,
            "centring": centring,
            "smoothing_sigma": sigma,
            "resolution": resolution,
            "levels": levels,
            "data": run["data"],
            "n_validation": int(validation.sizes["example"]),
            "n_refit": int(train.sizes["example"]) if needs_refit else 0,
            "accuracy": accuracy,
        }
        write_json(out / f"evaluation_{resolution}.json", result)
        print(f"network {network_resolution}x{network_resolution} ({centring}-centred) "
              f"evaluated at {resolution}x{resolution} on {result['n_validation']} validation "
              f"images ({run['data']})")
        print(f"{'variant':<16} {'accuracy':>9}")
        for variant, value in accuracy.items():
            print(f"{variant:<16} {100 * value:>8.2f}%")
        print(f"written: {out / f'evaluation_{resolution}.json'}, "
              f"{out / f'evaluation_{resolution}.nc'}")
        return 0


# ---------------------------------------------------------------------- paper
class PaperCommand(Command):
    """``pdecontrol cnn paper``: the paper's MNIST experiments (:mod:`problems.cnn.paper`)."""

    name = "paper"
    help = "reproduce the MNIST experiments of the paper (section 5)"
    description = ("MNIST 28x28 and 14x14, 40,000 / 20,000 split: fine-only vs multilevel "
                   "training, restricted-network inference and the W-only ablation, the "
                   "prolonged start. Writes paper_table.md (every number of the paper next to "
                   "ours), results.json, histories and figures into --out.")

    def add_arguments(self, parser):
        from .paper import CONSISTENT_STARTS, PAPER_CONFIGS

        parser.add_argument(
            "--config", choices=tuple(PAPER_CONFIGS), default="paper",
            help="network and schedule: 'paper' (random-kernel start near the paper's 83%%, the "
                 "paper's schedule) or 'strong' (wider, high-order penalty, smaller Gauss-Newton "
                 "batches); the network, regularisation and schedule options below override it")
        parser.add_argument("--data-dir", default=None,
                            help="directory of the MNIST IDX files (default "
                                 "$PDECONTROL_DATA_DIR)")
        parser.add_argument("--n-train", type=int, default=40_000,
                            help="training images (default 40000)")
        parser.add_argument("--n-val", type=int, default=20_000,
                            help="validation images (default 20000)")
        parser.add_argument("--consistent", action="store_true",
                            help="also train the resolution-consistent network (fine + coarse "
                                 "loss)")
        parser.add_argument("--consistency-weight", type=float, default=1.0,
                            help="weight of the 14x14 loss in --consistent training "
                                 "(default 1.0)")
        parser.add_argument("--consistent-from", choices=CONSISTENT_STARTS, default="random",
                            help="--consistent training starts from random kernels (default) or "
                                 "continues from the final multilevel network")
        parser.add_argument("--consistent-iterations", type=int, default=None,
                            help="outer iterations of --consistent training (default: "
                                 "--outer-iterations)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the split and the kernels")
        parser.add_argument("--out", default=None,
                            help="output directory (default runs/paper-<config>)")
        add_transfer_options(parser.add_argument_group(
            "transfers", "how the 14x14 images and the networks are moved between meshes"))
        add_setting_options(parser, SETTING_OPTIONS, defaults_from="--config")

    def run(self, args) -> int:
        from .paper import reproduce_paper

        settings, config_name = paper_settings(args)
        transfers = run_transfers(transfer_config(args, "multilevel"))
        if args.consistent_iterations is not None and args.consistent_iterations < 1:
            raise UsageError(
                f"--consistent-iterations must be >= 1, got {args.consistent_iterations}")
        out = Path(args.out) if args.out is not None else Path("runs") / f"paper-{args.config}"
        check_memory(training_memory(settings, resolution=MNIST_RESOLUTION, n_train=args.n_train,
                                     n_val=args.n_val), what="this paper job")
        if out.is_dir():  # a rerun continues: drop what a killed run was writing
            remove_partial_files(out)
        train, validation = load_image_sets("mnist", MNIST_RESOLUTION, args.n_train, args.n_val,
                                            seed=args.seed, data_dir=args.data_dir)
        report = reproduce_paper(
            train, validation, settings, out, config_name=config_name,
            consistent=args.consistent, consistency_weight=args.consistency_weight,
            consistent_start=args.consistent_from,
            consistent_iterations=args.consistent_iterations, progress=args.quiet == 0,
            **transfers)
        print(f"written: {report['table']}")
        print(Path(report["table"]).read_text())
        return 0


# ---------------------------------------------------------------------- plot
class PlotCommand(Command):
    """``pdecontrol cnn plot RUN_DIR``: a ``train`` run directory, or a ``paper`` output
    directory (recognised by its ``paper_table.md``)."""

    name = "plot"
    help = "redraw the figures of a run directory"
    description = ("Redraw figures/*.png of a run directory from its files (no training, no "
                   "data).")

    def add_arguments(self, parser):
        parser.add_argument("run_dir", help="a run directory of pdecontrol cnn train, or an "
                                            "output directory of pdecontrol cnn paper")

    def run(self, args) -> int:
        run_dir = Path(args.run_dir)
        if (run_dir / "paper_table.md").is_file():
            from .paper import write_paper_figures

            try:
                paths = write_paper_figures(run_dir)
            except FileNotFoundError as error:
                raise UsageError(str(error)) from None
        else:
            from .run_outputs import write_run_figures

            paths = write_run_figures(run_dir)
        for path in paths:
            print(path)
        return 0


#: The CNN's entry in the ``pdecontrol`` command line (entry point ``cnn``).
COMMANDS = ProblemCommands(
    "cnn",
    "the multiscale CNN (Haber, Ruthotto & Holtham, arXiv 1703.02009): train, evaluate across "
    "resolutions, reproduce the paper's MNIST experiments, plot",
    (TrainCommand(), EvaluateCommand(), PaperCommand(), PlotCommand()),
)
