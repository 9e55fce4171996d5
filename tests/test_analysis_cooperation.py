"""Cooperation metrics against hand-computed values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cooperation as coop
from analysis.run import Run

# a1 = C C D C C, a2 = C D D C D over rounds 1..5 (hand-computed values below).
A1, A2 = "CCDCC", "CDDCD"
PD = {("C", "C"): (8, 8), ("C", "D"): (0, 10), ("D", "C"): (10, 0), ("D", "D"): (5, 5)}


def decisions(m1=A1, m2=A2):
    rows = []
    for r, (x, y) in enumerate(zip(m1, m2, strict=True), start=1):
        rows.append(
            {
                "round": r,
                "generation": 0,
                "agent_id": 1,
                "partner_id": 2,
                "kind": "move",
                "action": x,
                "grp": "llm",
            }
        )
        rows.append(
            {
                "round": r,
                "generation": 0,
                "agent_id": 2,
                "partner_id": 1,
                "kind": "move",
                "action": y,
                "grp": "tft",
            }
        )
    df = pd.DataFrame(rows)
    df["partner_id"] = df["partner_id"].astype("Int64")
    df["action"] = df["action"].astype("category")
    return df


def make_run(dec=None, events=None, rounds=None, scenario=None, agents=None):
    empty = pd.DataFrame()
    return Run(
        path=Path("."),
        meta={},
        scenario=scenario or {},
        agents=agents if agents is not None else empty,
        decisions=dec if dec is not None else pd.DataFrame(columns=["kind", "action"]),
        events=events if events is not None else pd.DataFrame(columns=["kind"]),
        llm_calls=empty,
        rounds=rounds if rounds is not None else empty,
    )


def payoff_events(m1=A1, m2=A2):
    rows = []
    for r, (x, y) in enumerate(zip(m1, m2, strict=True), start=1):
        p1, p2 = PD[(x, y)]
        rows.append(
            {
                "round": r,
                "kind": "payoff",
                "agent_id": 1,
                "partner_id": 2,
                "action": x,
                "value": float(p1),
                "grp": "llm",
                "model": None,
            }
        )
        rows.append(
            {
                "round": r,
                "kind": "payoff",
                "agent_id": 2,
                "partner_id": 1,
                "action": y,
                "value": float(p2),
                "grp": "tft",
                "model": None,
            }
        )
    return pd.DataFrame(rows)


def test_cooperation_rate_per_round_agent_group():
    d = decisions()
    by_round = coop.cooperation_rate(d, "round").set_index("round")["rate"]
    assert list(by_round) == [1.0, 0.5, 0.0, 1.0, 0.5]
    by_agent = coop.cooperation_rate(d, "agent_id").set_index("agent_id")["rate"]
    assert by_agent[1] == pytest.approx(0.8) and by_agent[2] == pytest.approx(0.4)
    by_grp = coop.cooperation_rate(d, "grp").set_index("grp")["rate"]
    assert by_grp["llm"] == pytest.approx(0.8)
    overall = coop.cooperation_rate(d, None)
    assert overall["rate"].iloc[0] == pytest.approx(0.6) and overall["n"].iloc[0] == 10


def test_mutual_cooperation():
    out = coop.mutual_cooperation_rate(decisions(), None)
    assert out["rate"].iloc[0] == pytest.approx(2 / 5)
    assert out["n"].iloc[0] == 5  # one row per encounter, not per player
    per_round = coop.mutual_cooperation_rate(decisions(), "round").set_index("round")["rate"]
    assert list(per_round) == [1, 0, 0, 1, 0]


def test_conditional_cooperation():
    out = coop.conditional_cooperation(decisions(), "agent_id").set_index("agent_id")
    # a1 after a2's C (rounds 2, 5): C, C; after a2's D (rounds 3, 4): D, C.
    assert out.loc[1, "p_c_after_c"] == 1.0 and out.loc[1, "n_p_c_after_c"] == 2
    assert out.loc[1, "p_c_after_d"] == 0.5 and out.loc[1, "n_p_c_after_d"] == 2
    # a2 after a1's C (rounds 2, 3, 5): D, D, D; after a1's D (round 4): C.
    assert out.loc[2, "p_c_after_c"] == 0.0 and out.loc[2, "n_p_c_after_c"] == 3
    assert out.loc[2, "p_c_after_d"] == 1.0


def test_forgiveness_and_retaliation():
    out = coop.forgiveness_retaliation(decisions(), "agent_id").set_index("agent_id")
    # a2 played D (r3) then C (r4): a1 cooperates at r5 -> forgiveness 1/1.
    assert out.loc[1, "forgiveness"] == 1.0 and out.loc[1, "n_forgiveness"] == 1
    # After a2's D at r2 a1 plays D (r3); after a2's D at r3 a1 plays C (r4).
    assert out.loc[1, "retaliation"] == 0.5 and out.loc[1, "n_retaliation"] == 2
    # a1: D (r3) then C (r4); a2 plays D at r5 -> no forgiveness; a2 answers r3's D with C.
    assert out.loc[2, "forgiveness"] == 0.0
    assert out.loc[2, "retaliation"] == 0.0


def test_reciprocity_holds_both_tables():
    out = coop.reciprocity(decisions(), "agent_id").set_index("agent_id")
    assert out.loc[1, ["p_c_after_c", "p_c_after_d", "forgiveness", "retaliation"]].tolist() == [
        1.0,
        0.5,
        1.0,
        0.5,
    ]
    assert out.loc[2, ["p_c_after_c", "p_c_after_d", "forgiveness", "retaliation"]].tolist() == [
        0.0,
        1.0,
        0.0,
        0.0,
    ]
    assert out.loc[2, "n_p_c_after_c"] == 3 and out.loc[1, "n_retaliation"] == 2


def test_previous_move_does_not_cross_games():
    d = decisions()
    d["game"] = [0] * 6 + [1] * 4  # rounds 4-5 are a new match
    out = coop.conditional_cooperation(d, "agent_id").set_index("agent_id")
    # a1 in game 0: r2 after C -> C, r3 after D -> D; game 1: r5 after C -> C.
    assert out.loc[1, "n_p_c_after_c"] == 2 and out.loc[1, "n_p_c_after_d"] == 1


def test_score_vs_max_from_decisions_and_events():
    pd_matrix = [[8, 0], [10, 5]]
    out = coop.score_vs_max(decisions(), payoffs=pd_matrix).set_index("agent_id")
    # a1 won 8+0+5+8+0 = 21 of a max 10+5+5+10+5 = 35; a2 won 41 of 45.
    assert out.loc[1, "won"] == 21 and out.loc[1, "max_achievable"] == 35
    assert out.loc[1, "score"] == pytest.approx(0.6)
    assert out.loc[2, "score"] == pytest.approx(41 / 45)
    run = make_run(decisions(), payoff_events(), scenario={"game": {"preset": "prisoners_dilemma"}})
    out2 = coop.score_vs_max(run).set_index("agent_id")
    assert out2.loc[1, "score"] == pytest.approx(0.6)


def test_score_vs_max_infers_role_in_battle_of_the_sexes():
    bos = coop.payoff_matrix({"game": {"kind": "repeated_2x2", "preset": "battle_of_the_sexes"}})
    assert bos[0, 0].tolist() == [10, 7] and bos[1, 1].tolist() == [7, 10]
    # Agent 1 is the column player: it prefers option 1 ('D').
    moves = [("C", "C"), ("D", "D")]
    ev = []
    for r, (x2, x1) in enumerate(moves):  # agent 2 = row player
        p_row, p_col = bos[int(x2 == "D"), int(x1 == "D")]
        ev += [
            {
                "round": r,
                "kind": "payoff",
                "agent_id": 2,
                "partner_id": 1,
                "action": x2,
                "value": p_row,
                "grp": "g",
                "model": None,
            },
            {
                "round": r,
                "kind": "payoff",
                "agent_id": 1,
                "partner_id": 2,
                "action": x1,
                "value": p_col,
                "grp": "g",
                "model": None,
            },
        ]
    run = make_run(events=pd.DataFrame(ev), scenario={"game": {"preset": "battle_of_the_sexes"}})
    out = coop.score_vs_max(run).set_index("agent_id")
    # Agent 1 (column) won 7 + 10 = 17; max against (C, D) is 7 + 10 = 17 -> 1.0.
    assert out.loc[1, "score"] == pytest.approx(1.0)
    assert out.loc[2, "won"] == 17 and out.loc[2, "score"] == pytest.approx(1.0)


def test_payoff_matrix_sources():
    m = coop.payoff_matrix({"game": {"R": 3, "S": 0, "T": 5, "P": 1}})
    assert m[0, 1].tolist() == [0, 5] and m[1, 0].tolist() == [5, 0]
    m = coop.payoff_matrix({"game": {"preset": "prisoners_dilemma", "params": {"R": 9}}})
    assert m[0, 0].tolist() == [9, 9]
    m = coop.payoff_matrix({"game": {"payoffs": [[[1, 1], [0, 2]], [[2, 0], [0.5, 0.5]]]}})
    assert m[1, 1].tolist() == [0.5, 0.5]
    # The ordinal prisoner's dilemma: ranks (3,3) (1,4) / (4,1) (2,2).
    m = coop.payoff_matrix({"game": {"ordinal": "rg_3142_3412", "payoffs": None}})
    assert m.tolist() == [[[3, 3], [1, 4]], [[4, 1], [2, 2]]]
    with pytest.raises(ValueError, match="unknown ordinal game 'rg_nope'"):
        coop.payoff_matrix({"game": {"ordinal": "rg_nope"}})
    with pytest.raises(ValueError):
        coop.payoff_matrix({"game": {"kind": "donor"}})


def test_gini_known_vectors():
    assert coop.gini([1, 1, 1, 1]) == 0.0
    assert coop.gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert coop.gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert coop.gini([0, 0]) == 0.0
    assert np.isnan(coop.gini([]))
    with pytest.raises(ValueError):
        coop.gini([-1, 2])


def _donor_run():
    """Two generations, two games each of two rounds; agents 1-4, groups a/b."""
    grp = {1: "a", 2: "a", 3: "b", 4: "b"}
    dec, ev, rounds = [], [], []
    rnd = 0
    for gen in (0, 1):
        for game in (0, 1):
            for rig in (0, 1):
                rounds.append({"round": rnd, "generation": gen, "game": game, "round_in_game": rig})
                for donor, pct in ((1, 50.0), (3, 10.0 * (gen + 1))):
                    data = json.dumps({"amount": pct / 10, "percent": pct})
                    dec.append(
                        {
                            "round": rnd,
                            "generation": gen,
                            "agent_id": donor,
                            "partner_id": donor + 1,
                            "kind": "donate",
                            "action": "give",
                            "value": pct / 10,
                            "data": data,
                            "grp": grp[donor],
                        }
                    )
                for a in (1, 2, 3, 4):  # resources: agent a holds 10*a + round + 100*game
                    ev.append(
                        {
                            "round": rnd,
                            "generation": gen,
                            "kind": "resources",
                            "agent_id": a,
                            "value": 10.0 * a + rig + 100 * game,
                            "grp": grp[a],
                        }
                    )
                rnd += 1
        for a in (1, 2, 3, 4):
            ev.append(
                {
                    "round": rnd - 1,
                    "generation": gen,
                    "kind": "fitness",
                    "agent_id": a,
                    "value": float(a),
                    "grp": grp[a],
                }
            )
        for a in (1, 2, 3) if gen == 0 else (1,):
            ev.append(
                {
                    "round": rnd - 1,
                    "generation": gen,
                    "kind": "survivor",
                    "agent_id": a,
                    "value": None,
                    "grp": grp[a],
                }
            )
    dec = pd.DataFrame(dec)
    dec["action"] = dec["action"].astype("category")
    dec["data"] = dec["data"].astype("category")
    return make_run(dec, pd.DataFrame(ev), pd.DataFrame(rounds))


def test_donation_fraction():
    run = _donor_run()
    out = coop.donation_fraction(run, "generation").set_index("generation")
    # gen 0: 50% and 10% -> 0.30; gen 1: 50% and 20% -> 0.35.
    assert out.loc[0, "mean_fraction"] == pytest.approx(0.30)
    assert out.loc[1, "mean_fraction"] == pytest.approx(0.35)
    by_grp = coop.donation_fraction(run, ["generation", "grp"]).set_index(["generation", "grp"])
    assert by_grp.loc[(1, "b"), "mean_fraction"] == pytest.approx(0.2)
    assert len(coop.donation_fraction(run, "round")) == 8


def test_donation_fraction_of_a_format_1_frame():
    """A hand-built frame in the format-1 shape (JSON in ``action``) reads the same."""
    run = _donor_run()
    d = run.decisions.drop(columns=["data"])
    d["action"] = [json.dumps({"amount": v, "percent": v * 10}) for v in d["value"]]
    old = coop.donation_fraction(make_run(d, run.events, run.rounds), "generation")
    pd.testing.assert_frame_equal(old, coop.donation_fraction(run, "generation"))


def test_mean_resources_final_round_of_each_game():
    run = _donor_run()
    per_game = coop.mean_resources(run, by_game=True).set_index(["generation", "game"])
    # Final round (round_in_game 1): mean of 10a + 1 + 100 game over a = 1..4 = 26 + 100 game.
    assert per_game.loc[(0, 0), "mean_resources"] == pytest.approx(26.0)
    assert per_game.loc[(0, 1), "mean_resources"] == pytest.approx(126.0)
    per_gen = coop.mean_resources(run).set_index("generation")
    assert per_gen.loc[1, "mean_resources"] == pytest.approx(76.0)


def test_survival_by_group_and_gini_by():
    run = _donor_run()
    s = coop.survival_by_group(run).set_index(["generation", "grp"])
    assert s.loc[(0, "a"), "fraction"] == 1.0 and s.loc[(0, "b"), "fraction"] == 0.5
    assert s.loc[(1, "a"), "survivors"] == 1 and s.loc[(1, "b"), "survivors"] == 0
    g = coop.gini_by(run, source="fitness").set_index("generation")
    assert g.loc[0, "gini"] == pytest.approx(coop.gini([1, 2, 3, 4]))
    assert g.loc[0, "source"] == "fitness"
