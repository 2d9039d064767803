"""Test-set metrics, calibration, figures and the HTML report."""

from skin_lesion.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
