"""Evolution rules for any game, against hand-computed cases and known fixation results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from society.evolution import (
    AdviceInheritance,
    CopyInheritance,
    Evolution,
    GenerationOutcome,
    Individual,
    SurvivorInfo,
    TopFraction,
    fermi_probability,
    make_evolution,
    make_selection,
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
    """Fraction of Moran runs in which one mutant (spec B) takes over n agents: each
    generation's newcomers take their parent's spec, until one spec is left."""
    evo = Evolution("moran", "copy")
    rng = np.random.default_rng(seed)
    # Slot k playing A or B, built once (a tight loop: thousands of generations).
    agents = {
        spec["name"]: scripted([fit] * n, [spec] * n)
        for spec, fit in ((A, 1.0), (B, mutant_fitness))
    }
    fixed = 0
    for _ in range(runs):
        names = ["b"] + ["a"] * (n - 1)
        mutants = 1
        while 0 < mutants < n:
            pop = [agents[name][k] for k, name in enumerate(names)]
            for nc in evo.next_generation(pop, rng).newcomers:
                mutants += (nc.spec["name"] == "b") - (names[nc.slot] == "b")
                names[nc.slot] = nc.spec["name"]
        fixed += mutants == n
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


def mixed(fitness: list[float], llm: list[bool]) -> list[Individual]:
    """LLM agents write "text k"; scripted agents play spec {"name": "s<k>"}."""
    return [
        Individual(
            k, 100 + k, f"Agent {100 + k}", is_llm, f"text {k}" if is_llm else f"s{k}",
            None if is_llm else {"name": f"s{k}"}, f, valid=k != 0,
        )
        for k, (f, is_llm) in enumerate(zip(fitness, llm, strict=True))
    ]  # fmt: skip


def test_fermi_at_beta_zero_is_a_coin_flip_and_ranks_the_survivors():
    pop = scripted([1.0, 9.0, 4.0], [A, B, A])
    evo = Evolution("fermi", "copy", beta=0.0)
    rng = np.random.default_rng(4)
    trials, adopted = 3000, 0
    for _ in range(trials):
        out = evo.next_generation(pop, rng)
        adopted += len(out.newcomers)
        replaced = {nc.slot for nc in out.newcomers}
        kept = [p for p in pop if p.slot not in replaced]
        # Survivors: everyone not replaced, best first (stable by slot on ties).
        assert out.survivors == [p.agent_id for p in sorted(kept, key=lambda p: -p.fitness)]
        for nc in out.newcomers:  # parent: one of the others, its spec copied
            parent = pop[nc.parent_id - 100]
            assert parent.slot != nc.slot and nc.spec == parent.spec and nc.spec is not parent.spec
    se = math.sqrt(0.25 / (3 * trials))
    assert abs(adopted / (3 * trials) - 0.5) < 4 * se


def test_fermi_is_synchronous():
    # Every agent decides from the old population: when both adopt, they swap policies
    # (slot 1 copies slot 0's old A), rather than both ending with one policy.
    pop = scripted([2.0, 2.0], [A, B])
    rng = np.random.default_rng(0)
    evo = Evolution("fermi", "copy", beta=0.0)
    for _ in range(100):
        out = evo.next_generation(pop, rng)
        if len(out.newcomers) == 2:
            break
    assert [(nc.slot, nc.parent_id, nc.spec) for nc in out.newcomers] == [(0, 101, B), (1, 100, A)]
    assert out.survivors == []


def test_fermi_llm_agents_copy_text_or_take_advice_from_their_model():
    pop = mixed([0.0, 100.0], [True, True])
    copy = Evolution("fermi", "copy", beta=10).next_generation(pop, np.random.default_rng(0))
    (nc,) = copy.newcomers
    assert (nc.slot, nc.parent_id, nc.copy_text, nc.copy_valid, nc.spec) == (
        0,
        101,
        "text 1",
        True,
        None,
    )
    advice = Evolution("fermi", "advice", beta=10).next_generation(pop, np.random.default_rng(0))
    (nc,) = advice.newcomers
    assert nc.parent_id == 101 and nc.advice == (pop[1],) and nc.copy_text is None
    # Copying an invalid text keeps it flagged invalid.
    pop = mixed([100.0, 0.0], [True, True])
    (nc,) = (
        Evolution("fermi", "copy", beta=10).next_generation(pop, np.random.default_rng(0)).newcomers
    )
    assert nc.slot == 1 and nc.copy_text == "text 0" and nc.copy_valid is False


def test_imitation_never_gives_a_scripted_slot_an_llm_parent():
    # Slots 0, 2 LLM (very fit), 1, 3 scripted: scripted agents imitate scripted ones only;
    # LLM agents may learn from anyone (a scripted model's sentence as text).
    pop = mixed([50.0, 1.0, 60.0, 2.0], [True, False, True, False])
    llm_parent_of_llm = scripted_parent_of_llm = 0
    for rule in ("fermi", "moran"):
        evo = Evolution(rule, "copy", beta=1.0)
        rng = np.random.default_rng(11)
        for _ in range(2000):
            for nc in evo.next_generation(pop, rng).newcomers:
                parent = pop[nc.parent_id - 100]
                if pop[nc.slot].llm:
                    assert nc.copy_text == parent.strategy and nc.spec is None
                    scripted_parent_of_llm += not parent.llm
                    llm_parent_of_llm += parent.llm
                else:
                    assert not parent.llm and nc.spec == parent.spec
    assert llm_parent_of_llm > 0 and scripted_parent_of_llm > 0


def test_moran_reproducer_is_fitness_proportional():
    # Death is uniform among all 3 (possibly the reproducer: no event), so a slot is
    # replaced by slot b's copy with probability w_b * 1/3 for each b != it.
    pop = scripted([1.0, 2.0, 5.0])
    w = np.array([1.0, 2.0, 5.0]) / 8.0
    evo = Evolution("moran", "copy")
    rng = np.random.default_rng(8)
    trials = 6000
    births = np.zeros(3)
    events = 0
    for _ in range(trials):
        out = evo.next_generation(pop, rng)
        for nc in out.newcomers:
            births[nc.parent_id - 100] += 1
            events += 1
        assert len(out.survivors) == 3 - len(out.newcomers)
    p_event = 1 - float(w.sum() / 3)  # reproducer dies itself with probability 1/3
    assert abs(events / trials - p_event) < 4 * math.sqrt(p_event * (1 - p_event) / trials)
    expected = w * (2 / 3)
    for b in range(3):
        se = math.sqrt(expected[b] * (1 - expected[b]) / trials)
        assert abs(births[b] / trials - expected[b]) < 4 * se


def test_mutation_applies_to_scripted_newcomers_of_every_rule_only():
    pool = [{"name": "x"}]
    pop = mixed([5.0, 4.0, 3.0, 2.0, 1.0, 0.0], [True, False, True, False, True, False])
    for rule in ("top_fraction", "fitness_proportional", "fermi", "moran"):
        evo = Evolution(rule, "copy", beta=5, mutation=1.0, mutation_pool=pool)
        rng = np.random.default_rng(1)
        seen = 0
        for _ in range(50):
            for nc in evo.next_generation(pop, rng).newcomers:
                if pop[nc.slot].llm:
                    assert not nc.mutated and nc.spec is None
                else:
                    seen += 1
                    assert nc.mutated and nc.spec == {"name": "x"}
        assert seen > 0, rule


def test_mutation_rate_is_the_probability():
    pool = [{"name": "x"}]
    pop = scripted([3.0, 2.0, 1.0, 0.0])
    evo = Evolution("top_fraction", "copy", mutation=0.3, mutation_pool=pool)
    rng = np.random.default_rng(2)
    newcomers = mutants = 0
    for _ in range(2000):
        for nc in evo.next_generation(pop, rng).newcomers:
            newcomers += 1
            mutants += nc.mutated
            assert nc.spec == ({"name": "x"} if nc.mutated else A)
    assert abs(mutants / newcomers - 0.3) < 4 * math.sqrt(0.3 * 0.7 / newcomers)


def test_scripted_newcomers_without_a_scripted_survivor_take_their_group_policy():
    pop = mixed([9.0, 8.0, 1.0, 0.0], [True, True, False, False])
    group = {2: {"name": "g2"}, 3: {"name": "g3"}}
    for inheritance in ("advice", "copy"):
        out = Evolution("top_fraction", inheritance).next_generation(
            pop, np.random.default_rng(0), default_spec=group.get
        )
        assert out.survivors == [100, 101]
        assert [(nc.slot, nc.parent_id, nc.spec) for nc in out.newcomers] == [
            (2, None, {"name": "g2"}),
            (3, None, {"name": "g3"}),
        ]


def test_select_and_inherit_draw_in_the_donor_games_order():
    # top_fraction + copy: TopFraction.select, then CopyInheritance.plan for the LLM
    # newcomers over all survivors, then for the scripted newcomers over scripted ones.
    pop = mixed([5.0, 4.0, 3.0, 2.0, 1.0, 0.5], [True, False, True, False, True, False])
    out = Evolution("top_fraction", "copy").next_generation(pop, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    fit = {p.agent_id: p.fitness for p in pop}
    survivors = TopFraction().select(fit, rng, 0.5)
    assert out.survivors == survivors == [100, 101, 102]
    infos = [SurvivorInfo(a, pop[a - 100].name, pop[a - 100].strategy, fit[a]) for a in survivors]
    llm = CopyInheritance().plan(infos, 1, rng)
    scr = CopyInheritance().plan([i for i in infos if not pop[i.agent_id - 100].llm], 2, rng)
    assert [nc.parent_id for nc in out.newcomers] == [
        scr[0].parent_id,
        llm[0].parent_id,
        scr[1].parent_id,
    ]
    assert [nc.slot for nc in out.newcomers] == [3, 4, 5]


def test_newcomer_specs_are_copies():
    spec = {"name": "random", "p": [0.3]}
    pop = scripted([2.0, 1.0], [spec, dict(spec)])
    (nc,) = (
        Evolution("top_fraction", "copy").next_generation(pop, np.random.default_rng(0)).newcomers
    )
    assert nc.spec == spec and nc.spec is not spec and nc.spec["p"] is not spec["p"]


def test_edge_populations():
    for rule in ("top_fraction", "fitness_proportional", "fermi", "moran"):
        evo = Evolution(rule, "copy")
        assert evo.next_generation([], np.random.default_rng(0)) == GenerationOutcome([], [])
        one = evo.next_generation(scripted([1.0]), np.random.default_rng(0))
        assert one == GenerationOutcome([100], [])


def test_more_bad_values_name_the_field():
    with pytest.raises(
        ValueError, match="expected one of fermi, fitness_proportional, moran, top_fraction"
    ):
        make_evolution(selection="best")
    with pytest.raises(ValueError, match="evolution.selection: 'fermi' is an imitation rule"):
        make_selection("fermi")
    for bad in (0, 1.5, "half", True):
        with pytest.raises(ValueError, match="evolution.survivors"):
            make_evolution(survivors=bad)
    for bad in (math.inf, math.nan, "1"):
        with pytest.raises(ValueError, match="evolution.beta"):
            make_evolution(beta=bad)
    for bad in (-0.1, 1.1, math.nan):
        with pytest.raises(ValueError, match="evolution.mutation:"):
            make_evolution(mutation=bad, mutation_pool=[A])
    with pytest.raises(ValueError, match="evolution.mutation_pool"):
        make_evolution(mutation=0.5, mutation_pool=["tit_for_tat"])
    evo = make_evolution(selection="moran", beta=np.float64(2), mutation=np.int64(0))
    assert (evo.selection, evo.beta, evo.mutation) == ("moran", 2.0, 0.0)
