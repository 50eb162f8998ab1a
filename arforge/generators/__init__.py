"""Generators: the shared decoder backbone, generation orders, heads, conditioning and model families.

Families are registered model classes (``arforge.pretrained.MODEL_CLASSES``, kind ``generator``):
``raster`` (:class:`RasterGenerator`), ``nbp`` (:class:`NBPGenerator`, next-block), ``nar`` (:class:`NARGenerator`,
neighbour order), ``raster_flow`` (:class:`RasterFlowGenerator`), ``var`` (:class:`VARGenerator`), ``flowar``
(:class:`FlowARGenerator`), ``xar`` (:class:`XARGenerator`, next-cell flow), ``mar`` (:class:`MARGenerator`).
"""

from arforge.generators.backbone import Backbone, BackboneConfig
from arforge.generators.flowar import FlowARConfig, FlowARGenerator
from arforge.generators.kv_cache import KVCache
from arforge.generators.mar import MARConfig, MARGenerator
from arforge.generators.nar import NARConfig, NARGenerator
from arforge.generators.nbp import NBPConfig, NBPGenerator
from arforge.generators.orders import ORDERS, Order, Raster
from arforge.generators.raster import RasterConfig, RasterGenerator
from arforge.generators.raster_flow import RasterFlowConfig, RasterFlowGenerator
from arforge.generators.var import VARConfig, VARGenerator, var_backbone
from arforge.generators.xar import XARConfig, XARGenerator

__all__ = [
    "Backbone", "BackboneConfig", "FlowARConfig", "FlowARGenerator", "KVCache", "MARConfig", "MARGenerator", "NARConfig", "NARGenerator", "NBPConfig",
    "NBPGenerator", "ORDERS", "Order", "Raster", "RasterConfig",
    "RasterGenerator", "RasterFlowConfig", "RasterFlowGenerator", "VARConfig", "VARGenerator", "XARConfig", "XARGenerator",
    "var_backbone",
]
