"""Dataset-level analyses, one file each, registered by name in ANALYSES."""
from . import (accuracy, adversarial, calibration, entropy, faithfulness, filters, gate, gated_path, iam,  # noqa: F401
               influential, influential_maps, layers, masking, noise, ood, pca, retrain, rotation,
               selectivity as _selectivity, similarity, trajectory, unit_ablation, units)
from .base import ANALYSES, FeatureCache, register_analysis, spearman
from .selectivity import class_means, selectivity_index

__all__ = ["ANALYSES", "FeatureCache", "class_means", "register_analysis", "selectivity_index", "spearman"]
