"""A weight-sharing supernet over a block-wise MobileNetV3 space, in the manner of Once-for-All.

* elastic kernel: one 7x7 depthwise kernel per block; 5x5 is its centre through a learned 25x25
  transform, 3x3 the centre of that through a learned 9x9 transform;
* elastic width: expansion, stage output and stem widths are channel prefixes of the largest
  layer (``sort_channels`` orders expansion channels by importance so prefixes keep the best);
* elastic depth: a stage of depth d uses its first d blocks;
* squeeze-excite and activation are switched per block; each head choice has its own head.

``extract(spec)`` returns the ordinary network of ``nas.build_model(spec)`` carrying the
supernet's weights, so a sub-network is evaluated, measured and exported like any model.
Training follows Once-for-All's progressive shrinking: the largest network alone, then elastic
kernel and depth, then expansion, then every choice (``ELASTIC_ORDER``), each phase with the
sandwich rule (largest, smallest and random sub-networks every step).

:mod:`~nas.accuracy.supernet.elastic` holds the modules, :mod:`~nas.accuracy.supernet.sampling`
which sub-networks are trained, :mod:`~nas.accuracy.supernet.training` the training, its
checkpoints and cache, :mod:`~nas.accuracy.supernet.estimator` the scoring of sub-networks.
"""

from nas.accuracy.supernet.elastic import Supernet
from nas.accuracy.supernet.estimator import (
    DEFAULT_FINETUNE_STEPS,
    FINETUNE_LR,
    SupernetEstimator,
    finetune_recipe,
)
from nas.accuracy.supernet.sampling import (
    ELASTIC_ORDER,
    largest_spec,
    sample_elastic,
    sample_phase,
    sandwich_smallest,
    smallest_spec,
)
from nas.accuracy.supernet.training import (
    CHECKPOINT_VERSION,
    SupernetRecipe,
    cached_supernet,
    load_supernet,
    save_checkpoint,
    supernet_cache_path,
    train_supernet,
)

__all__ = ["CHECKPOINT_VERSION", "DEFAULT_FINETUNE_STEPS", "ELASTIC_ORDER", "FINETUNE_LR",
           "Supernet", "SupernetEstimator", "SupernetRecipe", "cached_supernet", "finetune_recipe",
           "largest_spec", "load_supernet", "sample_elastic", "sample_phase", "sandwich_smallest",
           "save_checkpoint", "smallest_spec", "supernet_cache_path", "train_supernet"]
