"""STEM physics: constants, specimens, probe, detectors, imaging, dose, noise and damage."""

from stemjax.physics.constants import interaction_parameter, lorentz_factor, wavelength
from stemjax.physics.detector import AnnularDetector, max_scattering_angle
from stemjax.physics.haadf import IncoherentImaging, annular_cross_section
from stemjax.physics.probe import (
    ABERRATION_SYMBOLS,
    Probe,
    nyquist_probe_step,
    point_resolution,
    scherzer_defocus,
)
from stemjax.physics.scan import ScanDistortion, ScanGrid, ScanPath, distorted_path
from stemjax.physics.specimen import Specimen, concatenate, make_specimen

__all__ = [
    "ABERRATION_SYMBOLS",
    "AnnularDetector",
    "IncoherentImaging",
    "Probe",
    "ScanDistortion",
    "ScanGrid",
    "ScanPath",
    "Specimen",
    "annular_cross_section",
    "concatenate",
    "distorted_path",
    "interaction_parameter",
    "lorentz_factor",
    "make_specimen",
    "max_scattering_angle",
    "nyquist_probe_step",
    "point_resolution",
    "scherzer_defocus",
    "wavelength",
]
