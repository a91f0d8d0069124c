"""STEM physics: constants, specimens, potentials, probe, detectors, imaging (incoherent,
multislice-calibrated incoherent and multislice), dose, noise, damage and Bayesian inversion."""

from stemjax.physics.acquisition import Acquisition, Recording, acquire
from stemjax.physics.calibration import ColumnCalibration, calibration_table, load_calibration
from stemjax.physics.constants import interaction_parameter, lorentz_factor, wavelength
from stemjax.physics.crystals import gan, mx2_monolayer, nanoparticle_on_support, perovskite, sige
from stemjax.physics.damage import (
    apply_damage,
    displacement_cross_section,
    displacement_probability,
    max_transferred_energy,
)
from stemjax.physics.defects import add_paired_vacancies, add_phase_domains, add_point_defects, rotated
from stemjax.physics.detector import (
    AnnularDetector,
    max_scattering_angle,
    radial_bins,
    radial_profile,
)
from stemjax.physics.dose import DoseMap, deposit, dose_per_area, electrons_per_position, site_dose
from stemjax.physics.elements import atomic_number
from stemjax.physics.haadf import IncoherentImaging, annular_cross_section
from stemjax.physics.inversion import (
    MultisliceImaging,
    default_priors,
    fit_svi,
    image_model,
    sample_posterior,
    summarise,
)
from stemjax.physics.multislice import (
    Multislice,
    band_limit,
    ctf_image,
    fresnel_propagator,
    propagate,
    thermal_displacements,
    transmission_function,
)
from stemjax.physics.noise import (
    detector_readout,
    poisson_counts,
    poisson_relaxed,
    poisson_straight_through,
)
from stemjax.physics.potentials import (
    PARAMETRISATIONS,
    projected_potential,
    scattering_factor,
    slice_potentials,
    specimen_grid,
)
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
    "Acquisition",
    "AnnularDetector",
    "ColumnCalibration",
    "DoseMap",
    "IncoherentImaging",
    "Multislice",
    "MultisliceImaging",
    "PARAMETRISATIONS",
    "Probe",
    "Recording",
    "ScanDistortion",
    "ScanGrid",
    "ScanPath",
    "Specimen",
    "acquire",
    "add_paired_vacancies",
    "add_phase_domains",
    "add_point_defects",
    "annular_cross_section",
    "apply_damage",
    "atomic_number",
    "band_limit",
    "calibration_table",
    "concatenate",
    "ctf_image",
    "default_priors",
    "deposit",
    "detector_readout",
    "displacement_cross_section",
    "displacement_probability",
    "distorted_path",
    "dose_per_area",
    "electrons_per_position",
    "fit_svi",
    "fresnel_propagator",
    "gan",
    "image_model",
    "interaction_parameter",
    "load_calibration",
    "lorentz_factor",
    "make_specimen",
    "max_scattering_angle",
    "max_transferred_energy",
    "mx2_monolayer",
    "nanoparticle_on_support",
    "nyquist_probe_step",
    "perovskite",
    "point_resolution",
    "poisson_counts",
    "poisson_relaxed",
    "poisson_straight_through",
    "projected_potential",
    "propagate",
    "radial_bins",
    "radial_profile",
    "rotated",
    "sample_posterior",
    "scattering_factor",
    "scherzer_defocus",
    "sige",
    "site_dose",
    "slice_potentials",
    "specimen_grid",
    "summarise",
    "thermal_displacements",
    "transmission_function",
    "wavelength",
]
