"""Dataset-level analyses, one file each, registered by name in ANALYSES."""
from . import (accuracy, calibration, entropy, faithfulness, filters, gate, iam, influential, layers, masking, noise,  # noqa: F401
               ood, pca, retrain, rotation, selectivity as _selectivity, similarity, trajectory, unit_ablation, units)
from .base import ANALYSES, FeatureCache, register_analysis, spearman
from .selectivity import class_means, selectivity_index

__all__ = ["ANALYSES", "FeatureCache", "class_means", "register_analysis", "selectivity_index", "spearman"]
