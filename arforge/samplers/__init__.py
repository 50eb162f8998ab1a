"""Samplers: decoding algorithms over any generator, sharing logits processing and CFG schedules.

Public API: :class:`Sampler`, :func:`register_sampler`, :func:`build_sampler`, :class:`SampleResult`,
:class:`SamplerStats`, :class:`LogitsPipeline`, :class:`CFGSchedule`; built-in: ``ar``, ``sjd``,
``sjd_lantern``, ``zipar``, ``zipar_sjd``, ``mar``, ``var``, ``flowar``, ``raster_flow``, ``xar``. The shared speculative rule is :func:`arforge.samplers.speculative.verify`.
"""

from arforge.samplers.ar import ARSampler
from arforge.samplers.base import SAMPLERS, Sampler, SampleResult, SamplerStats, build_sampler, register_sampler
from arforge.samplers.cfg import CFGSchedule
from arforge.samplers.flowar import FlowARSampler
from arforge.samplers.logits import LogitsPipeline, Temperature, TopK, TopP, sample_from_probs
from arforge.samplers.lantern import LanternRelaxation, SJDLanternSampler
from arforge.samplers.mar import MARSampler
from arforge.samplers.raster_flow import RasterFlowSampler
from arforge.samplers.sjd import SJDSampler
from arforge.samplers.speculative import verify
from arforge.generators.orders.zipar import zipar_schedule
from arforge.samplers.zipar import ZipARSampler
from arforge.samplers.var import VARSampler
from arforge.samplers.zipar_sjd import ZipARSJDSampler
from arforge.samplers.xar import XARSampler

__all__ = [
    "ARSampler", "CFGSchedule", "FlowARSampler", "LanternRelaxation", "LogitsPipeline", "MARSampler", "RasterFlowSampler", "SJDLanternSampler", "SJDSampler", "VARSampler", "XARSampler", "ZipARSampler", "ZipARSJDSampler", "zipar_schedule", "SAMPLERS", "SampleResult", "Sampler", "SamplerStats",
    "Temperature", "TopK", "TopP", "build_sampler", "register_sampler", "sample_from_probs", "verify",
]
