"""Evolution rules for any game, against hand-computed cases and known fixation results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from society.evolution import (
    AdviceInheritance,
    Evolution,
    Individual,
    SurvivorInfo,
    TopFraction,
    fermi_probability,
    make_evolution,
)

A, B = {"name": "a"}, {"name": "b"}


def scripted(fitness: list[float], specs: list[dict] | None = None) -> list[Individual]:
    specs = specs or [A] * len(fitness)
    return [
        Individual(k, 100 + k, f"Agent {100 + k}", False, s["name"], s, f)
        for k, (f, s) in enumerate(zip(fitness, specs, strict=True))
    ]


def test_fermi_probability_hand_computed():
    assert fermi_probability(1.0, 5.0, 0.0) == 0.5
    assert fermi_probability(2.0, 2.0, 7.0) == 0.5
    assert fermi_probability(1.0, 3.0, 1.0) == pytest.approx(1 / (1 + math.exp(-2)))
    assert fermi_probability(1.0, 3.0, 1.0) == pytest.approx(0.8807970779778823)
    assert fermi_probability(3.0, 1.0, 1.0) == pytest.approx(1 - 0.8807970779778823)
    with np.errstate(all="raise"):
        assert fermi_probability(0.0, 1e6, 1e6) == 1.0
        assert fermi_probability(1e6, 0.0, 1e6) == 0.0


def test_fermi_adoption_rate_matches_the_rule():
    evo = Evolution("fermi", "copy", beta=0.5)
    pop = scripted([1.0, 3.0], [A, B])
    rng = np.random.default_rng(0)
    trials = 4000
    adopted = 0
    for _ in range(trials):
        out = evo.next_generation(pop, rng)
        adopted += any(nc.slot == 0 for nc in out.newcomers)
    p = 1 / (1 + math.exp(-1.0))  # beta * (3 - 1) = 1
    se = math.sqrt(p * (1 - p) / trials)
    assert abs(adopted / trials - p) < 4 * se
    # The adopter copies its model's policy and names it as parent.
    out = Evolution("fermi", "copy", beta=50).next_generation(pop, np.random.default_rng(1))
    (nc,) = out.newcomers
    assert nc.slot == 0 and nc.parent_id == 101 and nc.spec == B
    assert out.survivors == [101]


def fixation(n: int, mutant_fitness: float, runs: int, seed: int) -> float:
    """Fraction of Moran runs in which one mutant (spec B) takes over n agents."""
    evo = Evolution("moran", "copy")
    rng = np.random.default_rng(seed)
    fixed = 0
    for _ in range(runs):
        specs = [B] + [A] * (n - 1)
        while 0 < sum(s is B for s in specs) < n:
            fit = [mutant_fitness if s is B else 1.0 for s in specs]
            for nc in evo.next_generation(scripted(fit, specs), rng).newcomers:
                specs[nc.slot] = B if nc.spec == B else A
        fixed += specs[0] is B
    return fixed / runs


def test_moran_fixation_of_a_neutral_mutant_is_one_over_n():
    n, runs = 10, 2000
    rho = fixation(n, 1.0, runs, seed=3)
    se = math.sqrt(0.1 * 0.9 / runs)
    assert abs(rho - 1 / n) < 4 * se


def test_moran_fixation_under_selection_follows_the_formula():
    n, r, runs = 6, 2.0, 1500
    expected = (1 - 1 / r) / (1 - 1 / r**n)  # Moran birth-death, fitness-proportional birth
    rho = fixation(n, r, runs, seed=5)
    se = math.sqrt(expected * (1 - expected) / runs)
    assert abs(rho - expected) < 4 * se and rho > 1 / n


def test_moran_is_one_birth_death_event():
    out = Evolution("moran", "copy").next_generation(
        scripted([1, 2, 3, 4]), np.random.default_rng(2)
    )
    assert len(out.newcomers) <= 1
    assert len(out.survivors) == 4 - len(out.newcomers)


def test_mutation_draws_from_the_pool_and_nothing_when_off():
    pool = [{"name": "x"}, {"name": "y"}]
    pop = scripted([5, 4, 3, 2, 1, 0])
    always = Evolution("top_fraction", "copy", mutation=1.0, mutation_pool=pool)
    counts = {"x": 0, "y": 0}
    rng = np.random.default_rng(0)
    for _ in range(400):
        for nc in always.next_generation(pop, rng).newcomers:
            assert nc.mutated and nc.spec in pool
            counts[nc.spec["name"]] += 1
    assert abs(counts["x"] - counts["y"]) < 0.2 * sum(counts.values())
    # mutation 0 draws nothing: the generator is where the rule alone leaves it.
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    Evolution("top_fraction", "copy").next_generation(pop, a)
    Evolution("top_fraction", "copy", mutation=0.0, mutation_pool=pool).next_generation(pop, b)
    assert a.bit_generator.state == b.bit_generator.state


def test_top_fraction_with_advice_and_copy_for_a_mixed_population():
    pop = [
        Individual(0, 10, "Agent 10", True, "give all", None, 5.0),
        Individual(1, 11, "Agent 11", False, "tft", {"name": "tft"}, 4.0),
        Individual(2, 12, "Agent 12", True, "give none", None, 3.0),
        Individual(3, 13, "Agent 13", False, "alld", {"name": "alld"}, 2.0),
    ]
    out = Evolution("top_fraction", "advice").next_generation(pop, np.random.default_rng(0))
    assert out.survivors == [10, 11]
    llm, scr = out.newcomers
    assert llm.slot == 2 and llm.parent_id == 10
    assert [a.agent_id for a in llm.advice] == [10, 11]
    assert scr.slot == 3 and scr.parent_id == 11 and scr.spec == {"name": "tft"}
    # The same as the Selection and Inheritance rules give on their own.
    fit = {p.agent_id: p.fitness for p in pop}
    assert TopFraction().select(fit, np.random.default_rng(0), 0.5) == [10, 11]
    plan = AdviceInheritance().plan([SurvivorInfo(10, "a", "give all", 5.0)], 1, None)
    assert plan[0].parent_id == 10
    copy = Evolution("top_fraction", "copy").next_generation(pop, np.random.default_rng(0))
    assert copy.newcomers[0].copy_text in ("give all", "tft")


def test_bad_rules_name_the_field():
    with pytest.raises(ValueError, match="evolution.selection: unknown selection rule 'best'"):
        make_evolution(selection="best")
    with pytest.raises(ValueError, match="evolution.inheritance"):
        make_evolution(inheritance="dna")
    with pytest.raises(ValueError, match="evolution.beta"):
        make_evolution(selection="fermi", beta=-1)
    with pytest.raises(ValueError, match="evolution.mutation_pool"):
        make_evolution(mutation=0.1)
