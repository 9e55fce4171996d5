"""Repeated 2x2 games in a population: matches between pairs, played in lockstep.

Every pair formed by the matcher plays one stage game per step. With a static
matcher (round-robin, network edges) each pair's history is one match of
`game.rounds` rounds, so a round-robin scenario is an Axelrod-style tournament
whose matches are played side by side; that lockstep is what lets every LLM
decision of a round go to the backend as one batch.
"""

from __future__ import annotations

from itertools import groupby, repeat
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.llm_player import LLMPlayer, MoveOutcome
from agents.prompts import Prompts
from agents.strategies import Strategy, make_strategy
from games.observation import RepeatedObservation
from games.ordinal import ordinal_games
from games.repeated import RepeatedGameRules
from games.twobytwo import Game2x2, custom, preset
from society.decide import Decider, Job
from society.errors import UserError
from society.matching import build_matcher
from society.network import build_network
from society.population import agent_row, build_members
from society.scenario import Repeated2x2Config, Scenario
from society.sims.base import Simulation, StepRecord

if TYPE_CHECKING:
    from society.store import RunStore

MOVE = ("C", "D")


def build_game(cfg: Repeated2x2Config) -> Game2x2:
    """The stage game named by the scenario: custom payoffs, an ordinal game, or a preset."""
    try:
        if cfg.payoffs is not None:
            return custom(cfg.payoffs, name="custom")
        if cfg.ordinal is not None:
            games = {g.name: g for g in ordinal_games()}
            if cfg.ordinal not in games:
                raise UserError(
                    f"game.ordinal: unknown ordinal game {cfg.ordinal!r} "
                    f"(names look like {next(iter(games))}; see games.ordinal_games())"
                )
            return games[cfg.ordinal]
        return preset(cfg.preset, **cfg.params)
    except (KeyError, ValueError, TypeError) as exc:
        field = "game.payoffs" if cfg.payoffs is not None else "game.preset"
        raise UserError(f"{field}: {str(exc).strip(chr(39))}") from None


def build_rules(cfg: Repeated2x2Config) -> RepeatedGameRules:
    """The repeated-game rules of the scenario."""
    try:
        return RepeatedGameRules(
            game=build_game(cfg),
            rounds=cfg.rounds,
            noise=cfg.noise,
            continuation=cfg.continuation,
            labels=tuple(cfg.labels),
            shuffle_options=cfg.shuffle_options,
        )
    except ValueError as exc:
        raise UserError(f"game: {exc}") from None


