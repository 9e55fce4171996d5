"""The donor game with cultural evolution (protocols §1; Vallinder & Hughes, arXiv 2412.10270).

A run is `evolution.generations` generations; each generation plays
`game.games_per_generation` donor games of `game.rounds` rounds among the same agents,
with resources and traces reset between games. Steps, each committed with a checkpoint:

- one *strategy step* at the start of every generation: the generation's new agents get
  their strategy (LLM agents write it, all of them in one batch through the `Decider`;
  scripted agents take their `describe()` sentence; `copy` inheritance copies text);
  every living agent's strategy is recorded as a 'strategy' event of that generation;
- one *round step* per round of each game: all donors of the round decide in one batch.
  After the last round of the last game, fitness (mean final resources over the games) is
  recorded, selection picks the survivors (also after the last generation, so every
  generation has its 'survivor' events) and, unless it was the last generation,
  inheritance makes the newcomers of the next generation.

Numbering in the store is 0-based: `generation`, `game`, `round_in_game` (the strategy step
has `round_in_game = -1`). Agents are shown 1-based generation and round numbers.

Identity and groups: agents live in *slots* (indices of the donor game). Survivors keep
their slot, agent_id and strategy; a newcomer gets a new agent_id and takes the slot, and
so the group (kind and backend), of the agent it replaces, which keeps each group's size
(and each backend's share of a mixed population) fixed across generations. Newcomers of
an LLM group follow the inheritance rule (`society.evolution`), with all survivors (LLM
and scripted, whose strategy text is their `describe()` sentence) as possible advice or
parents. A newcomer of a scripted group cannot write a strategy, so it imitates: it
copies the scripted policy of its parent, chosen by the inheritance rule among the
*scripted* survivors (advice: the best one; copy: fitness-proportional); with no scripted
survivor it takes its group's own strategy and has no parent. Its `agents.grp` stays the
slot's group while `agents.strategy` names the policy it actually plays.

Decision fallback (LLM): a donation still invalid after one repair gives 0 and is
recorded with valid 0, source 'fallback'. A donor holding nothing can only give 0: unless
`game.ask_when_empty`, it is not asked and its decision is recorded with source 'forced'. A strategy reply without a sentence starting
"My strategy will be" keeps its last sentence (valid 0, source 'fallback').

All randomness (pairing schedules, scripted random donors, selection ties, copy draws)
comes from one numpy Generator seeded by the scenario seed and held in the state.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np

from agents.donors import DonorStrategy, make_donor_strategy
from agents.llm_donor import Advice, DonationOutcome, LLMDonor, StrategyOutcome
from agents.prompts import Prompts
from games.donor import DonorAction, DonorGame, DonorRules, clamp_action, max_rounds
from society.decide import Decider, Job
from society.errors import UserError
from society.evolution import SurvivorInfo, make_inheritance, make_selection
from society.population import Member, agent_row, build_members
from society.scenario import DonorConfig, GroupConfig, Scenario
from society.sims.base import Simulation, StepRecord


def build_rules(cfg: DonorConfig) -> DonorRules:
    """The donor-game rules of the scenario."""
    try:
        return DonorRules(
            endowment=float(cfg.endowment),
            multiplier=float(cfg.multiplier),
            rounds=cfg.rounds,
            trace_depth=cfg.trace_depth,
            punishment=cfg.punishment,
            punishment_cost=float(cfg.punishment_cost),
            punishment_fine=float(cfg.punishment_fine),
            no_repeat=cfg.no_repeat,
        )
    except ValueError as exc:
        raise UserError(f"game: {exc}") from None


def _spec(strategy: DonorStrategy) -> dict[str, Any]:
    return {"name": strategy.name, **strategy.params()}


def display_name(agent_id: int) -> str:
    """How agents are named in prompts (unique over the run)."""
    return f"Agent {agent_id}"


class DonorSim(Simulation):
    """Generations of donor games with selection and inheritance between them."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        cfg = scenario.game
        assert isinstance(cfg, DonorConfig)
        self.cfg = cfg
        self.evo = scenario.evolution
        self.rules = build_rules(cfg)
        self.groups: list[GroupConfig] = list(scenario.population.groups)
        members = build_members(scenario)
        self.n = n = len(members)
        if n < 2 or n % 2:
            raise UserError(
                f"population: the donor game needs an even number of agents >= 2, got {n}"
            )
        limit = max_rounds(n, cfg.no_repeat)
        if cfg.rounds > limit:
            raise UserError(
                f"game.rounds: {cfg.rounds} rounds with {n} agents and no_repeat="
                f"{cfg.no_repeat!r} is impossible (at most {limit}; see games.donor.DonorRules)"
            )
        try:
            self.selection = make_selection(self.evo.selection)
            self.inheritance = make_inheritance(self.evo.inheritance)
            prompts = Prompts(scenario.prompts)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.backends = [
            scenario.group_backend(g) if g.kind == "llm" else None for g in self.groups
        ]
        self.llm: list[LLMDonor | None] = []
        self._scripted: dict[str, DonorStrategy] = {}
        self.group_specs: list[dict[str, Any] | None] = []
        for g in self.groups:
            if g.kind == "llm":
                self.llm.append(
                    LLMDonor(
                        prompts,
                        self.rules,
                        temperature=g.temperature,
                        strategy_max_tokens=cfg.strategy_max_tokens,
                        donation_max_tokens=cfg.donation_max_tokens,
                        reasoning_chars=cfg.reasoning_chars,
                        survivors=self.evo.survivors,
                        reveal_rounds=cfg.reveal_rounds,
                        persona=g.persona,
                    )
                )
                self.group_specs.append(None)
            else:
                self.llm.append(None)
                try:
                    strat = make_donor_strategy(g.strategy)
                except ValueError as exc:
                    raise UserError(f"population.groups.{g.name}.strategy: {exc}") from None
                self.group_specs.append(_spec(strat))
        group_index = {g.name: k for k, g in enumerate(self.groups)}
        # -- state (everything below is in get_state) --
        self.rng = np.random.default_rng(scenario.seed)
        self.step_no = 0
        self.generation = 0
        self.phase = "strategy"
        self.game_no = 0
        self.game: DonorGame | None = None
        self.finals: list[list[float]] = []
        self.next_id = n
        self.slots: list[dict[str, Any]] = []
        for m in members:
            gi = group_index[m.group.name]
            self.slots.append(
                {
                    "agent_id": m.agent_id,
                    "group": gi,
                    "name": m.name,
                    "strategy": None,
                    "valid": True,
                    "spec": self.group_specs[gi],
                    "generation": 0,
                    "parent_id": None,
                    "advice": None,  # list of (agent_id, name, strategy, score) to write from
                }
            )

    # -- the Simulation interface ------------------------------------------------
    @property
    def done(self) -> bool:
        return self.phase == "over"

    @property
    def total_steps(self) -> int | None:
        per_gen = 1 + self.cfg.games_per_generation * self.cfg.rounds
        return self.evo.generations * per_gen

    def step(self, decider: Decider) -> StepRecord:
        if self.done:
            raise RuntimeError("the donor-game run is over")
        rec = self._strategy_step(decider) if self.phase == "strategy" else self._round(decider)
        self.step_no += 1
        return rec

    def get_state(self) -> dict[str, Any]:
        # Shares live lists with the simulation: the runner pickles it at once, and
        # set_state copies what it is given.
        return {
            "rng": self.rng.bit_generator.state,
            "step_no": self.step_no,
            "generation": self.generation,
            "phase": self.phase,
            "game_no": self.game_no,
            "game": None if self.game is None else self.game.state_dict(),
            "finals": self.finals,
            "next_id": self.next_id,
            "slots": self.slots,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.rng.bit_generator.state = state["rng"]
        self.step_no = state["step_no"]
        self.generation = state["generation"]
        self.phase = state["phase"]
        self.game_no = state["game_no"]
        self.game = None if state["game"] is None else DonorGame.from_state(state["game"])
        self.finals = state["finals"]
        self.next_id = state["next_id"]
        self.slots = state["slots"]

    # -- helpers ---------------------------------------------------------------
    def member(self, slot: dict[str, Any]) -> Member:
        """The population member of a slot's current agent."""
        gi = slot["group"]
        return Member(slot["agent_id"], slot["name"], self.groups[gi], self.backends[gi])

    def scripted(self, spec: dict[str, Any]) -> DonorStrategy:
        """The (cached, stateless) scripted donor for a spec."""
        key = json.dumps(spec, sort_keys=True)
        if key not in self._scripted:
            self._scripted[key] = make_donor_strategy(spec)
        return self._scripted[key]

    def _is_llm(self, slot: dict[str, Any]) -> bool:
        return self.groups[slot["group"]].kind == "llm"

    # -- strategy step -------------------------------------------------------------
    def _strategy_step(self, decider: Decider) -> StepRecord:
        g, r = self.generation, self.step_no
        rec = StepRecord(round=r, generation=g, game=0, round_in_game=-1)
        jobs: list[tuple[dict[str, Any], Job]] = []
        written: dict[int, tuple[str, int, str, int | None]] = {}  # agent -> text, valid, src, call
        for slot in self.slots:
            if slot["strategy"] is not None:
                continue  # survivors, and newcomers that copied a strategy
            aid = slot["agent_id"]
            policy = self.llm[slot["group"]]
            if policy is None:
                text = self.scripted(slot["spec"]).describe()
                slot["strategy"], slot["valid"] = text, True
                written[aid] = (text, 1, "scripted", None)
                continue
            advice = [Advice(name, text, score) for _, name, text, score in slot["advice"] or ()]
            gen = policy.write_strategy(
                name=display_name(aid),
                generation=g + 1,
                advice=advice or None,
                tags={"agent": aid, "round": r, "generation": g},
            )
            jobs.append((slot, Job.for_member(self.member(slot), gen)))
        if jobs:
            decider.run([job for _, job in jobs], r)
            for slot, job in jobs:
                out: StrategyOutcome = job.result
                slot["strategy"], slot["valid"] = out.text, out.valid
                src = "llm" if out.valid else "fallback"
                written[slot["agent_id"]] = (out.text, int(out.valid), src, job.last_call_id)
        for slot in self.slots:
            aid = slot["agent_id"]
            if aid in written:
                text, valid, src, call_id = written[aid]
                rec.decisions.append((r, g, aid, None, "strategy", text, None, valid, src, call_id))
            if slot["generation"] == g:  # born this generation: its agents row
                m = self.member(slot)
                spec = slot["spec"]
                if self._is_llm(slot):
                    row = agent_row(
                        m, strategy=slot["strategy"], generation=g, parent_id=slot["parent_id"],
                        born_round=r,
                    )  # fmt: skip
                else:
                    params = {k: v for k, v in spec.items() if k != "name"}
                    row = agent_row(
                        m, strategy=spec["name"], params=params, generation=g,
                        parent_id=slot["parent_id"], born_round=r,
                    )  # fmt: skip
                rec.agents.append(row)
            data = {
                "born_generation": slot["generation"],
                "parent_id": slot["parent_id"],
                "group": self.groups[slot["group"]].name,
                "valid": bool(slot["valid"]),
                "new": slot["generation"] == g,
            }
            rec.events.append((r, g, "strategy", aid, None, slot["strategy"], None, _j(data)))
            slot["advice"] = None
        self.phase = "play"
        self.game_no = 0
        self.game = None
        self.finals = []
        return rec

    # -- round step ------------------------------------------------------------------
    def _round(self, decider: Decider) -> StepRecord:
        g, r = self.generation, self.step_no
        if self.game is None:
            self.game = DonorGame(self.n, self.rules, self.rng)
        game = self.game
        rig = game.round
        rec = StepRecord(round=r, generation=g, game=self.game_no, round_in_game=rig)
        observations = game.pending()
        names = [display_name(s["agent_id"]) for s in self.slots]
        n_obs = len(observations)
        actions: list[DonorAction] = [DonorAction(0.0)] * n_obs
        valid = [1] * n_obs
        source = ["scripted"] * n_obs
        call_ids: list[int | None] = [None] * n_obs
        jobs: list[tuple[int, Job]] = []
        for k, obs in enumerate(observations):
            slot = self.slots[obs.donor]
            policy = self.llm[slot["group"]]
            if policy is None:
                action = self.scripted(slot["spec"]).donate(obs, self.rng)
                action, changed = clamp_action(action, obs.donor_resources, self.rules)
                actions[k] = action
                valid[k] = 0 if changed else 1
                continue
            if obs.donor_resources <= 0 and not self.cfg.ask_when_empty:
                source[k] = "forced"  # the only legal answer is 0: no call needed
                continue
            aid = slot["agent_id"]
            gen = policy.donate(
                obs,
                name=names[obs.donor],
                strategy=slot["strategy"],
                generation=g + 1,
                names=names,
                tags={
                    "agent": aid,
                    "partner": self.slots[obs.recipient]["agent_id"],
                    "round": r,
                    "generation": g,
                },
            )
            jobs.append((k, Job.for_member(self.member(slot), gen)))
        if jobs:
            decider.run([job for _, job in jobs], r)
            for k, job in jobs:
                out: DonationOutcome = job.result
                call_ids[k] = job.last_call_id
                if out.valid:
                    action, changed = clamp_action(
                        DonorAction(out.amount, out.punish),
                        observations[k].donor_resources,
                        self.rules,
                    )
                    actions[k] = action
                    valid[k] = 0 if changed else 1
                    source[k] = "llm" if not changed else "fallback"
                else:
                    actions[k] = DonorAction(0.0)
                    valid[k] = 0
                    source[k] = "fallback"
        events = game.apply(actions)
        ids = [s["agent_id"] for s in self.slots]
        punishment = self.rules.punishment
        for k, ev in enumerate(events):
            donor, recipient = ids[ev.donor], ids[ev.recipient]
            act: dict[str, Any] = {"amount": ev.amount, "percent": ev.percent}
            if punishment:
                act["punish"] = ev.punished
            rec.decisions.append(
                (r, g, donor, recipient, "donate", _j(act), ev.amount, valid[k], source[k],
                 call_ids[k])
            )  # fmt: skip
            data = {
                "percent": ev.percent,
                "donor_before": ev.donor_before,
                "donor_after": ev.donor_after,
                "recipient_before": ev.recipient_before,
                "recipient_after": ev.recipient_after,
                "game": self.game_no,
                "round_in_game": rig,
            }
            if ev.punished:
                data["fine"] = ev.fine
                rec.events.append((r, g, "punishment", donor, recipient, None, ev.amount, _j(data)))
            else:
                data["received"] = ev.recipient_after - ev.recipient_before
                rec.events.append((r, g, "donation", donor, recipient, None, ev.amount, _j(data)))
        res_data = _j({"game": self.game_no, "round_in_game": rig})
        for k, aid in enumerate(ids):
            rec.events.append((r, g, "resources", aid, None, None, game.resources[k], res_data))
        if game.done:
            self.finals.append(list(game.resources))
            self.game = None
            self.game_no += 1
            if self.game_no >= self.cfg.games_per_generation:
                self._end_generation(rec)
        return rec

    # -- between generations ---------------------------------------------------------
    def _end_generation(self, rec: StepRecord) -> None:
        g, r = self.generation, self.step_no
        finals = np.array(self.finals)  # games x slots
        fitness = {s["agent_id"]: float(finals[:, k].mean()) for k, s in enumerate(self.slots)}
        for k, s in enumerate(self.slots):
            aid = s["agent_id"]
            data = _j({"finals": finals[:, k].tolist(), "group": self.groups[s["group"]].name})
            rec.events.append((r, g, "fitness", aid, None, None, fitness[aid], data))
        survivors = self.selection.select(fitness, self.rng, self.evo.survivors)
        by_id = {s["agent_id"]: s for s in self.slots}
        for rank, aid in enumerate(survivors):
            data = _j({"rank": rank, "group": self.groups[by_id[aid]["group"]].name})
            rec.events.append((r, g, "survivor", aid, None, None, fitness[aid], data))
        if g + 1 >= self.evo.generations:
            self.phase = "over"
            return
        infos = [
            SurvivorInfo(aid, display_name(aid), by_id[aid]["strategy"], fitness[aid])
            for aid in survivors
        ]
        alive = set(survivors)
        dead = [k for k, s in enumerate(self.slots) if s["agent_id"] not in alive]
        dead_llm = [k for k in dead if self._is_llm(self.slots[k])]
        dead_scr = [k for k in dead if not self._is_llm(self.slots[k])]
        plans_llm = self.inheritance.plan(infos, len(dead_llm), self.rng)
        scr_infos = [i for i in infos if not self._is_llm(by_id[i.agent_id])]
        plans_scr = self.inheritance.plan(scr_infos, len(dead_scr), self.rng)
        for k, plan in zip(dead_llm, plans_llm, strict=True):
            slot = self._newcomer(k, plan.parent_id)
            if plan.copy is not None:
                slot["strategy"] = plan.copy.strategy
                slot["valid"] = bool(by_id[plan.copy.agent_id]["valid"])
            else:
                slot["advice"] = [(a.agent_id, a.name, a.strategy, a.fitness) for a in plan.advice]
        for k, plan in zip(dead_scr, plans_scr, strict=True):
            slot = self._newcomer(k, plan.parent_id)
            if plan.parent_id is not None:
                slot["spec"] = copy.deepcopy(by_id[plan.parent_id]["spec"])
        self.generation = g + 1
        self.phase = "strategy"

    def _newcomer(self, k: int, parent_id: int | None) -> dict[str, Any]:
        old = self.slots[k]
        aid = self.next_id
        self.next_id += 1
        gi = old["group"]
        slot = {
            "agent_id": aid,
            "group": gi,
            "name": f"{self.groups[gi].name}-{aid}",
            "strategy": None,
            "valid": True,
            "spec": self.group_specs[gi],
            "generation": self.generation + 1,
            "parent_id": parent_id,
            "advice": None,
        }
        self.slots[k] = slot
        return slot


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
