"""Simulated HAADF patches of doped MX2 monolayers, drawn on the fly for defect classifiers.

Each patch is a ``PATCH_SIZE`` × ``PATCH_SIZE`` image sampled every ``PATCH_SAMPLING_A`` Å and
centred on one atomic site of a 2H MX2 monolayer (:func:`stemjax.physics.mx2_monolayer`),
imaged by the multislice-calibrated incoherent model
(``IncoherentImaging(calibration="multislice")``) and recorded with Poisson noise at a given
dose. The label says what sits on the centre site (:data:`CLASSES`):

    0 metal           pristine metal site (M)
    1 chalcogen       pristine chalcogen column (X2)
    2 single_vacancy  chalcogen column with one of its two atoms missing (X1)
    3 double_vacancy  empty chalcogen column
    4 dopant          metal site holding the case's dopant element

A *case* is a host (:data:`HOSTS`), a dopant (:data:`DOPANTS`) and an imaging context
(:data:`IMAGING_CONTEXTS`: beam energy, convergence semi-angle and detector annulus, the
geometries the shipped multislice calibration covers); each patch also has its own dose.
Dopants within ``MIN_DOPANT_DELTA_Z`` of the host metal are left out: a Z^1.7 contrast change
under (Z_M/(Z_M−7))^1.7 − 1 ≈ 20–35 % is not a separate class a HAADF patch can show (Nb on Mo
changes the column signal by 4 %, Re on W by 2 %).

What varies from patch to patch besides the case: the dose (log-uniform over
``dose_range``), the lattice's in-plane rotation (uniform over 360°, so the sublattice cannot be
read from the orientation of the neighbours), a sub-pixel offset of the site (uniform in
±½ pixel), the source size (uniform over ``source_size_range_A``; it blurs the probe) and
random dopants and chalcogen vacancies on the neighbouring sites (each with probability
``neighbour_defect_fraction``), so that the label is a property of the centre alone.

The same image can come from different cases: a pristine S2 column in WS2 and a single S
vacancy in MoS2 both sit at about a fifth of their metal neighbours' brightness.
:func:`ambiguous_cases` finds such pairs from the noise-free patches and
:func:`sample_cases` draws test sets from them; only the context tells them apart.

Patches are returned as detected counts; the classifiers standardise each patch themselves, so
they also take real images in arbitrary units.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from stemjax._validation import check_in_range, check_int_at_least, check_positive
from stemjax.physics.crystals import TMD_MONOLAYERS, mx2_monolayer
from stemjax.physics.detector import AnnularDetector
from stemjax.physics.elements import atomic_number
from stemjax.physics.haadf import IncoherentImaging
from stemjax.physics.noise import poisson_counts
from stemjax.physics.probe import Probe
from stemjax.physics.scan import ScanGrid
from stemjax.physics.specimen import Specimen

CLASSES = ("metal", "chalcogen", "single_vacancy", "double_vacancy", "dopant")
"""Labels of the centre site, in label order."""

METAL_CLASSES = (0, 4)
"""Labels whose centre is a metal site; the others are chalcogen columns."""

HOSTS = tuple(TMD_MONOLAYERS)
"""Host monolayers, in host-index order: MoS2, WS2, MoSe2, WSe2."""

DOPANTS = ("V", "Cr", "Mn", "Fe", "Nb", "Mo", "W", "Re")
"""Metal-site dopants, light to heavy transition metals, in dopant-index order."""

MIN_DOPANT_DELTA_Z = 8
"""A dopant is used in a host only if |Z_dopant − Z_metal| is at least this."""

IMAGING_CONTEXTS = {
    # name: (beam energy keV, probe semi-angle mrad, detector inner mrad, detector outer mrad)
    "60keV-HAADF": (60.0, 30.0, 68.0, 200.0),
    "80keV-HAADF": (80.0, 30.0, 68.0, 200.0),
    "200keV-HAADF": (200.0, 21.0, 68.0, 200.0),
    "200keV-MAADF": (200.0, 21.0, 42.0, 68.0),
}
"""Imaging contexts, in imaging-index order (those covered by the multislice calibration)."""

CONTEXT_FEATURES = (
    "metal_Z", "chalcogen_Z", "dopant_Z", "energy_keV", "semiangle_mrad",
    "detector_inner_mrad", "detector_outer_mrad", "log10_dose",
)  # fmt: skip
"""Names of the entries of a context vector (:func:`context_vector`); dose in e⁻/Å²."""

PATCH_SIZE = 25
"""Patch side, pixels (odd: the site sits on the centre pixel)."""

PATCH_SAMPLING_A = 0.2
"""Patch pixel size, Å (the patch spans 5 Å: the site and its three nearest neighbours)."""

_TEMPLATE_CELLS = (6, 4)  # 19 × 22 Å of lattice: covers the rotated patch and probe tails
_MARGIN_A = 4.0


class PatchDomain(eqx.Module):
    """What :func:`sample_patches` draws from (all static).

    Attributes:
        hosts: host monolayers, names from :data:`HOSTS`.
        dopants: dopant elements, from :data:`DOPANTS` (a host uses those at least
            ``MIN_DOPANT_DELTA_Z`` from its metal; each host must keep one).
        imaging: imaging contexts, names from :data:`IMAGING_CONTEXTS`.
        dose_range: (low, high) areal dose, e⁻/Å², drawn log-uniformly.
        source_size_range_A: (low, high) Gaussian source size (1σ), Å, drawn uniformly.
        neighbour_defect_fraction: probability that each neighbouring metal site holds the
            dopant and that each neighbouring chalcogen atom is missing, in [0, 0.5].
    """

    hosts: tuple[str, ...] = eqx.field(static=True)
    dopants: tuple[str, ...] = eqx.field(static=True)
    imaging: tuple[str, ...] = eqx.field(static=True)
    dose_range: tuple[float, float] = eqx.field(static=True)
    source_size_range_A: tuple[float, float] = eqx.field(static=True)
    neighbour_defect_fraction: float = eqx.field(static=True)

    def __init__(
        self,
        hosts=HOSTS,
        dopants=DOPANTS,
        imaging=tuple(IMAGING_CONTEXTS),
        dose_range=(2e4, 2e5),
        source_size_range_A=(0.2, 0.5),
        neighbour_defect_fraction=0.03,
    ):
        self.hosts = _names("hosts", hosts, HOSTS)
        self.dopants = _names("dopants", dopants, DOPANTS)
        self.imaging = _names("imaging", imaging, tuple(IMAGING_CONTEXTS))
        for host in self.hosts:
            if not _host_dopants(host, self.dopants):
                raise ValueError(
                    f"dopants must include one element at least {MIN_DOPANT_DELTA_Z} in Z "
                    f"from {host}'s metal; got {self.dopants}"
                )
        low, high = (float(v) for v in dose_range)
        check_positive("dose_range", (low, high), "e⁻/Å²")
        if high < low:
            raise ValueError(f"dose_range must be (low, high) with low <= high; got {dose_range}")
        self.dose_range = (low, high)
        s_low, s_high = (float(v) for v in source_size_range_A)
        check_in_range("source_size_range_A", (s_low, s_high), 0.0, 2.0, "Å")
        if s_high < s_low:
            raise ValueError("source_size_range_A must be (low, high) with low <= high; got "
                             f"{source_size_range_A}")  # fmt: skip
        self.source_size_range_A = (s_low, s_high)
        check_in_range("neighbour_defect_fraction", neighbour_defect_fraction, 0.0, 0.5)
        self.neighbour_defect_fraction = float(neighbour_defect_fraction)

    def cases(self) -> list[tuple[str, str, str]]:
        """Every (host, dopant, imaging) case of the domain."""
        return [(h, d, i) for h in self.hosts for d in _host_dopants(h, self.dopants)
                for i in self.imaging]  # fmt: skip


def _names(name: str, values, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    bad = [v for v in values if v not in allowed]
    if not values or bad or len(set(values)) != len(values):
        raise ValueError(f"{name} must be distinct names from {allowed}; got {values}")
    return values


def _host_dopants(host: str, dopants) -> tuple[str, ...]:
    metal = atomic_number(TMD_MONOLAYERS[host][0])
    return tuple(d for d in dopants if abs(atomic_number(d) - metal) >= MIN_DOPANT_DELTA_Z)


class PatchBatch(eqx.Module):
    """A batch of labelled patches with their cases.

    Attributes:
        images: (N, PATCH_SIZE, PATCH_SIZE) detected electrons per pixel.
        context: (N, 8) context vectors (:data:`CONTEXT_FEATURES`).
        labels: (N,) int class of the centre site (:data:`CLASSES`).
        host: (N,) int index into :data:`HOSTS`.
        dopant: (N,) int index into :data:`DOPANTS`.
        imaging: (N,) int index into :data:`IMAGING_CONTEXTS`.
        dose: (N,) areal dose, e⁻/Å².
    """

    images: Float[Array, "N P P"]
    context: Float[Array, "N 8"]
    labels: Int[Array, " N"]
    host: Int[Array, " N"]
    dopant: Int[Array, " N"]
    imaging: Int[Array, " N"]
    dose: Float[Array, " N"]

    def __len__(self) -> int:
        return self.labels.shape[0]


def concatenate_batches(batches) -> PatchBatch:
    """One PatchBatch holding the patches of ``batches`` in order."""
    return jax.tree.map(lambda *x: jnp.concatenate(x), *batches)


def context_vector(host, dopant, imaging, dose) -> Float[Array, "... 8"]:
    """Context vectors (:data:`CONTEXT_FEATURES`) of cases given by index arrays.

    Args:
        host: (...) int index into :data:`HOSTS`.
        dopant: (...) int index into :data:`DOPANTS`.
        imaging: (...) int index into :data:`IMAGING_CONTEXTS`.
        dose: (...) areal dose, e⁻/Å² (> 0).
    """
    metal_z, chalcogen_z = (jnp.asarray(a, jnp.result_type(float)) for a in _HOST_Z)
    dopant_z = jnp.asarray(_DOPANT_Z, metal_z.dtype)
    geometry = jnp.asarray(list(IMAGING_CONTEXTS.values()), metal_z.dtype)
    host, dopant, imaging = (jnp.asarray(i) for i in (host, dopant, imaging))
    host, dopant, imaging, dose = jnp.broadcast_arrays(host, dopant, imaging,
                                                       jnp.asarray(dose, metal_z.dtype))
    return jnp.concatenate(
        [
            jnp.stack([metal_z[host], chalcogen_z[host], dopant_z[dopant]], -1),
            geometry[imaging],
            jnp.log10(dose)[..., None],
        ],
        -1,
    )


_HOST_Z = (
    np.array([atomic_number(TMD_MONOLAYERS[h][0]) for h in HOSTS]),
    np.array([atomic_number(TMD_MONOLAYERS[h][1]) for h in HOSTS]),
)
_DOPANT_Z = np.array([atomic_number(d) for d in DOPANTS])


# --------------------------------------------------------------------------------------------
# rendering


class _Templates(NamedTuple):
    specimen: Specimen  # hosts stacked on a leading axis
    centre_metal: np.ndarray  # (hosts,) site index of the metal nearest the middle
    centre_chalcogen: np.ndarray  # (hosts, 2) its neighbouring chalcogen column's two sites
    is_metal: np.ndarray  # (sites,)


@functools.cache
def _templates() -> _Templates:
    with jax.ensure_compile_time_eval():  # built once, possibly first called under jit
        return _build_templates()


def _build_templates() -> _Templates:
    specimens, metals, chalcogens = [], [], []
    for host in HOSTS:
        s = mx2_monolayer(jax.random.key(0), host, cells=_TEMPLATE_CELLS)
        xy = np.asarray(s.atom_xy)
        middle = 0.5 * np.asarray(s.cell[:2])
        is_metal = np.asarray(s.atomic_numbers) == _HOST_Z[0][HOSTS.index(host)]
        distance = np.hypot(*(xy - middle).T)
        metal = int(np.argmin(np.where(is_metal, distance, np.inf)))
        top = int(np.argmin(np.where(is_metal, np.inf, distance)))
        bottom = int(np.flatnonzero(~is_metal & np.all(np.isclose(xy, xy[top]), axis=1)
                                    & (np.arange(len(xy)) != top))[0])  # fmt: skip
        specimens.append(s)
        metals.append(metal)
        chalcogens.append((top, bottom))
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *specimens)
    return _Templates(stacked, np.array(metals), np.array(chalcogens), is_metal)


@functools.cache
def imaging_model(name: str) -> IncoherentImaging:
    """The calibrated imaging model of an imaging context (aberration-free probe)."""
    energy, semiangle, inner, outer = IMAGING_CONTEXTS[name]
    with jax.ensure_compile_time_eval():  # cached, possibly first called under jit
        return IncoherentImaging(
            Probe(energy_kev=energy, semiangle_mrad=semiangle),
            AnnularDetector(inner, outer),
            margin=_MARGIN_A,
            calibration="multislice",
        )


def _patch_grid() -> ScanGrid:
    half = 0.5 * (PATCH_SIZE - 1) * PATCH_SAMPLING_A
    return ScanGrid((PATCH_SIZE, PATCH_SIZE), PATCH_SAMPLING_A, origin=(-half, -half))


class _Draw(NamedTuple):
    """The random choices behind one patch (scalars)."""

    host: Array
    dopant: Array
    label: Array
    dose: Array
    angle_rad: Array
    shift_A: Array  # (2,)
    source_size_A: Array
    neighbours: Array  # (sites,) uniform draws for the neighbouring defects


def _local_specimen(draw: _Draw, neighbour_fraction) -> Specimen:
    """The host lattice moved so the centre site is at the origin, with its defects."""
    t = _templates()
    specimen = jax.tree.map(lambda x: x[draw.host], t.specimen)
    metal = jnp.asarray(t.centre_metal)[draw.host]
    top, bottom = jnp.asarray(t.centre_chalcogen)[draw.host]
    label = draw.label
    on_metal = (label == 0) | (label == 4)
    centre = jnp.where(on_metal, metal, top)
    index = jnp.arange(specimen.capacity)

    xy = specimen.positions[:, :2] - specimen.positions[centre, :2]
    c, s = jnp.cos(draw.angle_rad), jnp.sin(draw.angle_rad)
    xy = xy @ jnp.array([[c, s], [-s, c]], xy.dtype) + draw.shift_A
    positions = specimen.positions.at[:, :2].set(xy)

    dopant_z = jnp.asarray(_DOPANT_Z)[draw.dopant]
    is_metal = jnp.asarray(t.is_metal)
    neighbour = draw.neighbours < neighbour_fraction
    doped = (is_metal & neighbour & (index != metal)) | ((label == 4) & (index == metal))
    is_centre_column = (index == top) | (index == bottom)
    missing = (~is_metal & neighbour & ~is_centre_column) | (
        ((label == 2) & (index == top)) | ((label == 3) & is_centre_column)
    )
    z = jnp.where(doped, dopant_z, specimen.atomic_numbers)
    occupancies = jnp.where(missing, 0.0, specimen.occupancies)
    types = jnp.where(doped, 2, jnp.where(missing, 1, specimen.atom_types))
    return eqx.tree_at(
        lambda x: (x.positions, x.atomic_numbers, x.occupancies, x.atom_types),
        specimen, (positions, z, occupancies, types),
    )  # fmt: skip


def _expected_counts(draw: _Draw, imaging: str, neighbour_fraction) -> Array:
    """(P, P) mean detected electrons per pixel of one patch."""
    model = imaging_model(imaging)
    model = eqx.tree_at(lambda m: m.probe.source_size, model,
                        draw.source_size_A.astype(model.probe.source_size.dtype))  # fmt: skip
    signal = model.render(_local_specimen(draw, neighbour_fraction), _patch_grid())
    return draw.dose * PATCH_SAMPLING_A**2 * signal


def _draw(key, domain: PatchDomain, n: int, labels=None, hosts=None, dopants=None) -> _Draw:
    """n random draws; ``labels``/``hosts``/``dopants`` (n,) fix those choices."""
    keys = jax.random.split(key, 8)
    host_ids = jnp.asarray([HOSTS.index(h) for h in domain.hosts])
    if hosts is None:
        hosts = host_ids[jax.random.randint(keys[0], (n,), 0, len(host_ids))]
    if dopants is None:
        allowed = np.array([[d in _host_dopants(h, domain.dopants) for d in DOPANTS]
                            for h in HOSTS])  # fmt: skip
        logits = jnp.where(jnp.asarray(allowed)[hosts], 0.0, -jnp.inf)
        dopants = jax.random.categorical(keys[1], logits)
    if labels is None:
        labels = jax.random.randint(keys[2], (n,), 0, len(CLASSES))
    low, high = np.log(domain.dose_range)
    dose = jnp.exp(jax.random.uniform(keys[3], (n,), minval=low, maxval=high))
    angle = jax.random.uniform(keys[4], (n,), maxval=2 * math.pi)
    shift = jax.random.uniform(keys[5], (n, 2), minval=-0.5, maxval=0.5) * PATCH_SAMPLING_A
    s_low, s_high = domain.source_size_range_A
    source = jax.random.uniform(keys[6], (n,), minval=s_low, maxval=s_high)
    neighbours = jax.random.uniform(keys[7], (n, _templates().is_metal.size))
    return _Draw(jnp.asarray(hosts), jnp.asarray(dopants), jnp.asarray(labels), dose, angle,
                 shift, source, neighbours)  # fmt: skip


@functools.partial(jax.jit, static_argnames=("domain", "n_per_imaging"))
def sample_patches(key: PRNGKeyArray, domain: PatchDomain, n_per_imaging: int) -> PatchBatch:
    """Draw ``n_per_imaging`` labelled patches for each imaging context of ``domain``.

    Classes are drawn uniformly, hosts uniformly from ``domain.hosts`` and dopants uniformly
    from those the host allows. Runs under ``jit``; the same key gives the same batch.

    Args:
        key: PRNG key.
        domain: what to draw from (static).
        n_per_imaging: patches per imaging context (static, ≥ 1).

    Returns:
        PatchBatch of ``n_per_imaging · len(domain.imaging)`` patches, grouped by imaging.
    """
    check_int_at_least("n_per_imaging", n_per_imaging, 1)
    keys = jax.random.split(key, len(domain.imaging))
    return concatenate_batches([
        _sample_imaging(k, domain, name, _draw(jax.random.fold_in(k, 1), domain, n_per_imaging))
        for k, name in zip(keys, domain.imaging)
    ])  # fmt: skip


def _sample_imaging(key, domain: PatchDomain, name: str, draw: _Draw) -> PatchBatch:
    n = draw.label.shape[0]
    expected = jax.vmap(lambda d: _expected_counts(d, name, domain.neighbour_defect_fraction))(
        draw
    )
    images = poisson_counts(key, expected)
    imaging = jnp.full((n,), list(IMAGING_CONTEXTS).index(name))
    context = context_vector(draw.host, draw.dopant, imaging, draw.dose)
    return PatchBatch(images, context, draw.label, draw.host, draw.dopant, imaging, draw.dose)


# --------------------------------------------------------------------------------------------
# cases that look alike


class CasePair(NamedTuple):
    """Two cases whose patches a noisy image cannot tell apart but whose labels differ.

    ``a`` and ``b`` are (host, dopant, imaging, label) names and label index; ``separation``
    is their detectability d′ at the dose asked for (see :func:`ambiguous_cases`).
    """

    a: tuple[str, str, str, int]
    b: tuple[str, str, str, int]
    separation: float


def clean_patches(domain: PatchDomain, angle_deg: float = 0.0) -> tuple[list, np.ndarray]:
    """Noise-free patches of every (case, label) of ``domain``, in expected detected electrons
    per pixel at a dose of 1 e⁻/Å².

    The lattice is unrotated (plus ``angle_deg``), unshifted and free of neighbouring
    defects; source size at the middle of the domain's range.

    Returns:
        (cases, patches): the list of (host, dopant, imaging, label), grouped by imaging, and
        an array (len(cases), P, P).
    """
    source = 0.5 * sum(domain.source_size_range_A)
    cases, patches = [], []
    for imaging in domain.imaging:
        mine = [c + (label,) for c in domain.cases() if c[2] == imaging
                for label in range(len(CLASSES))]  # fmt: skip
        n = len(mine)
        draw = _Draw(
            jnp.asarray([HOSTS.index(c[0]) for c in mine]),
            jnp.asarray([DOPANTS.index(c[1]) for c in mine]),
            jnp.asarray([c[3] for c in mine]),
            jnp.ones(n),
            jnp.full(n, math.radians(angle_deg)),
            jnp.zeros((n, 2)),
            jnp.full(n, source),
            jnp.ones((n, _templates().is_metal.size)),
        )
        cases += mine
        patches.append(np.asarray(_clean(draw, imaging), float))
    return cases, np.concatenate(patches)


@functools.partial(jax.jit, static_argnums=1)
def _clean(draw: _Draw, imaging: str) -> Array:
    return jax.vmap(lambda d: _expected_counts(d, imaging, 0.0))(draw)


def separation(first: np.ndarray, second: np.ndarray, dose) -> np.ndarray:
    """Detectability d′ of the difference between two noise-free patches up to brightness
    and offset, at ``dose`` e⁻/Å².

    With λ₁, λ₂ (P, P) the expected electrons at 1 e⁻/Å², d′² = D · min over s, o of
    Σ (λ₁ − s λ₂ − o)² / λ₁ (Poisson variance at D), the best brightness s and offset o
    fitted by weighted least squares: a classifier that sees only standardised patches
    can tell the two apart with about Φ(d′/2) accuracy at best. Broadcasts over leading axes.
    """
    first, second = np.asarray(first, float), np.asarray(second, float)
    a = first.reshape(*first.shape[:-2], -1)
    b = second.reshape(*second.shape[:-2], -1)
    w = 1.0 / np.maximum(a, 1e-12)
    sw, sb, sa = w.sum(-1), (w * b).sum(-1), (w * a).sum(-1)
    sbb, sab = (w * b * b).sum(-1), (w * a * b).sum(-1)
    det = sw * sbb - sb**2
    s = (sw * sab - sb * sa) / det
    o = (sa - s * sb) / sw
    residual = a - s[..., None] * b - o[..., None]
    return np.sqrt(float(dose) * (w * residual**2).sum(-1))


def ambiguous_cases(domain: PatchDomain, dose: float, max_separation: float = 1.0) -> list[CasePair]:
    """Pairs of cases of ``domain`` with different labels whose patches cannot be told apart
    from the image at ``dose`` e⁻/Å²: separation d′ (:func:`separation`) at most
    ``max_separation``, in both directions.

    The honeycomb maps onto itself under 120° turns and swaps its sublattices under 60°, so
    each pair is compared at 0° and 60° and the smaller d′ kept. Sorted by d′.
    """
    check_positive("dose", dose, "e⁻/Å²")
    check_positive("max_separation", max_separation)
    cases, p0 = clean_patches(domain, 0.0)
    _, p60 = clean_patches(domain, 60.0)

    def both_ways(x, y):
        return np.maximum(separation(x[:, None], y[None], dose),
                          separation(y[None], x[:, None], dose))  # fmt: skip

    d = np.minimum(both_ways(p0, p0), both_ways(p0, p60))
    labels = np.array([c[3] for c in cases])
    pairs = [
        CasePair(cases[i], cases[j], float(d[i, j]))
        for i, j in itertools.combinations(range(len(cases)), 2)
        if labels[i] != labels[j] and d[i, j] <= max_separation
    ]
    return sorted(pairs, key=lambda p: p.separation)


def sample_cases(
    key: PRNGKeyArray, domain: PatchDomain, cases, n_per_case: int, dose: float | None = None
) -> PatchBatch:
    """Draw ``n_per_case`` noisy patches of each given (host, dopant, imaging, label) case.

    Rotation, offset, source size and neighbouring defects are drawn as in
    :func:`sample_patches`; the dose too, unless ``dose`` (e⁻/Å²) fixes it.
    """
    check_int_at_least("n_per_case", n_per_case, 1)
    if dose is not None:
        check_positive("dose", dose, "e⁻/Å²")
    cases = sorted(set(tuple(c) for c in cases), key=lambda c: (c[2], c))
    for c in cases:
        if c[2] not in domain.imaging or c[3] not in range(len(CLASSES)):
            raise ValueError(f"cases must be (host, dopant, imaging, label) of the domain; got {c}")
    batches = []
    for i, imaging in enumerate(domain.imaging):
        mine = [c for c in cases if c[2] == imaging]
        if not mine:
            continue
        k = jax.random.fold_in(key, i)
        repeat = lambda f: jnp.repeat(jnp.asarray([f(c) for c in mine]), n_per_case)  # noqa: E731
        draw = _draw(
            jax.random.fold_in(k, 1), domain, len(mine) * n_per_case,
            labels=repeat(lambda c: c[3]), hosts=repeat(lambda c: HOSTS.index(c[0])),
            dopants=repeat(lambda c: DOPANTS.index(c[1])),
        )  # fmt: skip
        if dose is not None:
            draw = draw._replace(dose=jnp.full_like(draw.dose, dose))
        batches.append(_sample_cases_jit(k, domain, imaging, draw))
    return concatenate_batches(batches)


_sample_cases_jit = jax.jit(_sample_imaging, static_argnums=(1, 2))


def standard_domains() -> dict[str, PatchDomain]:
    """The domains of the classifier benchmark (``benchmarks/defect_classifier.py``).

    ``train``: MoS2, MoSe2 and WSe2 at 60 keV HAADF, 200 keV HAADF and 200 keV MAADF, every
    dopant, dose 2·10⁴–2·10⁵ e⁻/Å²; held out from it: ``unseen_material`` (WS2, whose
    elements all occur in training but never together) and ``unseen_context`` (the training
    hosts at 80 keV, an energy between the trained ones).
    """
    train = PatchDomain(hosts=("MoS2", "MoSe2", "WSe2"),
                        imaging=("60keV-HAADF", "200keV-HAADF", "200keV-MAADF"))  # fmt: skip
    return {
        "train": train,
        "unseen_material": PatchDomain(hosts=("WS2",), imaging=train.imaging),
        "unseen_context": PatchDomain(hosts=train.hosts, imaging=("80keV-HAADF",)),
    }