class RepeatedGameSim(Simulation):
    """A population playing a repeated 2x2 game along the matcher's pairs."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__(scenario)
        cfg = scenario.game
        assert isinstance(cfg, Repeated2x2Config)
        self.cfg = cfg
        self.rules = build_rules(cfg)
        # The column player sees the game with roles swapped.
        views = (self.rules.game, self.rules.game.for_player(1))
        self.views = tuple(v.payoffs for v in views)
        self.members = build_members(scenario)
        n = len(self.members)
        self.graph = build_network(scenario.network, n, scenario.seed)
        self.matcher = build_matcher(scenario.matching, self.graph)
        try:
            prompts = Prompts(scenario.prompts)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        self.policies: list[Strategy | LLMPlayer] = []
        self._strategy_cache: dict[str, Strategy] = {}
        for m in self.members:
            g = m.group
            if m.is_llm:
                self.policies.append(
                    LLMPlayer(
                        prompts,
                        temperature=g.temperature,
                        max_tokens=g.max_tokens,
                        persona=g.persona,
                        memory=g.memory,
                        predict_first=g.predict_first,
                    )
                )
            else:
                self.policies.append(self._strategy(g.strategy, g.name))
        self.rng = np.random.default_rng(scenario.seed)
        self.round = 0
        # Static pairs: histories indexed like the pair list; random pairs: by pair.
        self.hist: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        self.lengths: dict[tuple[int, int], int] = {}
        if self.matcher.static:
            for pair in self.matcher.pairs(0, self.rng):
                self.hist[pair] = ([], [])
                self.lengths[pair] = self.rules.match_length(self.rng)

    def _strategy(self, spec: Any, group: str) -> Strategy:
        key = repr(spec)
        if key not in self._strategy_cache:
            try:
                self._strategy_cache[key] = make_strategy(spec)
            except (ValueError, ImportError) as exc:
                raise UserError(f"population.groups.{group}.strategy: {exc}") from None
        return self._strategy_cache[key]

    @property
    def done(self) -> bool:
        if self.matcher.static:
            return all(len(h[0]) >= self.lengths[p] for p, h in self.hist.items())
        return self.round >= self.rules.rounds

    @property
    def total_steps(self) -> int | None:
        if self.matcher.static:
            return max(self.lengths.values(), default=0)
        return self.rules.rounds

    def _agent_rows(self) -> list[tuple]:
        rows = []
        for m, pol in zip(self.members, self.policies, strict=True):
            if isinstance(pol, Strategy):
                rows.append(agent_row(m, strategy=pol.name, params=pol.params()))
            else:
                rows.append(agent_row(m, strategy="llm"))
        return rows

    def step(self, decider: Decider) -> StepRecord:
        r = self.round
        rng = self.rng
        rules = self.rules
        pairs = self.matcher.pairs(r, rng)
        active = []
        for pair in pairs:
            if pair not in self.hist:
                self.hist[pair] = ([], [])
                self.lengths[pair] = self.rules.match_length(rng)
            h = self.hist[pair]
            if len(h[0]) < self.lengths[pair]:
                active.append((pair, h))
        n_act = len(active)
        intended = np.zeros((2, n_act), dtype=np.int8)
        source = [["scripted"] * n_act, ["scripted"] * n_act]
        valid = [[1] * n_act, [1] * n_act]
        call_ids: list[list[int | None]] = [[None] * n_act, [None] * n_act]
        jobs: list[tuple[int, int, Job]] = []
        policies = self.policies
        for k, ((i, j), (hi, hj)) in enumerate(active):
            pol = policies[i]
            if isinstance(pol, Strategy):
                intended[0, k] = pol.move(hi, hj, rng)
            else:
                jobs.append((k, 0, self._job(i, j, 0, hi, hj, pol)))
            pol = policies[j]
            if isinstance(pol, Strategy):
                intended[1, k] = pol.move(hj, hi, rng)
            else:
                jobs.append((k, 1, self._job(j, i, 1, hj, hi, pol)))
        if jobs:
            decider.run([job for _, _, job in jobs], r)
            for k, side, job in jobs:
                outcome: MoveOutcome = job.result
                call_ids[side][k] = job.last_call_id
                if outcome.valid:
                    intended[side, k] = outcome.move
                    source[side][k] = "llm"
                else:
                    intended[side, k] = self.cfg.fallback
                    source[side][k] = "fallback"
                    valid[side][k] = 0
        played_i = rules.apply_noise(intended[0], rng)
        played_j = rules.apply_noise(intended[1], rng)
        pay_i, pay_j = rules.payoffs_vec(played_i, played_j)
        rec = StepRecord(round=r, round_in_game=r)
        if r == 0:
            rec.agents = self._agent_rows()
        ids_i = [p[0] for p, _ in active]
        ids_j = [p[1] for p, _ in active]
        for (hi, hj), a, b in zip(
            (h for _, h in active), played_i.tolist(), played_j.tolist(), strict=True
        ):
            hi.append(a)
            hj.append(b)
        # One row per side of each pair: (agent, partner) = (i, j), then (j, i).
        sides = (
            (ids_i, ids_j, intended[0], played_i, pay_i),
            (ids_j, ids_i, intended[1], played_j, pay_j),
        )
        for side, (me, other, meant, played, pay) in enumerate(sides):
            meant_l = meant.tolist()
            rec.decisions.extend(
                zip(
                    repeat(r), repeat(0), me, other, repeat("move"), [MOVE[m] for m in meant_l],
                    meant_l, valid[side], source[side], call_ids[side],
                )
            )  # fmt: skip
            rec.events.extend(
                zip(
                    repeat(r), repeat(0), repeat("payoff"), me, other,
                    [MOVE[m] for m in played.tolist()], pay.tolist(), repeat(None),
                )
            )  # fmt: skip
        self.round += 1
        return rec

    def _job(
        self, me: int, other: int, side: int, mine: list[int], theirs: list[int], pol: LLMPlayer
    ) -> Job:
        obs = RepeatedObservation(
            round=len(mine) + 1,
            rounds=self.rules.rounds if self.cfg.reveal_rounds else None,
            my_moves=mine,
            their_moves=theirs,
            payoffs=self.views[side],
            labels=self.rules.labels,
            order=self.rules.option_order(self.rng),
        )
        tags = {"agent": me, "partner": other, "round": self.round}
        return Job.for_member(self.members[me], pol.decide(obs, tags))

    def get_state(self) -> dict[str, Any]:
        # The move histories are left out: they grow every step (pickling them each step
        # made checkpoints quadratic in the run's length) and every played move is in
        # the events table already, from which `restore` rebuilds them.
        return {"rng": self.rng.bit_generator.state, "round": self.round, "lengths": self.lengths}

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.round = state["round"]
        self.lengths = state["lengths"]
        self.hist = {pair: ([], []) for pair in self.lengths}  # filled by `restore`

    def restore(self, store: RunStore) -> None:
        """Rebuild the move histories from the committed payoff events.

        A step writes its payoff rows side by side: first (i, j) for every active pair
        (i, j), then (j, i) in the same order, so the first half of a round's rows are
        the row players' moves and the second half the column players'.
        """
        rows = store.conn.execute(
            "SELECT round, agent_id, partner_id, action FROM events"
            " WHERE kind = 'payoff' ORDER BY id"
        ).fetchall()
        code = {m: k for k, m in enumerate(MOVE)}
        for _, group in groupby(rows, key=lambda row: row[0]):
            step = list(group)
            half = len(step) // 2
            for _, a, b, action in step[:half]:
                self.hist[(a, b)][0].append(code[action])
            for _, a, b, action in step[half:]:
                self.hist[(b, a)][1].append(code[action])
