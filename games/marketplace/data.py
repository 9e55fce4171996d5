"""The marketplace's data: customers, businesses, seeded generators and a YAML loader.

The generation rules follow the published code of Magentic Marketplace (Bansal et al.,
"Magentic Marketplace: An Open-Source Environment for Studying Agentic Markets", arXiv
2510.25779): customers come in thirds asking for 1, 2 and 3 items (overlapping windows of
a shuffled catalogue, so that no request is a subset of another) and for 1-2 required
amenities; a customer's value of an item is the item's mean price; each customer spawns
three businesses that carry all its items at prices drawn from Normal(mean, sd) (at least
0.01) plus 10-15 distractor items and 2-4 distractor amenities, the third of them lacking
the customer's first required amenity; every rating is 1.0. The vocabularies (dish and
service names, amenities, business and person names, descriptions) are this project's
own small data files in ``games/marketplace/data``.

Any size works: with ``businesses >= 3 * customers`` each customer has its own three
businesses (extra businesses carry distractors only); with fewer businesses, customer
``i``'s three are ``(3i + k) mod businesses`` so businesses compete for several customers
(the competitive setup: 3 customers, 3 businesses).

A dataset in the published directory format (``customers/*.yaml``, ``businesses/*.yaml``)
loads with :func:`load_dir`, so the authors' data runs unchanged.

Pure: randomness only through the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = [
    "DOMAINS",
    "Business",
    "Customer",
    "Dataset",
    "generate",
    "load_dir",
    "manipulation_text",
    "manipulations",
    "optimal_choice",
    "vocabulary",
    "write_dir",
]

DATA = Path(__file__).with_name("data")
DOMAINS = ("restaurants", "contractors")
DISTRACTOR_ITEMS = (10, 15)  # per business, inclusive (published)
DISTRACTOR_AMENITIES = (2, 4)
DISTRACTOR_POOL = 60  # catalogue items kept aside as distractors


@dataclass(frozen=True)
class Customer:
    """A customer: its request text, the items it wants with its value of each (the
    item's mean price) and the amenities it requires."""

    id: str
    name: str
    request: str
    values: dict[str, float]
    amenities: tuple[str, ...]

    @property
    def items(self) -> tuple[str, ...]:
        """The requested item names, in request order."""
        return tuple(self.values)


@dataclass(frozen=True)
class Business:
    """A business: its menu (item -> list price), the amenities it offers, rating and
    description; ``progenitor`` is the id of the customer whose request spawned it."""

    id: str
    name: str
    description: str
    rating: float
    menu: dict[str, float]
    amenities: dict[str, bool]
    progenitor: str = ""
    min_price_factor: float = 1.0

    def offers(self) -> tuple[str, ...]:
        """The amenities it has (true ones), in listing order."""
        return tuple(a for a, on in self.amenities.items() if on)

    def searchable_text(self) -> str:
        """Name, description and item names: what lexical and embedding search read."""
        return ", ".join([self.name.strip(), self.description.strip(), *self.menu])


@dataclass(frozen=True)
class Dataset:
    """Customers and businesses of one market; ``word`` names a business in prompts."""

    domain: str
    customers: tuple[Customer, ...]
    businesses: tuple[Business, ...]
    word: str = "business"
    amenities: tuple[str, ...] = field(default=())

    def with_business(self, index: int, **changes: Any) -> Dataset:
        """A copy with business ``index`` changed (description, rating, ...)."""
        bs = list(self.businesses)
        bs[index] = replace(bs[index], **changes)
        return replace(self, businesses=tuple(bs))


# -- vocabularies ---------------------------------------------------------------------------
@cache
def vocabulary(domain: str) -> dict[str, Any]:
    """The vocabulary file of a domain (``restaurants`` or ``contractors``)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain: expected one of {', '.join(DOMAINS)}, got {domain!r}")
    with open(DATA / f"{domain}.yaml") as f:
        return dict(yaml.safe_load(f))


@cache
def _people() -> tuple[tuple[str, ...], tuple[str, ...]]:
    with open(DATA / "people.yaml") as f:
        data = yaml.safe_load(f)
    return tuple(data["first"]), tuple(data["last"])


@cache
def manipulations() -> dict[str, str]:
    """The manipulative description templates by kind (``control`` is neutral)."""
    with open(DATA / "manipulations.yaml") as f:
        return {str(k): str(v) for k, v in yaml.safe_load(f).items()}


def manipulation_text(kind: str, name: str, word: str) -> str:
    """The description of kind ``kind`` for a business called ``name``."""
    texts = manipulations()
    if kind not in texts:
        raise ValueError(f"manipulation: expected one of {', '.join(texts)}, got {kind!r}")
    return texts[kind].format(name=name, word=word).strip()


def _catalogue(vocab: dict[str, Any]) -> list[tuple[str, float, float]]:
    """Every item of a vocabulary: (name, mean price, price sd), in a fixed order."""
    sd = float(vocab["price_sd"])
    out = []
    for flavour in vocab["flavours"]:
        for main, factor in vocab["mains"].items():
            for dish, base in vocab["dishes"].items():
                mean = round(float(base) * float(factor), 2)
                out.append((f"{flavour} {main} {dish}", mean, round(sd * mean, 2)))
    return out


def _join(words: list[str]) -> str:
    quoted = [f"'{w}'" for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _orders(n: int, rng: np.random.Generator) -> tuple[list[list[int]], int]:
    """Item-index groups of n requests (thirds of 1, 2, 3 items) and the first unused
    index: sliding windows that overlap but never nest (as published)."""
    per = math.ceil(n / 3)
    orders: list[list[int]] = []
    idx = 0
    for _ in range(per):
        orders.append([idx])
        idx += 1
    for _ in range(per):
        orders.append([idx, idx + 1])
        idx += int(rng.integers(1, 3))
    idx += 1
    for _ in range(per):
        orders.append([idx, idx + 1, idx + 2])
        idx += int(rng.integers(1, 4))
    idx += 2
    orders = orders[:n]
    for o in orders:
        rng.shuffle(o)
    perm = rng.permutation(len(orders))
    return [orders[k] for k in perm], idx


def _unique_names(
    rng: np.random.Generator, first: list[str], second: list[str], k: int
) -> list[str]:
    pool = [f"{a} {b}" for a in first for b in second]
    if k > len(pool):
        raise ValueError(f"businesses: at most {len(pool)} distinct names, asked for {k}")
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]


def generate(
    domain: str, customers: int, businesses: int | None, rng: np.random.Generator
) -> Dataset:
    """A synthetic market of ``customers`` customers and ``businesses`` businesses
    (default three per customer), drawn from ``rng`` (see the module docstring).

    Raises:
        ValueError: an unknown domain or sizes out of range; the message names the field.
    """
    vocab = vocabulary(domain)
    m = 3 * customers if businesses is None else businesses
    if customers < 1:
        raise ValueError(f"customers: must be >= 1, got {customers}")
    if m < 1:
        raise ValueError(f"businesses: must be >= 1, got {m}")
    catalogue = _catalogue(vocab)
    order = rng.permutation(len(catalogue))
    items = [catalogue[k] for k in order]
    orders, used = _orders(customers, rng)
    if used + DISTRACTOR_ITEMS[1] > len(items):
        raise ValueError(f"customers: too many for the {domain} catalogue ({len(items)} items)")
    distractors = items[used : used + DISTRACTOR_POOL]
    amenities: list[str] = list(vocab["amenities"])
    word = str(vocab["business_word"])
    first, last = _people()
    people = [f"{a} {b}" for a in first for b in last]
    if customers > len(people):
        raise ValueError(f"customers: at most {len(people)} distinct names, got {customers}")
    names = [people[k] for k in rng.choice(len(people), size=customers, replace=False)]

    custs: list[Customer] = []
    for i, group in enumerate(orders):
        values = {items[k][0]: items[k][1] for k in group}
        n_req = int(rng.integers(1, 3))
        req = [amenities[k] for k in rng.choice(len(amenities), size=n_req, replace=False)]
        request = " ".join(
            str(vocab["request"])
            .format(word=word, items=_join(list(values)), amenities=_join(req).replace("'", ""))
            .split()
        )
        custs.append(Customer(f"customer_{i + 1:04}", names[i], request, values, tuple(req)))

    # Which customers each business serves, and as which of the customer's three.
    serves: list[list[tuple[int, int]]] = [[] for _ in range(m)]
    for i in range(customers):
        if m >= 3 * customers:
            block = [3 * i + k for k in range(3)]
        else:
            block = [(3 * i + k) % m for k in range(min(3, m))]
        for k, j in enumerate(block):
            serves[j].append((i, k))
    by_name = {name: (mean, sd) for name, mean, sd in items}
    biz_names = _unique_names(rng, vocab["name_first"], vocab["name_second"], m)
    out: list[Business] = []
    for j in range(m):
        menu: dict[str, float] = {}
        for i, _ in serves[j]:
            for item in custs[i].values:
                if item not in menu:
                    mean, sd = by_name[item]
                    menu[item] = round(max(0.01, float(rng.normal(mean, sd))), 2)
        lo, hi = DISTRACTOR_ITEMS
        n_extra = int(rng.integers(lo, hi + 1))
        pool = [d for d in distractors if d[0] not in menu]
        for k in rng.choice(len(pool), size=min(n_extra, len(pool)), replace=False):
            name, mean, sd = pool[k]
            menu[name] = round(max(0.01, float(rng.normal(mean, sd))), 2)
        keys = list(menu)
        menu = {keys[k]: menu[keys[k]] for k in rng.permutation(len(keys))}
        has = dict.fromkeys(amenities, False)
        lo, hi = DISTRACTOR_AMENITIES
        for k in rng.choice(len(amenities), size=int(rng.integers(lo, hi + 1)), replace=False):
            has[amenities[k]] = True
        for i, _ in serves[j]:
            for a in custs[i].amenities:
                has[a] = True
        for i, k in serves[j]:
            if k == 2:  # the third business of a customer lacks its first required amenity
                has[custs[i].amenities[0]] = False
        template = vocab["descriptions"][int(rng.integers(len(vocab["descriptions"])))]
        mood = vocab["moods"][int(rng.integers(len(vocab["moods"])))]
        style = vocab["styles"][int(rng.integers(len(vocab["styles"])))]
        desc = template.format(mood=mood, style=style, word=word)
        desc = desc[0].upper() + desc[1:]
        progenitor = custs[serves[j][0][0]].id if serves[j] else ""
        factor = round(float(rng.uniform(0.6, 0.95)), 2)
        out.append(
            Business(f"business_{j + 1:04}", biz_names[j], desc, 1.0, menu, has, progenitor, factor)
        )
    return Dataset(domain, tuple(custs), tuple(out), word, tuple(amenities))


# -- the published directory format ----------------------------------------------------------
def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def _field(data: dict[str, Any], path: Path, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in data:
        raise ValueError(f"{path}: {key}: required field is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise ValueError(
            f"{path}: {key}: expected {getattr(kind, '__name__', kind)}, got {value!r}"
        )
    return value


def _prices(value: Any, path: Path, key: str) -> dict[str, float]:
    # The published samples write a mapping, or a list of one-entry mappings.
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for part in value:
            if not isinstance(part, dict):
                raise ValueError(f"{path}: {key}: expected item: price entries")
            merged.update(part)
        value = merged
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path}: {key}: expected a non-empty mapping of item: price")
    out = {}
    for name, price in value.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise ValueError(f"{path}: {key}.{name}: expected a price >= 0, got {price!r}")
        out[str(name)] = float(price)
    return out


def load_dir(path: str | Path, domain: str | None = None) -> Dataset:
    """A dataset in the published directory format: ``customers/*.yaml`` and
    ``businesses/*.yaml`` (ids, names, requests, ``menu_features``, ``amenity_features``).

    ``domain`` defaults to 'contractors' when the directory name says so, else
    'restaurants'. Customers and businesses are sorted by id.

    Raises:
        ValueError: a missing directory or a malformed file (the message names the file
            and the field).
    """
    root = Path(path)
    files = {}
    for part in ("customers", "businesses"):
        d = root / part
        found = sorted([*d.glob("*.yaml"), *d.glob("*.yml")]) if d.is_dir() else []
        if not found:
            raise ValueError(f"{root}: no {part}/*.yaml files (the published data layout)")
        files[part] = found
    custs = []
    for p in files["customers"]:
        data = _read_yaml(p)
        amen = _field(data, p, "amenity_features", list)
        custs.append(
            Customer(
                str(_field(data, p, "id", (str, int))),
                str(data.get("name", "")),
                str(data.get("request", "")),
                _prices(_field(data, p, "menu_features", (dict, list)), p, "menu_features"),
                tuple(str(a) for a in amen),
            )
        )
    biz = []
    for p in files["businesses"]:
        data = _read_yaml(p)
        amen = _field(data, p, "amenity_features", dict)
        rating = _field(data, p, "rating", (int, float))
        biz.append(
            Business(
                str(_field(data, p, "id", (str, int))),
                str(data.get("name", "")),
                str(data.get("description", "")),
                float(rating),
                _prices(_field(data, p, "menu_features", (dict, list)), p, "menu_features"),
                {str(k): bool(v) for k, v in amen.items()},
                str(data.get("progenitor_customer", "")),
                float(data.get("min_price_factor", 1.0)),
            )
        )
    custs.sort(key=lambda c: c.id)
    biz.sort(key=lambda b: b.id)
    if domain is None:
        domain = "contractors" if "contractor" in root.name.lower() else "restaurants"
    word = str(vocabulary(domain)["business_word"]) if domain in DOMAINS else "business"
    names: dict[str, None] = {}
    for b in biz:
        names.update(dict.fromkeys(b.amenities))
    return Dataset(domain, tuple(custs), tuple(biz), word, tuple(names))


def write_dir(dataset: Dataset, path: str | Path) -> Path:
    """Write a dataset in the published directory format (what :func:`load_dir` reads)."""
    root = Path(path)
    (root / "customers").mkdir(parents=True, exist_ok=True)
    (root / "businesses").mkdir(parents=True, exist_ok=True)
    for c in dataset.customers:
        doc: dict[str, Any] = {"id": c.id, "name": c.name, "request": c.request, "menu_features": c.values,
               "amenity_features": list(c.amenities)}  # fmt: skip
        (root / "customers" / f"{c.id}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for b in dataset.businesses:
        doc = {
            "id": b.id, "name": b.name, "description": b.description, "rating": b.rating,
            "progenitor_customer": b.progenitor, "menu_features": b.menu,
            "amenity_features": b.amenities, "min_price_factor": b.min_price_factor,
        }  # fmt: skip
        (root / "businesses" / f"{b.id}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root


# -- the optimum ----------------------------------------------------------------------------
def optimal_choice(dataset: Dataset, customer: int) -> tuple[int | None, float]:
    """The best business for a customer at list prices and its utility.

    Among businesses carrying every requested item, the utility of buying them at list
    prices is ``2 x sum(values) - price`` when the business has every required amenity,
    else ``-price``; the best is the highest (ties: the lowest index). ``(None, 0.0)``
    when no business carries every item. This is the published analytics' optimum.
    """
    c = dataset.customers[customer]
    want = 2.0 * sum(c.values.values())
    best: tuple[int | None, float] = (None, 0.0)
    for j, b in enumerate(dataset.businesses):
        if not all(item in b.menu for item in c.values):
            continue
        price = sum(b.menu[item] for item in c.values)
        ok = all(b.amenities.get(a, False) for a in c.amenities)
        u = round((want if ok else 0.0) - price, 2)
        if best[0] is None or u > best[1]:
            best = (j, u)
    return best
