"""What ``--resume`` reads: a checkpoint of :func:`medfuse.training.loop.train`, loaded safely
and checked field by field against the run that continues it before anything of it is used.

A checkpoint is a dict written by ``torch.save``: ``model`` (the model's state dict),
``optimiser`` (Adam's state dict), ``rank_rngs`` (each rank's numpy bit generator state; an
older checkpoint has one ``rng``), ``world_size``, ``torch_rng`` (torch's CPU generator state),
``step``, ``log`` (the validation records), ``trace`` (``[step, loss]`` points of the plot),
``elapsed`` (seconds) and ``config`` (the settings of the run). A file that is not that, a
foreign or edited one included, is an :class:`~medfuse._shared.errors.InputError` in one line
that names the file and the field, never a TypeError or KeyError from inside the loop.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TypeGuard

import numpy as np
import torch

from medfuse._shared.errors import InputError, one_line

CHECKPOINT_KEYS = ("model", "optimiser", "torch_rng", "step", "log", "elapsed", "config")
"""The keys every checkpoint has (besides ``rank_rngs`` or an older one's ``rng``)."""
ADAM_SETTINGS = ("lr", "betas", "eps", "weight_decay")
"""The settings of an optimiser's parameter group that torch does not fill in when they are missing."""
ADAM_MOMENTS = ("exp_avg", "exp_avg_sq")
"""Adam's per-parameter moments, tensors of the parameter's shape (and ``max_exp_avg_sq`` with amsgrad)."""


def read_checkpoint(path: Path, device: torch.device) -> dict:
    """A checkpoint written by :func:`~medfuse.training.loop.train`, read with torch's restricted
    unpickler (``weights_only=True``: tensors, numbers, strings and containers only, so a crafted
    file cannot run code); :class:`~medfuse._shared.errors.InputError` in one line for a damaged,
    empty or foreign file. Its fields are checked by :func:`check_checkpoint`."""
    try:
        with warnings.catch_warnings():  # torch's notes on a foreign file's pickle protocol: the error says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad bytes
        raise InputError(f"{path}: not a readable medfuse checkpoint ({one_line(error)})") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise InputError(f"{path}: not a medfuse checkpoint (no {', '.join(missing)})")
    return state


class _Checker:
    """The checks of one checkpoint file: each refusal names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field: str, why: str) -> NoReturn:
        raise InputError(one_line(f"{self.path}: not a usable medfuse checkpoint: {field} {why}"))

    def integer(self, field: str, value: object, low: int, high: float = math.inf) -> int:
        if not _is_integer(value) or not low <= value <= high:
            bound = f"from {low} to {high}" if high != math.inf else f"of at least {low}"
            self.fail(field, f"is {_shown(value)}, not an integer {bound}")
        return value

    def number(self, field: str, value: object, finite: bool = True) -> float:
        if not _is_number(value) or (finite and not math.isfinite(value)):
            self.fail(field, f"is {_shown(value)}, not a{' finite' if finite else ''} number")
        return value

    def mapping(self, field: str, value: object) -> dict:
        if not isinstance(value, dict):
            self.fail(field, f"is {_shown(value)}, not a dict")
        return value

    def sequence(self, field: str, value: object, length: int | None = None) -> Sequence:
        if not isinstance(value, (list, tuple)):
            self.fail(field, f"is {_shown(value)}, not a list")
        if length is not None and len(value) != length:
            self.fail(field, f"has {len(value)} entries, not {length}")
        return value

    def tensor(self, field: str, value: object, shape: torch.Size | None = None, floating: bool = True) -> torch.Tensor:
        if not torch.is_tensor(value):
            self.fail(field, f"is {_shown(value)}, not a tensor")
        if shape is not None and value.shape != shape:
            self.fail(field, f"has shape {tuple(value.shape)}, not {tuple(shape)}")
        if floating and not value.is_floating_point():
            self.fail(field, f"holds {value.dtype}, not floating-point numbers")
        if floating and not bool(torch.isfinite(value).all()):
            self.fail(field, "holds values that are not finite (NaN or infinite)")
        return value


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: object) -> str:
    """A value as a message shows it: short, one line."""
    if torch.is_tensor(value):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else f"a {type(value).__name__}"


def check_checkpoint(
    state: dict,
    path: Path,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    world_size: int,
    steps: int,
    record_keys: Sequence[str],
    settings: Sequence[str],
) -> None:
    """Refuse, in one line naming the field, a checkpoint (from :func:`read_checkpoint`) that the
    run of ``model`` and ``optimiser`` on ``world_size`` ranks for ``steps`` steps cannot continue:
    a field of the wrong type, a model or optimiser state that does not fit the model (the
    message then names the run's ``settings`` as the checkpoint recorded them), too few or
    malformed generator states, a step out of range or a log that does not end at it (each
    record has ``step``, ``train_loss`` and ``record_keys``). Nothing of the checkpoint is used
    before it passes."""
    check = _Checker(path)
    config = check.mapping("config", state["config"])
    saved_world = check.integer("world_size", state.get("world_size", 1), 1)
    if saved_world != world_size:
        raise InputError(
            f"{path} was made by {saved_world} process(es); resume it with as many (this run has {world_size})"
        )
    _check_model(check, state["model"], model, config, settings)
    _check_optimiser(check, state["optimiser"], optimiser)
    check.tensor("torch_rng", state["torch_rng"], torch.get_rng_state().shape, floating=False)
    if state["torch_rng"].dtype != torch.uint8:
        check.fail("torch_rng", f"holds {state['torch_rng'].dtype}, not bytes (torch.uint8)")
    if "rank_rngs" in state:
        for rank, rng_state in enumerate(check.sequence("rank_rngs", state["rank_rngs"], world_size)):
            _check_bit_generator(check, f"rank_rngs[{rank}]", rng_state)
    elif "rng" in state:
        _check_bit_generator(check, "rng", state["rng"])
    else:
        check.fail("rank_rngs", "is missing (each rank's random generator state)")
    step = check.integer("step", state["step"], 1)
    if step > steps:
        raise InputError(
            f"{path} is at step {step}, beyond this run's {steps} steps; resume it with more steps in all (--steps)"
        )
    _check_log(check, state["log"], step, ("train_loss", *record_keys))
    for index, point in enumerate(check.sequence("trace", state.get("trace", []))):
        check.sequence(f"trace[{index}]", point, 2)
        check.integer(f"trace[{index}] step", point[0], 1, step)
        check.number(f"trace[{index}] loss", point[1], finite=False)
    elapsed = check.number("elapsed", state["elapsed"])
    if elapsed < 0:
        check.fail("elapsed", f"is {elapsed}, a negative time")


def _check_model(check: _Checker, saved: object, model: torch.nn.Module, config: dict, settings: Sequence[str]) -> None:
    saved = check.mapping("model", saved)
    expected = model.state_dict()
    for key, value in saved.items():
        if not isinstance(key, str):
            check.fail("model", f"has a key {_shown(key)}, not a parameter name")
        check.tensor(f"model[{key!r}]", value, floating=key in expected and expected[key].is_floating_point())
    if set(saved) != set(expected) or any(saved[key].shape != value.shape for key, value in expected.items()):
        shown = " ".join(
            f"--{name.replace('_', '-')} {config[name]}"
            for name in settings
            if isinstance(config.get(name), (str, int, float)) and not isinstance(config[name], bool)
        )
        raise InputError(
            one_line(
                f"{check.path} was made with other settings{f' ({shown})' if shown else ''} "
                "or another model; resume with the same ones"
            )
        )


def _check_optimiser(check: _Checker, saved: object, optimiser: torch.optim.Optimizer) -> None:
    saved = check.mapping("optimiser", saved)
    for key in ("state", "param_groups"):
        if key not in saved:
            check.fail("optimiser", f"has no {key}")
    groups = check.sequence("optimiser param_groups", saved["param_groups"], len(optimiser.param_groups))
    shapes: dict[object, tuple[torch.Size, bool]] = {}
    for index, (group, live) in enumerate(zip(groups, optimiser.param_groups)):
        where = f"optimiser param_groups[{index}]"
        group = check.mapping(where, group)
        params = check.sequence(f"{where} params", group.get("params"), len(live["params"]))
        for position, parameter in enumerate(params):
            check.integer(f"{where} params[{position}]", parameter, 0)
            if parameter in shapes or parameter in params[:position]:
                check.fail(f"{where} params", f"names parameter {parameter} twice")
        for key in ADAM_SETTINGS:
            if key not in group:
                check.fail(where, f"has no {key}")
        for key, default in live.items():
            if key != "params" and key in group:
                _check_setting(check, f"{where} {key}", group[key], default)
        amsgrad = bool(group.get("amsgrad", live.get("amsgrad", False)))
        shapes.update(
            {parameter: (live_parameter.shape, amsgrad) for parameter, live_parameter in zip(params, live["params"])}
        )
    state = check.mapping("optimiser state", saved["state"])
    for key, entry in state.items():
        where = f"optimiser state[{_shown(key)}]"
        if key not in shapes:
            check.fail(where, "belongs to no parameter of the optimiser's groups")
        entry = check.mapping(where, entry)
        shape, amsgrad = shapes[key]
        if "step" not in entry:
            check.fail(where, "has no step")
        step = check.tensor(f"{where} step", entry["step"])
        if step.numel() != 1 or float(step) < 0:
            check.fail(f"{where} step", "is not one count of steps")
        for name in (*ADAM_MOMENTS, *(("max_exp_avg_sq",) if amsgrad else ())):
            if name not in entry:
                check.fail(where, f"has no {name}")
            check.tensor(f"{where} {name}", entry[name], shape)


def _check_setting(check: _Checker, field: str, value: object, default: object) -> None:
    """One setting of an optimiser's parameter group, against the live optimiser's value."""
    if default is None or isinstance(default, bool):
        if not (isinstance(value, bool) or (default is None and value is None)):
            check.fail(field, f"is {_shown(value)}, not {'a flag or None' if default is None else 'a flag'}")
    elif _is_number(default):
        number = check.number(field, value)
        positive = field.endswith((" lr", " eps"))
        if number < 0 or (positive and number == 0):
            check.fail(field, f"is {number}, not a {'positive' if positive else 'non-negative'} number")
    elif isinstance(default, (tuple, list)):
        for position, item in enumerate(check.sequence(field, value, len(default))):
            number = check.number(f"{field}[{position}]", item)
            if field.endswith(" betas") and not 0 <= number < 1:
                check.fail(f"{field}[{position}]", f"is {number}, not in [0, 1)")
    elif type(value) is not type(default):
        check.fail(field, f"is {_shown(value)}, not a {type(default).__name__}")


def _check_bit_generator(check: _Checker, field: str, saved: object) -> None:
    """A numpy PCG64 state: ``bit_generator``, ``state`` (``state`` and ``inc``, 128-bit),
    ``has_uint32`` (0 or 1) and ``uinteger`` (32-bit)."""
    saved = check.mapping(field, saved)
    name = type(np.random.default_rng().bit_generator).__name__
    if saved.get("bit_generator") != name:
        check.fail(f"{field} bit_generator", f"is {_shown(saved.get('bit_generator'))}, not {name!r}")
    inner = check.mapping(f"{field} state", saved.get("state"))
    for key in ("state", "inc"):
        check.integer(f"{field} state {key}", inner.get(key), 0, 2**128 - 1)
    check.integer(f"{field} has_uint32", saved.get("has_uint32"), 0, 1)
    check.integer(f"{field} uinteger", saved.get("uinteger"), 0, 2**32 - 1)


def _check_log(check: _Checker, log: object, step: int, keys: Sequence[str]) -> None:
    """The validation records: at least one, steps rising to the checkpoint's, each with ``keys``."""
    records = check.sequence("log", log)
    if not records:
        check.fail("log", "is empty (a checkpoint is written after a validation)")
    previous = 0
    for index, record in enumerate(records):
        where = f"log[{index}]"
        record = check.mapping(where, record)
        record_step = check.integer(f"{where} step", record.get("step"), previous + 1, step)
        previous = record_step
        for key in keys:
            if key not in record:
                check.fail(where, f"has no {key}")
            check.number(f"{where} {key}", record[key], finite=False)
        for key, value in record.items():  # the log is written again as JSON
            if not isinstance(key, str) or not (value is None or isinstance(value, (str, int, float))):
                check.fail(f"{where} {_shown(key)}", f"is {_shown(value)}, not a number or text")
    if previous != step:
        check.fail("log", f"ends at step {previous}, not at the checkpoint's step {step}")


def restore(
    state: dict,
    path: Path,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    rng: np.random.Generator,
    rank: int,
) -> None:
    """Load a checked checkpoint into ``model``, ``optimiser``, this rank's ``rng`` and torch's
    generator. Anything torch or numpy still refuses is the same one-line error."""
    try:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        rng.bit_generator.state = state["rank_rngs"][rank] if "rank_rngs" in state else state["rng"]
        torch.set_rng_state(state["torch_rng"].cpu())
    except (RuntimeError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as error:
        raise InputError(f"{path}: not a usable medfuse checkpoint ({one_line(error)})") from None
