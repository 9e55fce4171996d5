"""Cooperation metrics: repeated 2x2 games and the donor game.

Every function takes a :class:`~analysis.run.Run`, a :class:`~analysis.run.RunSet` or the
relevant DataFrame itself (decisions or events), and returns a DataFrame grouped by the
requested keys; with a RunSet a ``run`` key is added so agents of different runs never mix.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .run import frame, group_keys

__all__ = [
    "moves",
    "cooperation_rate",
    "mutual_cooperation_rate",
    "conditional_cooperation",
    "forgiveness_retaliation",
    "payoff_matrix",
    "stage_games",
    "score_vs_max",
    "NORMALISATIONS",
    "agent_scores",
    "strategy_scores",
    "gini",
    "gini_by",
    "donations",
    "donation_fraction",
    "DONATION_DEFINITION",
    "mean_resources",
    "survival_by_group",
]

By = str | Sequence[str] | None


# -- 2x2 games ---------------------------------------------------------------------------


def stage_games(obj: Any) -> pd.DataFrame:
    """The stage games of a run that sweeps a game set (``game.game_set``).

    One row per stage game: ``game`` (the step's game number in ``rounds``), ``stage``
    (the stage game's name, e.g. ``rg_3142_3412``), ``family`` and ``payoffs`` (the
    bimatrix as nested lists), with ``run`` for a RunSet. Empty for a run that plays one
    stage game.
    """
    games = getattr(obj, "game", None)
    labels = getattr(obj, "labels", None)
    if isinstance(games, dict) and labels and all(lab in games for lab in labels):
        per_run = [(lab, games[lab]) for lab in labels]  # a RunSet: resolved game per run
    else:
        per_run = [(None, games)]
    rows = []
    for lab, game in per_run:
        if not isinstance(game, dict) or not isinstance(game.get("games"), list):
            continue
        for k, g in enumerate(game["games"]):
            row = {
                "game": int(g.get("game", k)),
                "stage": g.get("name"),
                "family": g.get("family"),
                "payoffs": g.get("payoffs"),
            }
            rows.append({"run": lab, **row} if lab is not None else row)
    cols = [*(["run"] if labels else []), "game", "stage", "family", "payoffs"]
    return pd.DataFrame(rows, columns=cols)


def _with_game(df: pd.DataFrame, obj: Any) -> pd.DataFrame:
    """``df`` with each round's ``game`` number from ``rounds`` (when the object has it)."""
    rounds = getattr(obj, "rounds", None)
    if "game" not in df.columns and isinstance(rounds, pd.DataFrame) and not rounds.empty:
        on = [c for c in ("run", "round") if c in df.columns and c in rounds.columns]
        df = df.merge(rounds[[*on, "game"]], on=on, how="left")
    return df


def moves(obj: Any) -> pd.DataFrame:
    """The 2x2 move decisions with a boolean ``coop`` column (action 'C' = option 0).

    With a Run, the ``game`` number of each round (from ``rounds``) is added so that
    "previous move" never reaches back into an earlier match of the same pair; a run
    that sweeps a game set also gets each move's ``stage`` game and its ``family`` (see
    :func:`stage_games`), so ``cooperation_rate(run, by="family")`` works.
    """
    d = frame(obj, "decisions")
    m = d[d["kind"] == "move"] if "kind" in d.columns else d
    m = m.copy()
    m["coop"] = (m["action"] == "C").to_numpy(dtype=bool)
    m = _with_game(m, obj)
    if not isinstance(obj, pd.DataFrame):
        stages = stage_games(obj)
        if len(stages) and "game" in m.columns:
            on = [c for c in ("run", "game") if c in stages.columns and c in m.columns]
            m = m.merge(stages[[*on, "stage", "family"]], on=on, how="left")
    return m


def cooperation_rate(obj: Any, by: By = "round") -> pd.DataFrame:
    """Share of C moves per ``by`` (e.g. 'round', 'generation', 'agent_id', 'grp', 'model')."""
    m = moves(obj)
    keys = group_keys(m, by)
    if not keys:
        return pd.DataFrame({"rate": [m["coop"].mean()], "n": [len(m)]})
    g = m.groupby(keys, observed=True)["coop"]
    return g.agg(rate="mean", n="size").reset_index()


def _paired(obj: Any) -> pd.DataFrame:
    """Moves joined with the partner's move in the same round, plus lagged moves per pair."""
    m = moves(obj)
    m = m[m["partner_id"].notna()].copy()
    m["partner_id"] = m["partner_id"].astype("int64")
    run = ["run"] if "run" in m.columns else []
    on = [*run, "round", "agent_id", "partner_id"]
    rev = m[[*run, "round", "agent_id", "partner_id", "coop"]].rename(
        columns={"agent_id": "partner_id", "partner_id": "agent_id", "coop": "partner_coop"}
    )
    m = m.merge(rev, on=on, how="left")
    pair = [*run, *(["game"] if "game" in m.columns else []), "agent_id", "partner_id"]
    m = m.sort_values([*pair, "round"], kind="stable")
    g = m.groupby(pair, observed=True, sort=False)
    m["partner_prev"] = g["partner_coop"].shift(1)
    m["partner_prev2"] = g["partner_coop"].shift(2)
    return m


def mutual_cooperation_rate(obj: Any, by: By = "round") -> pd.DataFrame:
    """Share of encounters (unordered pairs in a round) where both played C."""
    m = _paired(obj)
    # Each encounter appears twice (once per player): keep the lower id's row.
    m = m[(m["agent_id"] < m["partner_id"]) & m["partner_coop"].notna()]
    m = m.assign(mutual=m["coop"] & m["partner_coop"].astype(bool))
    keys = group_keys(m, by)
    if not keys:
        return pd.DataFrame({"rate": [m["mutual"].mean()], "n": [len(m)]})
    return m.groupby(keys, observed=True)["mutual"].agg(rate="mean", n="size").reset_index()


def _cond(m: pd.DataFrame, mask: pd.Series, keys: list[str], name: str, want_coop: bool):
    sub = m[mask]
    hit = sub["coop"] if want_coop else ~sub["coop"]
    if not keys:
        return pd.DataFrame({name: [hit.mean()], f"n_{name}": [len(sub)]})
    g = hit.groupby([sub[k] for k in keys], observed=True)
    return g.agg(**{name: "mean", f"n_{name}": "size"}).reset_index()


def _merge_all(parts: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
    out = parts[0]
    for p in parts[1:]:
        out = out.merge(p, on=keys, how="outer") if keys else pd.concat([out, p], axis=1)
    return out


def conditional_cooperation(obj: Any, by: By = "agent_id") -> pd.DataFrame:
    """P(C | partner's previous move C) and P(C | partner's previous move D), with counts.

    "Previous" is the partner's move toward this agent in their previous round together
    (same game); first rounds have no previous move and are left out.
    """
    m = _paired(obj)
    keys = group_keys(m, by)
    return _merge_all(_conditional_parts(m, keys), keys)


def _conditional_parts(m: pd.DataFrame, keys: list[str]) -> list[pd.DataFrame]:
    prev = m["partner_prev"]
    return [
        _cond(m, prev.eq(True) & prev.notna(), keys, "p_c_after_c", True),
        _cond(m, prev.eq(False) & prev.notna(), keys, "p_c_after_d", True),
    ]


def forgiveness_retaliation(obj: Any, by: By = "agent_id") -> pd.DataFrame:
    """Forgiveness and retaliation per ``by``.

    * forgiveness: P(C at t | the partner played D at t-2 and returned to C at t-1);
    * retaliation: P(D at t | the partner played D at t-1).
    """
    m = _paired(obj)
    keys = group_keys(m, by)
    return _merge_all(_forgiveness_parts(m, keys), keys)


def _forgiveness_parts(m: pd.DataFrame, keys: list[str]) -> list[pd.DataFrame]:
    p1, p2 = m["partner_prev"], m["partner_prev2"]
    returned = p1.eq(True) & p1.notna() & p2.eq(False) & p2.notna()
    defected = p1.eq(False) & p1.notna()
    return [
        _cond(m, returned, keys, "forgiveness", True),
        _cond(m, defected, keys, "retaliation", False),
    ]


def reciprocity(obj: Any, by: By = "agent_id") -> pd.DataFrame:
    """``conditional_cooperation`` and ``forgiveness_retaliation`` in one frame.

    Pairs each move with the partner's moves once for all four rates.
    """
    m = _paired(obj)
    keys = group_keys(m, by)
    return _merge_all(_conditional_parts(m, keys) + _forgiveness_parts(m, keys), keys)


def payoff_matrix(source: Any) -> np.ndarray:
    """The (2, 2, 2) bimatrix ``M[a1, a2] = (payoff to player 1, payoff to player 2)``.

    ``source`` is a Run, a scenario dict, a ``scenario['game']`` dict (or a resolved
    game, ``Run.game``), or a matrix: a 2x2 own-payoff matrix (symmetric game) or a 2x2x2
    bimatrix. A Run's resolved game (meta ``resolved_game``, its ``payoffs``) is used when
    the store has one; otherwise the game is rebuilt from the scenario. From a game dict it
    reads
    ``payoffs`` (nested list), or ``ordinal`` (one of the 144 ordinal games by name), or
    ``R``/``S``/``T``/``P``, or a known preset name (in ``preset``, ``stage``, ``name`` or
    ``game``) with its parameters as overrides.
    """
    if hasattr(source, "scenario") and not isinstance(source, dict):
        # The resolved game the run recorded (meta `resolved_game`) comes first; the
        # scenario's game section is rebuilt only for stores that predate it.
        game = getattr(source, "game", None)
        if isinstance(game, dict) and game.get("payoffs") is not None:
            return payoff_matrix(game["payoffs"])
        if isinstance(game, dict) and isinstance(game.get("games"), list):
            raise ValueError(
                f"the run sweeps {len(game['games'])} stage games (game.game_set): "
                "one payoff matrix per game, see cooperation.stage_games"
            )
        source = source.scenario
    if isinstance(source, dict):
        game = source.get("game", source)
        if isinstance(game, dict) and isinstance(game.get("game"), dict):
            game = game["game"]
        return _matrix_from_game(game)
    arr = np.asarray(source, dtype=float)
    if arr.shape == (2, 2):  # own payoffs of a symmetric game: M2[a1, a2] = M1[a2, a1]
        return np.stack([arr, arr.T], axis=-1)
    if arr.shape == (2, 2, 2):
        return arr
    raise ValueError(f"payoff matrix must be 2x2 or 2x2x2, got shape {arr.shape}")


def _matrix_from_game(game: Any) -> np.ndarray:
    if not isinstance(game, dict):
        raise ValueError(f"scenario game must be a mapping, got {game!r}")
    for key in ("payoffs", "payoff_matrix", "matrix"):
        if game.get(key) is not None:  # a resolved scenario holds `payoffs: null`
            return payoff_matrix(game[key])
    # The rules of named games live in the pure `games` package (not the runtime).
    from games.ordinal import ordinal_games
    from games.twobytwo import PRESETS, preset

    if isinstance(game.get("ordinal"), str):
        named = {g.name: g for g in ordinal_games()}
        if game["ordinal"] not in named:
            raise ValueError(
                f"unknown ordinal game {game['ordinal']!r} (see games.ordinal_games())"
            )
        return np.array(named[game["ordinal"]].payoffs, dtype=float)
    params = dict(game.get("params") or {})
    params.update({k: game[k] for k in ("R", "S", "T", "P") if k in game})
    name = next(
        (
            game[k]
            for k in ("preset", "stage", "stage_game", "name", "game")
            if isinstance(game.get(k), str)
        ),
        None,
    )
    if name in PRESETS:
        return np.array(preset(name, **params).payoffs, dtype=float)
    if {"R", "S", "T", "P"} <= set(params):  # a symmetric game given by its payoffs
        R, S, T, P = (float(params[k]) for k in ("R", "S", "T", "P"))
        return np.array([[[R, R], [S, T]], [[T, S], [P, P]]], dtype=float)
    raise ValueError(
        f"cannot find the payoff matrix in the scenario's game {game!r}; pass payoffs="
    )


def _own(M: np.ndarray, role: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Own payoff when playing ``a`` against ``b`` in ``role`` (0 = row, 1 = column)."""
    return np.where(role == 0, M[a, b, 0], M[b, a, 1])


NORMALISATIONS = ("partner", "game_max")


def score_vs_max(
    obj: Any,
    payoffs: Any = None,
    by: By = ("agent_id", "partner_id"),
    normalisation: str = "partner",
) -> pd.DataFrame:
    """Points won over a maximum, per ``by`` (Akata et al. 2023, arXiv 2305.16867).

    ``normalisation`` says which maximum, the two definitions of the paper:

    * ``"partner"`` (the paper's text, the default): the most points achievable against
      the partner's actual moves, ``sum_t max_a u(a, b_t)`` where ``b_t`` is the move the
      partner played (after noise, from ``payoff`` events when present, else its
      decision);
    * ``"game_max"`` (the authors' published code): the largest payoff of the stage game
      (either player's) times the rounds played.

    Points won are the recorded payoffs, or computed from the matrix. In an asymmetric
    game the agent's role (row or column player) is inferred per pair as the one that
    explains the recorded payoffs; without payoffs the lower agent id is taken as the row
    player. A run that sweeps a game set is scored stage game by stage game, each with
    its own payoffs (``by`` may then name ``stage`` or ``family``).
    """
    if normalisation not in NORMALISATIONS:
        raise ValueError(
            f"normalisation: expected one of {', '.join(NORMALISATIONS)}, got {normalisation!r}"
        )
    ev = getattr(obj, "events", None)
    run: list[str]
    if isinstance(ev, pd.DataFrame) and (ev["kind"] == "payoff").any():
        p = ev[ev["kind"] == "payoff"]
        run = ["run"] if "run" in p.columns else []
        p = p[[*run, "round", "agent_id", "partner_id", "action", "value", "grp", "model"]]
        p = p[p["partner_id"].notna() & p["action"].isin(["C", "D"])].copy()
        p["won"] = p["value"].astype(float)
    else:
        p = moves(obj)
        run = ["run"] if "run" in p.columns else []
        p = p[p["partner_id"].notna()].copy()
        p["won"] = np.nan
    p["agent_id"] = p["agent_id"].astype("int64")
    p["partner_id"] = p["partner_id"].astype("int64")
    p["a"] = np.where(p["action"] == "C", 0, 1)
    rev = p[[*run, "round", "agent_id", "partner_id", "a"]].rename(
        columns={"agent_id": "partner_id", "partner_id": "agent_id", "a": "b"}
    )
    p = p.merge(rev, on=[*run, "round", "agent_id", "partner_id"], how="inner")
    stages = stage_games(obj) if payoffs is None and not isinstance(obj, pd.DataFrame) else None
    if stages is not None and len(stages):
        p = p.drop(columns=["stage", "family"], errors="ignore")
        p = _with_game(p, obj)
        on = [c for c in ("run", "game") if c in stages.columns]
        p = p.merge(stages[[*on, "stage", "family", "payoffs"]], on=on, how="inner")
        parts = [
            _scored(sub, payoff_matrix(sub["payoffs"].iloc[0]), run, normalisation)
            for _, sub in p.groupby([*on], observed=True, sort=True)
        ]
        p = pd.concat(parts, ignore_index=True).drop(columns=["payoffs"])
    else:
        M = payoff_matrix(payoffs if payoffs is not None else obj)
        p = _scored(p, M, run, normalisation)
    keys = group_keys(p, by)
    out = p.groupby(keys, observed=True)[["won", "max_achievable"]].sum().reset_index()
    out["score"] = out["won"] / out["max_achievable"].replace(0, np.nan)
    return out


def _scored(p: pd.DataFrame, M: np.ndarray, run: list[str], normalisation: str) -> pd.DataFrame:
    """Moves of one stage game with ``won`` and ``max_achievable`` per move."""
    a, b = p["a"].to_numpy(), p["b"].to_numpy()
    pair = [*run, "agent_id", "partner_id"]
    if np.allclose(M[:, :, 0], M[:, :, 1].T):
        role = np.zeros(len(p), dtype=int)
    else:
        err0 = np.abs(M[a, b, 0] - p["won"].to_numpy())
        err1 = np.abs(M[b, a, 1] - p["won"].to_numpy())
        e = pd.DataFrame({"e0": err0, "e1": err1}).groupby([p[k].to_numpy() for k in pair]).sum()
        if p["won"].isna().all():
            role = (p["agent_id"] > p["partner_id"]).to_numpy().astype(int)
        else:
            r = (e["e1"] < e["e0"]).astype(int)
            role = r.reindex(pd.MultiIndex.from_frame(p[pair])).to_numpy()
    won = p["won"].to_numpy()
    won = np.where(np.isnan(won), _own(M, role, a, b), won)
    if normalisation == "game_max":
        best = np.full(len(p), float(M.max()))
    else:
        best = np.maximum(_own(M, role, np.zeros_like(b), b), _own(M, role, np.ones_like(b), b))
    return p.assign(won=won, max_achievable=best)


# -- scores -------------------------------------------------------------------------------


def agent_scores(obj: Any) -> pd.DataFrame:
    """Per agent: ``score``, the sum of its ``payoff`` events (0 for an agent without any).

    One row per agent of ``agents`` (``agent_id``, ``name``, ``grp``, ``strategy``,
    ``model``, plus ``run`` for a RunSet), highest score first. ``society show`` and the
    report both read scores here.
    """
    agents = frame(obj, "agents")
    ev = frame(obj, "events")
    run = ["run"] if "run" in agents.columns else []
    cols = [c for c in [*run, "agent_id", "name", "grp", "strategy", "model"] if c in agents]
    out = agents[cols].copy()
    for c in ("grp", "strategy", "model"):
        if c in out.columns:
            out[c] = out[c].astype(object)
    pay = ev[ev["kind"] == "payoff"] if len(ev) else ev
    if len(pay):
        tot = pay.groupby([*run, "agent_id"], observed=True)["value"].sum().rename("score")
        out = out.merge(tot.reset_index(), on=[*run, "agent_id"], how="left")
    else:
        out["score"] = np.nan
    out["score"] = out["score"].fillna(0.0).astype(float)
    out = out.sort_values(
        [*run, "score", "agent_id"], ascending=[*([True] * len(run)), False, True]
    )
    return out.reset_index(drop=True)


def strategy_scores(obj: Any, by: By = ("grp", "strategy")) -> pd.DataFrame:
    """Per ``by``: ``agents``, ``mean_score`` (per agent) and ``total_score``, from
    :func:`agent_scores`; best mean first."""
    a = agent_scores(obj)
    keys = group_keys(a, by)
    g = a.groupby(keys, observed=True, dropna=False, sort=False)
    out = g.agg(
        agents=("agent_id", "size"), mean_score=("score", "mean"), total_score=("score", "sum")
    )
    return out.sort_values("mean_score", ascending=False, kind="stable").reset_index()


# -- inequality ---------------------------------------------------------------------------


def gini(values: Sequence[float] | np.ndarray) -> float:
    """Gini coefficient of non-negative values (0 = equal, (n-1)/n = one holds all).

    Returns 0 for an all-zero vector and NaN for an empty one.
    """
    x = np.sort(np.asarray(values, dtype=float).ravel())
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return float("nan")
    if np.any(x < 0):
        raise ValueError("gini needs non-negative values")
    total = x.sum()
    if total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def gini_by(obj: Any, source: str = "auto", by: By = "generation") -> pd.DataFrame:
    """Gini of per-agent outcomes per ``by``.

    ``source``: 'payoff' (sum of payoff events per agent), 'resources' (each agent's last
    resources event in the group), 'fitness' (fitness events), or 'auto' (the first of
    fitness, resources, payoff that the run has).
    """
    ev = frame(obj, "events")
    if source == "auto":
        kinds = set(ev["kind"].unique()) if len(ev) else set()
        source = next((s for s in ("fitness", "resources", "payoff") if s in kinds), "payoff")
    sub = ev[ev["kind"] == source]
    keys = group_keys(sub, by)
    agg = "sum" if source == "payoff" else "last"
    per_agent = sub.sort_values("round").groupby([*keys, "agent_id"], observed=True)["value"]
    per_agent = per_agent.agg(agg).reset_index()
    if not keys:
        return pd.DataFrame({"gini": [gini(per_agent["value"])], "n": [len(per_agent)]})
    out = per_agent.groupby(keys, observed=True)["value"].agg(gini=gini, n="size").reset_index()
    out["source"] = source
    return out


# -- donor game ----------------------------------------------------------------------------


DONATION_DEFINITION = (
    "share of the donor's holdings given to the recipient, averaged over every donor turn "
    "(fallbacks included); a punishment gives nothing and counts as 0"
)


def json_field(col: pd.Series, field: str) -> pd.Series:
    """One numeric field of a JSON text column (e.g. ``decisions.data``) as float64.

    Missing, unparsable or non-numeric values are NaN; booleans become 0/1. The JSON is
    parsed once per distinct text, so a million rows cost as much as their distinct values.
    """
    cat = col.astype("category") if not isinstance(col.dtype, pd.CategoricalDtype) else col

    def get(text: Any) -> float:
        try:
            v = json.loads(text).get(field)
        except (TypeError, ValueError, AttributeError):
            return np.nan
        if isinstance(v, bool):
            return float(v)
        return float(v) if isinstance(v, int | float) else np.nan

    vals = np.array([get(t) for t in cat.cat.categories], dtype=float)
    codes = cat.cat.codes.to_numpy()
    return pd.Series(np.where(codes >= 0, vals[np.clip(codes, 0, None)], np.nan), index=col.index)


def donations(obj: Any) -> pd.DataFrame:
    """The donor-game 'donate' decisions with their parsed ``data``.

    Added columns: ``punish`` (the donor punished instead of giving: ``action`` is
    'punish'), ``amount`` (units the donor spent, given or punishing: ``value``),
    ``percent`` (that amount as a percent of the donor's holdings, from ``data``),
    ``given`` (units given: ``amount``, 0 for a punishment) and ``fraction`` (the share
    of holdings given, 0..1: ``percent / 100``, 0 for a punishment).
    """
    from .run import upgrade_decisions

    d = frame(obj, "decisions")
    d = d[d["kind"] == "donate"].copy()
    if "data" not in d.columns:  # a hand-built frame in the format-1 shape
        d = upgrade_decisions(d)
    d["punish"] = (d["action"].astype(object) == "punish").to_numpy(dtype=bool)
    d["amount"] = d["value"].astype(float)
    d["percent"] = json_field(d["data"], "percent")
    d["given"] = d["amount"].where(~d["punish"], 0.0)
    d["fraction"] = (d["percent"] / 100.0).where(~d["punish"], 0.0)
    return d


def donation_fraction(obj: Any, by: By = "generation") -> pd.DataFrame:
    """Donor generosity per ``by``: the one definition of the donation fraction.

    ``mean_fraction``: the share of the donor's holdings given to the recipient, averaged
    over every donor turn ('donate' decision), LLM fallbacks included; a punishment gives
    nothing and counts as 0 (so a society that turns from giving to punishing is measured
    as giving less). ``mean_amount``: units given per turn (punishments 0).
    ``punishments`` / ``punish_rate``: turns that punished, and their share. ``n``: turns.
    ``society show`` (as "donation %") and the report use this function.
    """
    d = donations(obj)
    keys = group_keys(d, by)
    cols = {
        "mean_fraction": ("fraction", "mean"),
        "mean_amount": ("given", "mean"),
        "punishments": ("punish", "sum"),
        "punish_rate": ("punish", "mean"),
        "n": ("fraction", "size"),
    }
    if not keys:
        row = {
            "mean_fraction": d["fraction"].mean(),
            "mean_amount": d["given"].mean(),
            "punishments": int(d["punish"].sum()),
            "punish_rate": d["punish"].mean() if len(d) else np.nan,
            "n": len(d),
        }
        return pd.DataFrame([row])
    out = d.groupby(keys, observed=True).agg(**cols).reset_index()
    out["punishments"] = out["punishments"].astype("int64")
    return out


def mean_resources(obj: Any, by_game: bool = False) -> pd.DataFrame:
    """Mean final resources per generation (the last round of each game, then the mean
    over the generation's games). With ``by_game`` one row per (generation, game)."""
    ev = frame(obj, "events")
    r = ev[ev["kind"] == "resources"]
    run = ["run"] if "run" in r.columns else []
    rounds = getattr(obj, "rounds", None)
    if isinstance(rounds, pd.DataFrame) and not rounds.empty:
        r = r.merge(rounds[[*run, "round", "game"]], on=[*run, "round"], how="left")
    else:
        r = r.assign(game=0)
    r = r.assign(game=r["game"].fillna(0).astype("int64"))
    last = r.groupby([*run, "generation", "game"], observed=True)["round"].transform("max")
    final = r[r["round"] == last]
    per_game = (
        final.groupby([*run, "generation", "game"], observed=True)["value"]
        .agg(mean_resources="mean", n="size")
        .reset_index()
    )
    if by_game:
        return per_game
    return (
        per_game.groupby([*run, "generation"], observed=True)
        .agg(mean_resources=("mean_resources", "mean"), n_games=("game", "size"))
        .reset_index()
    )


def survival_by_group(obj: Any) -> pd.DataFrame:
    """Per generation and group: agents scored (fitness events), survivors, their share."""
    ev = frame(obj, "events")
    run = ["run"] if "run" in ev.columns else []
    keys = [*run, "generation", "grp"]
    fit = ev[ev["kind"] == "fitness"].drop_duplicates([*run, "generation", "agent_id"])
    surv = ev[ev["kind"] == "survivor"].drop_duplicates([*run, "generation", "agent_id"])
    n = fit.groupby(keys, observed=True).size().rename("n")
    s = surv.groupby(keys, observed=True).size().rename("survivors")
    out = pd.concat([n, s], axis=1).fillna(0).astype("int64").reset_index()
    out["fraction"] = out["survivors"] / out["n"].replace(0, np.nan)
    return out
